ALTER TABLE `authorization_codes` ADD `openid` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `authorization_codes` ADD `nonce` text;--> statement-breakpoint
ALTER TABLE `authorization_requests` ADD `openid` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `authorization_requests` ADD `nonce` text;