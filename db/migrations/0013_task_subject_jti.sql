ALTER TABLE `tasks` ADD `subject_jti` text;--> statement-breakpoint
CREATE INDEX `tasks_subject_idx` ON `tasks` (`subject_jti`);