CREATE TABLE `policy_versions` (
	`version` integer PRIMARY KEY NOT NULL,
	`text` text NOT NULL,
	`tests` text NOT NULL,
	`status` text NOT NULL,
	`comment` text,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`changed_by` text,
	`changed_at` integer
);
--> statement-breakpoint
CREATE INDEX `policy_versions_status_idx` ON `policy_versions` (`status`);--> statement-breakpoint
CREATE TABLE `user_groups` (
	`user_id` text NOT NULL,
	`group` text NOT NULL,
	`source` text NOT NULL,
	PRIMARY KEY(`user_id`, `group`, `source`)
);
