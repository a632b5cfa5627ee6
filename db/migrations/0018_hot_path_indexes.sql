DROP INDEX `issued_tokens_status_idx`;--> statement-breakpoint
DROP INDEX `issued_tokens_grant_idx`;--> statement-breakpoint
CREATE INDEX `issued_tokens_grant_idx` ON `issued_tokens` (`grant_id`) WHERE "issued_tokens"."grant_id" IS NOT NULL;--> statement-breakpoint
DROP INDEX `tasks_parent_idx`;--> statement-breakpoint
DROP INDEX `tasks_subject_idx`;--> statement-breakpoint
CREATE INDEX `tasks_parent_idx` ON `tasks` (`parent_task_id`) WHERE "tasks"."parent_task_id" IS NOT NULL;--> statement-breakpoint
CREATE INDEX `tasks_subject_idx` ON `tasks` (`subject_jti`) WHERE "tasks"."subject_jti" IS NOT NULL;