CREATE TABLE "a2a_peers" (
  "id" text COLLATE "C" PRIMARY KEY,
  "card_url" text COLLATE "C" NOT NULL CONSTRAINT "a2a_peers_card_url_unique" UNIQUE,
  "name" text COLLATE "C" NOT NULL,
  "endpoint" text COLLATE "C" NOT NULL,
  "card" text COLLATE "C" NOT NULL,
  "signature_verified" bigint NOT NULL,
  "signature_kid" text COLLATE "C",
  "skills" text COLLATE "C" NOT NULL,
  "security_schemes" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "updated_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "a2a_tasks" (
  "id" text COLLATE "C" PRIMARY KEY,
  "owner" text COLLATE "C" NOT NULL,
  "context_id" text COLLATE "C" NOT NULL,
  "state" bigint NOT NULL,
  "status_at" text COLLATE "C" NOT NULL,
  "body" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "updated_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE INDEX "a2a_tasks_owner_idx" ON "a2a_tasks" ("owner", "status_at");
--> statement-breakpoint
CREATE TABLE "audit_events" (
  "id" text COLLATE "C" PRIMARY KEY,
  "at" bigint NOT NULL,
  "type" text COLLATE "C" NOT NULL,
  "result" text COLLATE "C" NOT NULL,
  "user_id" text COLLATE "C",
  "client_id" text COLLATE "C",
  "actor_chain" text COLLATE "C",
  "task_id" text COLLATE "C",
  "delegation_id" text COLLATE "C",
  "audience" text COLLATE "C",
  "scope" text COLLATE "C",
  "reason" text COLLATE "C",
  "request_id" text COLLATE "C",
  "details" text COLLATE "C"
);
--> statement-breakpoint
CREATE INDEX "audit_at_idx" ON "audit_events" ("at");
--> statement-breakpoint
CREATE INDEX "audit_client_idx" ON "audit_events" ("client_id");
--> statement-breakpoint
CREATE INDEX "audit_user_idx" ON "audit_events" ("user_id");
--> statement-breakpoint
CREATE TABLE "authorization_codes" (
  "code_hash" text COLLATE "C" PRIMARY KEY,
  "grant_id" text COLLATE "C" NOT NULL,
  "client_id" text COLLATE "C" NOT NULL,
  "user_id" text COLLATE "C" NOT NULL,
  "redirect_uri" text COLLATE "C" NOT NULL,
  "redirect_uri_sent" bigint NOT NULL,
  "code_challenge" text COLLATE "C" NOT NULL,
  "scope" text COLLATE "C" NOT NULL,
  "resources" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "expires_at" bigint NOT NULL,
  "used_at" bigint,
  "delegation_id" text COLLATE "C",
  "openid" bigint NOT NULL DEFAULT 0,
  "nonce" text COLLATE "C"
);
--> statement-breakpoint
CREATE TABLE "authorization_requests" (
  "id" text COLLATE "C" PRIMARY KEY,
  "client_id" text COLLATE "C" NOT NULL,
  "redirect_uri" text COLLATE "C" NOT NULL,
  "redirect_uri_sent" bigint NOT NULL,
  "state" text COLLATE "C",
  "code_challenge" text COLLATE "C" NOT NULL,
  "scope" text COLLATE "C" NOT NULL,
  "resources" text COLLATE "C" NOT NULL,
  "delegation" text COLLATE "C",
  "openid" bigint NOT NULL DEFAULT 0,
  "nonce" text COLLATE "C",
  "created_at" bigint NOT NULL,
  "expires_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "backchannel_requests" (
  "auth_req_id_hash" text COLLATE "C" PRIMARY KEY,
  "delegation_id" text COLLATE "C" NOT NULL,
  "client_id" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "expires_at" bigint NOT NULL,
  "interval" bigint NOT NULL,
  "last_polled_at" bigint,
  "redeemed_at" bigint
);
--> statement-breakpoint
CREATE TABLE "bootstrap_tokens" (
  "token_hash" text COLLATE "C" PRIMARY KEY,
  "created_at" bigint NOT NULL,
  "expires_at" bigint NOT NULL,
  "used_at" bigint
);
--> statement-breakpoint
CREATE TABLE "clients" (
  "id" text COLLATE "C" PRIMARY KEY,
  "kind" text COLLATE "C" NOT NULL,
  "name" text COLLATE "C" NOT NULL,
  "owner_id" text COLLATE "C",
  "source" text COLLATE "C" NOT NULL,
  "status" text COLLATE "C" NOT NULL,
  "token_endpoint_auth_method" text COLLATE "C" NOT NULL,
  "secret_hash" text COLLATE "C",
  "jwks" text COLLATE "C",
  "jwks_uri" text COLLATE "C",
  "redirect_uris" text COLLATE "C" NOT NULL,
  "grant_types" text COLLATE "C" NOT NULL,
  "scope" text COLLATE "C",
  "resources" text COLLATE "C",
  "application_type" text COLLATE "C",
  "metadata" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "last_used_at" bigint,
  "expires_at" bigint,
  "cached_until" bigint,
  "assurance_level" text COLLATE "C",
  "trusted_issuer_id" text COLLATE "C"
);
--> statement-breakpoint
CREATE INDEX "clients_source_idx" ON "clients" ("source", "status");
--> statement-breakpoint
CREATE TABLE "counters" (
  "name" text COLLATE "C" PRIMARY KEY,
  "value" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "delegations" (
  "id" text COLLATE "C" PRIMARY KEY,
  "user_id" text COLLATE "C" NOT NULL,
  "agent_id" text COLLATE "C" NOT NULL,
  "status" text COLLATE "C" NOT NULL,
  "requested" text COLLATE "C" NOT NULL,
  "grants" text COLLATE "C" NOT NULL,
  "authorization_details" text COLLATE "C",
  "max_token_ttl" bigint NOT NULL,
  "max_depth" bigint NOT NULL,
  "sub_agents" text COLLATE "C",
  "expires_at" bigint NOT NULL,
  "created_at" bigint NOT NULL,
  "decided_at" bigint,
  "revoked_at" bigint,
  "source" text COLLATE "C" NOT NULL,
  "binding_message" text COLLATE "C",
  "credential_jti" text COLLATE "C",
  "min_assurance" text COLLATE "C"
);
--> statement-breakpoint
CREATE INDEX "delegations_user_idx" ON "delegations" ("user_id", "status");
--> statement-breakpoint
CREATE INDEX "delegations_agent_idx" ON "delegations" ("agent_id");
--> statement-breakpoint
CREATE TABLE "initial_access_tokens" (
  "id" text COLLATE "C" PRIMARY KEY,
  "token_hash" text COLLATE "C" NOT NULL CONSTRAINT "initial_access_tokens_token_hash_unique" UNIQUE,
  "name" text COLLATE "C" NOT NULL,
  "created_by" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "expires_at" bigint NOT NULL,
  "max_uses" bigint,
  "uses" bigint NOT NULL,
  "auto_approve" bigint NOT NULL,
  "scopes" text COLLATE "C",
  "grant_types" text COLLATE "C" NOT NULL,
  "revoked_at" bigint
);
--> statement-breakpoint
CREATE TABLE "issued_tokens" (
  "jti" text COLLATE "C" PRIMARY KEY,
  "grant_id" text COLLATE "C",
  "client_id" text COLLATE "C" NOT NULL,
  "subject" text COLLATE "C" NOT NULL,
  "audience" text COLLATE "C" NOT NULL,
  "scope" text COLLATE "C" NOT NULL,
  "kid" text COLLATE "C" NOT NULL,
  "issued_at" bigint NOT NULL,
  "expires_at" bigint NOT NULL,
  "revoked_at" bigint,
  "task_id" text COLLATE "C",
  "delegation_id" text COLLATE "C",
  "actor_chain" text COLLATE "C",
  "status_idx" bigint,
  "authorization_details" text COLLATE "C"
);
--> statement-breakpoint
CREATE INDEX "issued_tokens_grant_idx" ON "issued_tokens" ("grant_id");
--> statement-breakpoint
CREATE INDEX "issued_tokens_exp_idx" ON "issued_tokens" ("expires_at");
--> statement-breakpoint
CREATE INDEX "issued_tokens_task_idx" ON "issued_tokens" ("task_id");
--> statement-breakpoint
CREATE INDEX "issued_tokens_client_idx" ON "issued_tokens" ("client_id");
--> statement-breakpoint
CREATE INDEX "issued_tokens_status_idx" ON "issued_tokens" ("status_idx");
--> statement-breakpoint
CREATE INDEX "issued_tokens_revoked_status_idx" ON "issued_tokens" ("status_idx") WHERE "revoked_at" IS NOT NULL;
--> statement-breakpoint
CREATE TABLE "refresh_tokens" (
  "token_hash" text COLLATE "C" PRIMARY KEY,
  "family_id" text COLLATE "C" NOT NULL,
  "client_id" text COLLATE "C" NOT NULL,
  "user_id" text COLLATE "C" NOT NULL,
  "scope" text COLLATE "C" NOT NULL,
  "resources" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "expires_at" bigint NOT NULL,
  "family_expires_at" bigint NOT NULL,
  "used_at" bigint,
  "grace_response" text COLLATE "C",
  "revoked_at" bigint,
  "dpop_jkt" text COLLATE "C"
);
--> statement-breakpoint
CREATE INDEX "refresh_tokens_family_idx" ON "refresh_tokens" ("family_id");
--> statement-breakpoint
CREATE TABLE "resources" (
  "id" text COLLATE "C" PRIMARY KEY,
  "url" text COLLATE "C" NOT NULL CONSTRAINT "resources_url_unique" UNIQUE,
  "name" text COLLATE "C" NOT NULL,
  "scopes" text COLLATE "C" NOT NULL,
  "scope_descriptions" text COLLATE "C",
  "min_assurance" text COLLATE "C",
  "created_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "revocation_log" (
  "seq" bigint PRIMARY KEY,
  "jti" text COLLATE "C" NOT NULL,
  "audience" text COLLATE "C" NOT NULL,
  "task_id" text COLLATE "C",
  "status_idx" bigint,
  "at" bigint NOT NULL,
  "written_ms" bigint NOT NULL
);
--> statement-breakpoint
CREATE INDEX "revocation_log_at_idx" ON "revocation_log" ("at");
--> statement-breakpoint
CREATE SEQUENCE "revocation_log_seq_seq" OWNED BY "revocation_log"."seq";
--> statement-breakpoint
CREATE FUNCTION "revocation_log_seq_next"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW."seq" IS NULL THEN NEW."seq" := nextval('revocation_log_seq_seq'); END IF; RETURN NEW; END $$;
--> statement-breakpoint
CREATE TRIGGER "revocation_log_seq_next" BEFORE INSERT ON "revocation_log" FOR EACH ROW EXECUTE FUNCTION "revocation_log_seq_next"();
--> statement-breakpoint
CREATE TABLE "settings" (
  "key" text COLLATE "C" PRIMARY KEY,
  "value" text COLLATE "C" NOT NULL
);
--> statement-breakpoint
CREATE TABLE "signin_failures" (
  "key" text COLLATE "C" PRIMARY KEY,
  "failures" bigint NOT NULL,
  "locked_until" bigint,
  "expires_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE INDEX "signin_failures_expires_idx" ON "signin_failures" ("expires_at");
--> statement-breakpoint
CREATE TABLE "signing_keys" (
  "kid" text COLLATE "C" PRIMARY KEY,
  "alg" text COLLATE "C" NOT NULL,
  "public_jwk" text COLLATE "C" NOT NULL,
  "private_key_sealed" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "activates_at" bigint NOT NULL CONSTRAINT "signing_keys_activates_at_unique" UNIQUE,
  "signed_until" bigint
);
--> statement-breakpoint
CREATE TABLE "tasks" (
  "id" text COLLATE "C" PRIMARY KEY,
  "delegation_id" text COLLATE "C" NOT NULL,
  "user_id" text COLLATE "C" NOT NULL,
  "agent_id" text COLLATE "C" NOT NULL,
  "actor_chain" text COLLATE "C" NOT NULL,
  "parent_task_id" text COLLATE "C",
  "root_task_id" text COLLATE "C" NOT NULL,
  "depth" bigint NOT NULL,
  "state" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "deadline" bigint NOT NULL,
  "ended_at" bigint,
  "end_reason" text COLLATE "C",
  "external_ids" text COLLATE "C" NOT NULL,
  "subject_jti" text COLLATE "C"
);
--> statement-breakpoint
CREATE INDEX "tasks_root_idx" ON "tasks" ("root_task_id");
--> statement-breakpoint
CREATE INDEX "tasks_parent_idx" ON "tasks" ("parent_task_id");
--> statement-breakpoint
CREATE INDEX "tasks_delegation_idx" ON "tasks" ("delegation_id");
--> statement-breakpoint
CREATE INDEX "tasks_user_idx" ON "tasks" ("user_id");
--> statement-breakpoint
CREATE INDEX "tasks_agent_idx" ON "tasks" ("agent_id");
--> statement-breakpoint
CREATE INDEX "tasks_deadline_idx" ON "tasks" ("state", "deadline");
--> statement-breakpoint
CREATE INDEX "tasks_subject_idx" ON "tasks" ("subject_jti");
--> statement-breakpoint
CREATE TABLE "trusted_issuers" (
  "id" text COLLATE "C" PRIMARY KEY,
  "kind" text COLLATE "C" NOT NULL,
  "name" text COLLATE "C" NOT NULL,
  "issuer" text COLLATE "C" NOT NULL CONSTRAINT "trusted_issuers_issuer_unique" UNIQUE,
  "jwks_uri" text COLLATE "C",
  "jwks" text COLLATE "C",
  "audience" text COLLATE "C" NOT NULL,
  "max_lifetime" bigint NOT NULL,
  "rules" text COLLATE "C" NOT NULL,
  "status" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "used_assertions" (
  "key" text COLLATE "C" PRIMARY KEY,
  "expires_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "users" (
  "id" text COLLATE "C" PRIMARY KEY,
  "username" text COLLATE "C" NOT NULL CONSTRAINT "users_username_unique" UNIQUE,
  "display_name" text COLLATE "C",
  "password_hash" text COLLATE "C",
  "role" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "disabled_at" bigint,
  "failed_signins" bigint NOT NULL DEFAULT 0,
  "locked_until" bigint
);
--> statement-breakpoint
CREATE TABLE "sessions" (
  "id_hash" text COLLATE "C" PRIMARY KEY,
  "user_id" text COLLATE "C" NOT NULL,
  "csrf_token" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  "expires_at" bigint NOT NULL,
  FOREIGN KEY ("user_id") REFERENCES "users" ("id")
);
--> statement-breakpoint
CREATE INDEX "sessions_user_idx" ON "sessions" ("user_id");
--> statement-breakpoint
CREATE TABLE "user_identities" (
  "issuer" text COLLATE "C" NOT NULL,
  "subject" text COLLATE "C" NOT NULL,
  "user_id" text COLLATE "C" NOT NULL,
  "created_at" bigint NOT NULL,
  PRIMARY KEY ("issuer", "subject"),
  FOREIGN KEY ("user_id") REFERENCES "users" ("id")
);
--> statement-breakpoint
CREATE INDEX "user_identities_user_idx" ON "user_identities" ("user_id");
