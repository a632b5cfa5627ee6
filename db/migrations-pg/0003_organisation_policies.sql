CREATE TABLE "policy_versions" (
  "version" bigint PRIMARY KEY,
  "text" text COLLATE "C" NOT NULL,
  "tests" text COLLATE "C" NOT NULL,
  "status" text COLLATE "C" NOT NULL,
  "comment" text COLLATE "C",
  "created_by" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "changed_by" text COLLATE "C",
  "changed_at" bigint
);
--> statement-breakpoint
CREATE INDEX "policy_versions_status_idx" ON "policy_versions" ("status");
--> statement-breakpoint
CREATE TABLE "user_groups" (
  "user_id" text COLLATE "C" NOT NULL,
  "group" text COLLATE "C" NOT NULL,
  "source" text COLLATE "C" NOT NULL,
  PRIMARY KEY ("user_id", "group", "source")
);
