CREATE TABLE `backchannel_requests` (
	`auth_req_id_hash` text PRIMARY KEY NOT NULL,
	`delegation_id` text NOT NULL,
	`client_id` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`interval` integer NOT NULL,
	`last_polled_at` integer,
	`redeemed_at` integer
);
--> statement-breakpoint
CREATE TABLE `counters` (
	`name` text PRIMARY KEY NOT NULL,
	`value` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `delegations` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`agent_id` text NOT NULL,
	`status` text NOT NULL,
	`requested` text NOT NULL,
	`grants` text NOT NULL,
	`authorization_details` text,
	`max_token_ttl` integer NOT NULL,
	`max_depth` integer NOT NULL,
	`sub_agents` text,
	`expires_at` integer NOT NULL,
	`created_at` integer NOT NULL,
	`decided_at` integer,
	`revoked_at` integer,
	`source` text NOT NULL,
	`binding_message` text,
	`credential_jti` text
);
--> statement-breakpoint
CREATE INDEX `delegations_user_idx` ON `delegations` (`user_id`,`status`);--> statement-breakpoint
CREATE INDEX `delegations_agent_idx` ON `delegations` (`agent_id`);--> statement-breakpoint
CREATE TABLE `tasks` (
	`id` text PRIMARY KEY NOT NULL,
	`delegation_id` text NOT NULL,
	`user_id` text NOT NULL,
	`agent_id` text NOT NULL,
	`actor_chain` text NOT NULL,
	`parent_task_id` text,
	`root_task_id` text NOT NULL,
	`depth` integer NOT NULL,
	`state` text NOT NULL,
	`created_at` integer NOT NULL,
	`deadline` integer NOT NULL,
	`ended_at` integer,
	`end_reason` text,
	`external_ids` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `tasks_root_idx` ON `tasks` (`root_task_id`);--> statement-breakpoint
CREATE INDEX `tasks_delegation_idx` ON `tasks` (`delegation_id`);--> statement-breakpoint
CREATE INDEX `tasks_user_idx` ON `tasks` (`user_id`);--> statement-breakpoint
CREATE INDEX `tasks_agent_idx` ON `tasks` (`agent_id`);--> statement-breakpoint
CREATE INDEX `tasks_deadline_idx` ON `tasks` (`state`,`deadline`);--> statement-breakpoint
ALTER TABLE `issued_tokens` ADD `task_id` text;--> statement-breakpoint
ALTER TABLE `issued_tokens` ADD `delegation_id` text;--> statement-breakpoint
ALTER TABLE `issued_tokens` ADD `actor_chain` text;--> statement-breakpoint
ALTER TABLE `issued_tokens` ADD `status_idx` integer;--> statement-breakpoint
CREATE INDEX `issued_tokens_task_idx` ON `issued_tokens` (`task_id`);--> statement-breakpoint
CREATE INDEX `issued_tokens_client_idx` ON `issued_tokens` (`client_id`);--> statement-breakpoint
CREATE INDEX `issued_tokens_status_idx` ON `issued_tokens` (`status_idx`);