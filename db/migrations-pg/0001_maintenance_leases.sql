CREATE TABLE "maintenance_leases" (
  "job" text COLLATE "C" PRIMARY KEY,
  "next_run_at" bigint NOT NULL,
  "holder" text COLLATE "C" NOT NULL,
  "claimed_at" bigint NOT NULL
);
