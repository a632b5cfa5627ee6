CREATE TABLE `agent_lifecycle` (
	`client_id` text PRIMARY KEY NOT NULL,
	`lapsed_owner_id` text,
	`owner_lapsed_at` integer,
	`suspended_at` integer,
	`suspended_reason` text
);
--> statement-breakpoint
CREATE TABLE `certification_campaigns` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`status` text NOT NULL,
	`opened_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`deadline` integer NOT NULL,
	`usage_days` integer NOT NULL,
	`closed_at` integer
);
--> statement-breakpoint
CREATE TABLE `certification_items` (
	`id` text PRIMARY KEY NOT NULL,
	`campaign_id` text NOT NULL,
	`agent_id` text NOT NULL,
	`owner_id` text,
	`snapshot` text NOT NULL,
	`decision` text,
	`decided_by` text,
	`decided_at` integer,
	`outcome` text
);
--> statement-breakpoint
CREATE INDEX `certification_items_campaign_idx` ON `certification_items` (`campaign_id`);--> statement-breakpoint
CREATE INDEX `certification_items_owner_idx` ON `certification_items` (`owner_id`);