CREATE TABLE `signin_failures` (
	`key` text PRIMARY KEY NOT NULL,
	`failures` integer NOT NULL,
	`locked_until` integer,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `signin_failures_expires_idx` ON `signin_failures` (`expires_at`);