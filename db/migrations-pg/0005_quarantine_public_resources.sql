ALTER TABLE "clients" ADD COLUMN "quarantined_at" bigint;--> statement-breakpoint
ALTER TABLE "resources" ADD COLUMN "public" bigint NOT NULL DEFAULT 0;
