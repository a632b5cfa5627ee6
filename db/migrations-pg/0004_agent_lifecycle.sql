CREATE TABLE "agent_lifecycle" (
  "client_id" text COLLATE "C" PRIMARY KEY,
  "lapsed_owner_id" text COLLATE "C",
  "owner_lapsed_at" bigint,
  "suspended_at" bigint,
  "suspended_reason" text COLLATE "C"
);
--> statement-breakpoint
CREATE TABLE "certification_campaigns" (
  "id" text COLLATE "C" PRIMARY KEY,
  "name" text COLLATE "C" NOT NULL,
  "status" text COLLATE "C" NOT NULL,
  "opened_by" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "deadline" bigint NOT NULL,
  "usage_days" bigint NOT NULL,
  "closed_at" bigint
);
--> statement-breakpoint
CREATE TABLE "certification_items" (
  "id" text COLLATE "C" PRIMARY KEY,
  "campaign_id" text COLLATE "C" NOT NULL,
  "agent_id" text COLLATE "C" NOT NULL,
  "owner_id" text COLLATE "C",
  "snapshot" text COLLATE "C" NOT NULL,
  "decision" text COLLATE "C",
  "decided_by" text COLLATE "C",
  "decided_at" bigint,
  "outcome" text COLLATE "C"
);
--> statement-breakpoint
CREATE INDEX "certification_items_campaign_idx" ON "certification_items" ("campaign_id");
--> statement-breakpoint
CREATE INDEX "certification_items_owner_idx" ON "certification_items" ("owner_id");
