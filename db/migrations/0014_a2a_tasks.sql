CREATE TABLE `a2a_tasks` (
	`id` text PRIMARY KEY NOT NULL,
	`owner` text NOT NULL,
	`context_id` text NOT NULL,
	`state` integer NOT NULL,
	`status_at` text NOT NULL,
	`body` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `a2a_tasks_owner_idx` ON `a2a_tasks` (`owner`,`status_at`);