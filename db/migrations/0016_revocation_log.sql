CREATE TABLE `revocation_log` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`jti` text NOT NULL,
	`audience` text NOT NULL,
	`task_id` text,
	`status_idx` integer,
	`at` integer NOT NULL,
	`written_ms` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `revocation_log_at_idx` ON `revocation_log` (`at`);