CREATE TABLE `initial_access_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`token_hash` text NOT NULL,
	`name` text NOT NULL,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`max_uses` integer,
	`uses` integer NOT NULL,
	`auto_approve` integer NOT NULL,
	`scopes` text,
	`grant_types` text NOT NULL,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `initial_access_tokens_tokenHash_unique` ON `initial_access_tokens` (`token_hash`);