CREATE TABLE `maintenance_leases` (
	`job` text PRIMARY KEY NOT NULL,
	`next_run_at` integer NOT NULL,
	`holder` text NOT NULL,
	`claimed_at` integer NOT NULL
);
