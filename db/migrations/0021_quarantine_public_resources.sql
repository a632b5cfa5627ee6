ALTER TABLE `clients` ADD `quarantined_at` integer;--> statement-breakpoint
ALTER TABLE `resources` ADD `public` integer DEFAULT false NOT NULL;