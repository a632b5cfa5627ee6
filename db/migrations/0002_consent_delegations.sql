ALTER TABLE `authorization_codes` ADD `delegation_id` text;--> statement-breakpoint
ALTER TABLE `authorization_requests` ADD `delegation` text;