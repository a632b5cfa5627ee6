CREATE TABLE `a2a_peers` (
	`id` text PRIMARY KEY NOT NULL,
	`card_url` text NOT NULL,
	`name` text NOT NULL,
	`endpoint` text NOT NULL,
	`card` text NOT NULL,
	`signature_verified` integer NOT NULL,
	`signature_kid` text,
	`skills` text NOT NULL,
	`security_schemes` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `a2a_peers_cardUrl_unique` ON `a2a_peers` (`card_url`);--> statement-breakpoint
CREATE TABLE `trusted_issuers` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`name` text NOT NULL,
	`issuer` text NOT NULL,
	`jwks_uri` text,
	`jwks` text,
	`audience` text NOT NULL,
	`max_lifetime` integer NOT NULL,
	`rules` text NOT NULL,
	`status` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `trusted_issuers_issuer_unique` ON `trusted_issuers` (`issuer`);--> statement-breakpoint
ALTER TABLE `clients` ADD `assurance_level` text;--> statement-breakpoint
ALTER TABLE `clients` ADD `trusted_issuer_id` text;--> statement-breakpoint
ALTER TABLE `resources` ADD `min_assurance` text;--> statement-breakpoint
ALTER TABLE `delegations` ADD `min_assurance` text;