// Forward-only, versioned migrations. Append new ones; never edit or remove a released one.
// Each runs in a transaction (both engines support transactional DDL) so a crash leaves the
// schema at a version boundary.
import { type Kysely, sql } from "kysely";
import type { Migration, MigrationProvider } from "kysely/migration";
import * as identityProviders0016 from "./migrations/0016_identity_providers.ts";
import * as agentFederation0017 from "./migrations/0017_agent_federation.ts";
import * as apiKeys0018 from "./migrations/0018_api_keys.ts";
import * as tenantTrusts0019 from "./migrations/0019_tenant_trusts.ts";
import * as federationIndexes0020 from "./migrations/0020_federation_indexes.ts";

export type Engine = "sqlite" | "postgres";

/** Builds the migration list for an engine; the few type differences are decided here. */
export function migrationsFor(engine: Engine): Record<string, Migration> {
  const bigint = engine === "postgres" ? "bigint" : "integer";
  return {
    "0001_tenants_and_audit_outbox": {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable("tenants")
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("display_name", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable("audit_outbox")
          .addColumn("id", engine === "postgres" ? "bigserial" : "integer", (c) =>
            engine === "postgres" ? c.primaryKey() : c.primaryKey().autoIncrement(),
          )
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("event_id", "text", (c) => c.notNull().unique())
          .addColumn("type", "text", (c) => c.notNull())
          .addColumn("payload", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex("audit_outbox_tenant_idx")
          .on("audit_outbox")
          .columns(["tenant_id", "id"])
          .execute();
      },
    },
    "0002_signer": {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable("tenants").addColumn("token_signing_alg", "text").execute();
        await db.schema
          .createTable("signing_keys")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("purpose", "text", (c) => c.notNull())
          .addColumn("kid", "text", (c) => c.notNull())
          .addColumn("alg", "text", (c) => c.notNull())
          .addColumn("backend", "text", (c) => c.notNull())
          .addColumn("backend_ref", "text", (c) => c.notNull())
          .addColumn("public_jwk", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addColumn("publish_at", bigint, (c) => c.notNull())
          .addColumn("activate_at", bigint, (c) => c.notNull())
          .addColumn("retire_at", bigint, (c) => c.notNull())
          .addColumn("unpublish_at", bigint, (c) => c.notNull())
          .addColumn("revoked_at", bigint)
          .addColumn("destroyed_at", bigint)
          .addUniqueConstraint("signing_keys_tenant_kid_unique", ["tenant_id", "kid"])
          .execute();
        await db.schema
          .createIndex("signing_keys_tenant_purpose_idx")
          .on("signing_keys")
          .columns(["tenant_id", "purpose", "activate_at"])
          .execute();
        await db.schema
          .createTable("signer_software_keys")
          .addColumn("ref", "text", (c) => c.primaryKey())
          .addColumn("label", "text", (c) => c.notNull())
          .addColumn("sealed", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable("leases")
          .addColumn("name", "text", (c) => c.primaryKey())
          .addColumn("holder", "text", (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable("settings")
          .addColumn("name", "text", (c) => c.primaryKey())
          .addColumn("value", "text", (c) => c.notNull())
          .execute();
      },
    },
    "0003_audit_log": {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable("audit_log")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("seq", bigint, (c) => c.notNull())
          .addColumn("leaf_hash", "text", (c) => c.notNull())
          .addColumn("body", "text", (c) => c.notNull())
          .addColumn("type", "text", (c) => c.notNull())
          .addColumn("subject", "text")
          .addColumn("actors", "text", (c) => c.notNull())
          .addColumn("client_id", "text")
          .addColumn("mandate_id", "text")
          .addColumn("event_time", bigint, (c) => c.notNull())
          .addColumn("record_time", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("audit_log_pk", ["tenant_id", "seq"])
          .execute();
        for (const column of ["type", "subject", "client_id", "mandate_id", "event_time"]) {
          await db.schema
            .createIndex(`audit_log_${column}_idx`)
            .on("audit_log")
            .columns(["tenant_id", column, "seq"])
            .execute();
        }
        await db.schema
          .createTable("audit_nodes")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("level", "integer", (c) => c.notNull())
          .addColumn("idx", bigint, (c) => c.notNull())
          .addColumn("hash", "text", (c) => c.notNull())
          .addPrimaryKeyConstraint("audit_nodes_pk", ["tenant_id", "level", "idx"])
          .execute();
        await db.schema
          .createTable("audit_heads")
          .addColumn("tenant_id", "text", (c) => c.primaryKey().references("tenants.id"))
          .addColumn("size", bigint, (c) => c.notNull())
          .addColumn("root_hash", "text", (c) => c.notNull())
          .addColumn("updated_at", bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable("audit_checkpoints")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("tree_size", bigint, (c) => c.notNull())
          .addColumn("root_hash", "text", (c) => c.notNull())
          .addColumn("note", "text", (c) => c.notNull())
          .addColumn("kid", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("audit_checkpoints_pk", ["tenant_id", "tree_size"])
          .execute();
        await db.schema
          .createTable("audit_subjects")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("value", "text", (c) => c.notNull())
          .addColumn("salt", "text", (c) => c.notNull())
          .addPrimaryKeyConstraint("audit_subjects_pk", ["tenant_id", "value"])
          .execute();
        // The store itself refuses to rewrite history: no UPDATE or DELETE of log rows, tree nodes or
        // checkpoints, whoever asks (an administrator with table privileges can still drop the trigger,
        // which is why the log is also verifiable offline against signed checkpoints).
        if (engine === "postgres") {
          await sql
            .raw(
              "CREATE OR REPLACE FUNCTION mandate_refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS " +
                "$$ BEGIN RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME " +
                "USING ERRCODE = 'insufficient_privilege'; END $$",
            )
            .execute(db);
        }
        for (const table of ["audit_log", "audit_nodes", "audit_checkpoints"]) {
          if (engine === "postgres") {
            await sql
              .raw(
                `CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ${table} ` +
                  "FOR EACH STATEMENT EXECUTE FUNCTION mandate_refuse_audit_change()",
              )
              .execute(db);
          } else {
            for (const op of ["UPDATE", "DELETE"]) {
              await sql
                .raw(
                  `CREATE TRIGGER ${table}_no_${op.toLowerCase()} BEFORE ${op} ON ${table} ` +
                    `BEGIN SELECT RAISE(ABORT, 'audit log is append-only: ${op} on ${table} refused'); END`,
                )
                .execute(db);
            }
          }
        }
      },
    },
    "0004_oauth_clients": {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable("oauth_clients")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("client_id", "text", (c) => c.notNull())
          .addColumn("metadata", "text", (c) => c.notNull())
          .addColumn("secret_hash", "text")
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("oauth_clients_pk", ["tenant_id", "client_id"])
          .execute();
      },
    },
    "0005_oauth_server": {
      async up(db: Kysely<unknown>) {
        // Events name their parties apart from the payload, so the log can redact humans (crypto-shredding).
        await db.schema.alterTable("audit_outbox").addColumn("parties", "text").execute();
        // RFC 7592: dynamically registered clients manage themselves with a registration access token.
        await db.schema.alterTable("oauth_clients").addColumn("registration_token_hash", "text").execute();
        const tenantTable = (name: string) =>
          db.schema.createTable(name).addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"));
        // A grant: what a user (or client) authorised for a client; refresh tokens and code-flow access tokens hang off it.
        await tenantTable("oauth_grants")
          .addColumn("id", "text", (c) => c.notNull())
          .addColumn("client_id", "text", (c) => c.notNull())
          .addColumn("subject", "text", (c) => c.notNull())
          .addColumn("scope", "text", (c) => c.notNull())
          .addColumn("resources", "text", (c) => c.notNull())
          .addColumn("dpop_jkt", "text")
          .addColumn("auth_time", bigint)
          .addColumn("acr", "text")
          .addColumn("amr", "text")
          .addColumn("claims", "text")
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .addColumn("revoked_at", bigint)
          .addPrimaryKeyConstraint("oauth_grants_pk", ["tenant_id", "id"])
          .execute();
        await tenantTable("oauth_codes")
          .addColumn("code_hash", "text", (c) => c.notNull())
          .addColumn("client_id", "text", (c) => c.notNull())
          .addColumn("request", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .addColumn("consumed_at", bigint)
          .addColumn("grant_id", "text")
          .addPrimaryKeyConstraint("oauth_codes_pk", ["tenant_id", "code_hash"])
          .execute();
        await tenantTable("oauth_refresh_tokens")
          .addColumn("token_hash", "text", (c) => c.notNull())
          .addColumn("grant_id", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .addColumn("spent_at", bigint)
          .addPrimaryKeyConstraint("oauth_refresh_tokens_pk", ["tenant_id", "token_hash"])
          .execute();
        await db.schema
          .createIndex("oauth_refresh_tokens_grant_idx")
          .on("oauth_refresh_tokens")
          .columns(["tenant_id", "grant_id"])
          .execute();
        // Access tokens minted from a grant, so revoking the grant (refresh reuse, code replay) reaches them.
        await tenantTable("oauth_access_tokens")
          .addColumn("jti", "text", (c) => c.notNull())
          .addColumn("grant_id", "text", (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("oauth_access_tokens_pk", ["tenant_id", "jti"])
          .execute();
        await db.schema
          .createIndex("oauth_access_tokens_grant_idx")
          .on("oauth_access_tokens")
          .columns(["tenant_id", "grant_id"])
          .execute();
        // Revoked access tokens until they would have expired anyway (RFC 7009).
        await tenantTable("oauth_revoked_tokens")
          .addColumn("jti", "text", (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("oauth_revoked_tokens_pk", ["tenant_id", "jti"])
          .execute();
        // Pushed authorization requests (RFC 9126) and authorization requests waiting for login/consent.
        await tenantTable("oauth_pending_requests")
          .addColumn("id_hash", "text", (c) => c.notNull())
          .addColumn("kind", "text", (c) => c.notNull())
          .addColumn("client_id", "text", (c) => c.notNull())
          .addColumn("request", "text", (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("oauth_pending_requests_pk", ["tenant_id", "id_hash"])
          .execute();
        await tenantTable("oauth_sessions")
          .addColumn("id_hash", "text", (c) => c.notNull())
          .addColumn("subject", "text", (c) => c.notNull())
          .addColumn("auth_time", bigint, (c) => c.notNull())
          .addColumn("acr", "text", (c) => c.notNull())
          .addColumn("amr", "text", (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("oauth_sessions_pk", ["tenant_id", "id_hash"])
          .execute();
        await tenantTable("oauth_consents")
          .addColumn("client_id", "text", (c) => c.notNull())
          .addColumn("subject", "text", (c) => c.notNull())
          .addColumn("scope", "text", (c) => c.notNull())
          .addColumn("resources", "text", (c) => c.notNull())
          .addColumn("updated_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("oauth_consents_pk", ["tenant_id", "client_id", "subject"])
          .execute();
      },
    },
    "0006_tenant_default_resources": {
      async up(db: Kysely<unknown>) {
        // RFC 8707 resources a tenant's clients may target when they register none of their own.
        await db.schema.alterTable("tenants").addColumn("default_resources", "text").execute();
      },
    },
    "0007_audit_request_id": {
      async up(db: Kysely<unknown>) {
        // Audit.Query by request id: a decision is found by its decision id (the event's id).
        await db.schema.alterTable("audit_log").addColumn("request_id", "text").execute();
        await db.schema
          .createIndex("audit_log_request_id_idx")
          .on("audit_log")
          .columns(["tenant_id", "request_id"])
          .execute();
      },
    },
    "0008_policies": {
      async up(db: Kysely<unknown>) {
        const tenantTable = (name: string) =>
          db.schema.createTable(name).addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"));
        // Pushed OPA bundles, immutable once stored; the bytes are kept as pushed (base64) so a
        // signature can be re-verified and the bundle re-loaded on any replica.
        await tenantTable("policy_bundles")
          .addColumn("revision", "text", (c) => c.notNull())
          .addColumn("sha256", "text", (c) => c.notNull())
          .addColumn("bundle", "text", (c) => c.notNull())
          .addColumn("signed_by", "text")
          .addColumn("entrypoints", "text", (c) => c.notNull())
          .addColumn("size_bytes", "integer", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("policy_bundles_pk", ["tenant_id", "revision"])
          .execute();
        // Every activation, in order: the last row is the active revision; rollback re-activates the one before.
        await tenantTable("policy_activations")
          .addColumn("seq", bigint, (c) => c.notNull())
          .addColumn("revision", "text", (c) => c.notNull())
          .addColumn("activated_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("policy_activations_pk", ["tenant_id", "seq"])
          .execute();
        // One row per tenant with a policy of its own: `version` grows on every change (activation,
        // data, signing), so replicas compare one number to know they are current.
        await tenantTable("policy_state")
          .addColumn("active_revision", "text")
          .addColumn("version", bigint, (c) => c.notNull())
          .addColumn("updated_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("policy_state_pk", ["tenant_id"])
          .execute();
        await db.schema.createIndex("policy_state_updated_at_idx").on("policy_state").columns(["updated_at"]).execute();
        // Small dynamic data documents (role bindings...) merged into the bundle's data at `path`.
        await tenantTable("policy_data")
          .addColumn("path", "text", (c) => c.notNull())
          .addColumn("value", "text", (c) => c.notNull())
          .addColumn("updated_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("policy_data_pk", ["tenant_id", "path"])
          .execute();
        // Keys a tenant's bundles are signed with (a JWK Set) and whether unsigned bundles are refused.
        await tenantTable("policy_signing")
          .addColumn("jwks", "text", (c) => c.notNull())
          .addColumn("require_signatures", "integer", (c) => c.notNull())
          .addColumn("updated_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("policy_signing_pk", ["tenant_id"])
          .execute();
      },
    },
    "0009_mandates": {
      async up(db: Kysely<unknown>) {
        const tenantTable = (name: string) =>
          db.schema.createTable(name).addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"));
        const double = engine === "postgres" ? "double precision" : "real";
        // A principal's grant to an agent (services/issue/mandates/); the bounds as JSON columns.
        await tenantTable("mandates")
          .addColumn("id", "text", (c) => c.notNull())
          .addColumn("version", "integer", (c) => c.notNull())
          .addColumn("parent_id", "text")
          .addColumn("depth", "integer", (c) => c.notNull())
          .addColumn("principal", "text", (c) => c.notNull())
          .addColumn("agent_id", "text", (c) => c.notNull())
          .addColumn("scopes", "text", (c) => c.notNull())
          .addColumn("resources", "text", (c) => c.notNull())
          .addColumn("authorization_details", "text", (c) => c.notNull())
          .addColumn("usage_limits", "text", (c) => c.notNull())
          .addColumn("may_act", "text", (c) => c.notNull())
          .addColumn("not_before", bigint, (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .addColumn("max_token_ttl_ms", bigint)
          .addColumn("max_delegation_depth", "integer", (c) => c.notNull())
          .addColumn("state", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addColumn("revoked_at", bigint)
          .addColumn("revoked_by", "text")
          .addColumn("revoke_reason", "text")
          .addColumn("consent", "text", (c) => c.notNull())
          .addPrimaryKeyConstraint("mandates_pk", ["tenant_id", "id"])
          .execute();
        for (const column of ["principal", "agent_id", "parent_id"]) {
          await db.schema.createIndex(`mandates_${column}_idx`).on("mandates").columns(["tenant_id", column]).execute();
        }
        // Immutable once granted: only the state and the revocation columns may change.
        await refuseMandateChanges(db, engine);
        // Counters per meter and period, and consumptions by idempotency key (usage.ts).
        await tenantTable("mandate_usage")
          .addColumn("mandate_id", "text", (c) => c.notNull())
          .addColumn("meter", "text", (c) => c.notNull())
          .addColumn("period_ms", bigint, (c) => c.notNull())
          .addColumn("period_start", bigint, (c) => c.notNull())
          .addColumn("used", double, (c) => c.notNull())
          .addPrimaryKeyConstraint("mandate_usage_pk", [
            "tenant_id",
            "mandate_id",
            "meter",
            "period_ms",
            "period_start",
          ])
          .execute();
        await tenantTable("mandate_consumptions")
          .addColumn("mandate_id", "text", (c) => c.notNull())
          .addColumn("idempotency_key", "text", (c) => c.notNull())
          .addColumn("meter", "text", (c) => c.notNull())
          .addColumn("amount", double, (c) => c.notNull())
          .addColumn("at", bigint, (c) => c.notNull())
          .addColumn("result", "text", (c) => c.notNull())
          .addPrimaryKeyConstraint("mandate_consumptions_pk", ["tenant_id", "mandate_id", "idempotency_key"])
          .execute();
      },
    },
    "0010_agents": {
      async up(db: Kysely<unknown>) {
        // Agents (issue 15): clients of kind "agent" with an owner (a human's sub or an org id), a
        // description shown to humans, and the DPoP key thumbprint their tokens are bound to. One
        // statement per column: SQLite adds one column per ALTER TABLE.
        const clients = () => db.schema.alterTable("oauth_clients");
        await clients()
          .addColumn("kind", "text", (c) => c.notNull().defaultTo("application"))
          .execute();
        await clients().addColumn("owner", "text").execute();
        await clients().addColumn("description", "text").execute();
        await clients().addColumn("dpop_jkt", "text").execute();
        // ListClients by owner (an owner's agents), in client-id order.
        await db.schema
          .createIndex("oauth_clients_owner_idx")
          .on("oauth_clients")
          .columns(["tenant_id", "owner", "client_id"])
          .execute();
      },
    },
    "0011_exchange_grants": {
      async up(db: Kysely<unknown>) {
        // Refresh-token families of token exchanges of a mandate (issue 15): the mandate the family
        // lives under (refused once it or a parent is revoked, expired or exhausted; found by
        // mandate when one is revoked) and the RFC 9396 authorization details its tokens carry.
        const grants = () => db.schema.alterTable("oauth_grants");
        await grants().addColumn("mandate_id", "text").execute();
        await grants().addColumn("authorization_details", "text").execute();
        await db.schema
          .createIndex("oauth_grants_mandate_idx")
          .on("oauth_grants")
          .columns(["tenant_id", "mandate_id"])
          .execute();
      },
    },
    "0012_revocation_feed": {
      async up(db: Kysely<unknown>) {
        // The revocation log (issue 15, revocation that cascades): per tenant a gap-free sequence of
        // revoked mandates and access-token jtis, each kept until it stops mattering (expire_time),
        // allocated under the tenant's revocation_heads row (locked until the revoking transaction
        // ends, so sequences commit in order). See services/shared/oauth/revocation-log.ts.
        await db.schema
          .createTable("revocation_heads")
          .addColumn("tenant_id", "text", (c) => c.primaryKey().references("tenants.id"))
          .addColumn("last_sequence", bigint, (c) => c.notNull())
          .execute();
        await db.schema
          .createTable("revocation_log")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("sequence", bigint, (c) => c.notNull())
          .addColumn("kind", "text", (c) => c.notNull().check(sql`kind in ('mandate', 'jti')`))
          .addColumn("id", "text", (c) => c.notNull())
          .addColumn("revoke_time", bigint, (c) => c.notNull())
          .addColumn("expire_time", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("revocation_log_pk", ["tenant_id", "sequence"])
          .execute();
        // Whether a mandate or jti is revoked (a replica that cannot trust its memory reads the store).
        await db.schema
          .createIndex("revocation_log_id_idx")
          .on("revocation_log")
          .columns(["tenant_id", "kind", "id"])
          .execute();
        await db.schema
          .createIndex("revocation_log_expiry_idx")
          .on("revocation_log")
          .columns(["tenant_id", "expire_time"])
          .execute();
        // Access tokens revoked before the log existed join it (when they were revoked is unknown:
        // the migration's time stands for it), numbered per tenant; the heads follow.
        const migratedAt = Date.now();
        await sql`insert into revocation_log (tenant_id, sequence, kind, id, revoke_time, expire_time)
          select tenant_id, row_number() over (partition by tenant_id order by jti), 'jti', jti, ${migratedAt}, expires_at
          from oauth_revoked_tokens where expires_at > ${migratedAt}`.execute(db);
        await sql`insert into revocation_heads (tenant_id, last_sequence)
          select tenant_id, max(sequence) from revocation_log group by tenant_id`.execute(db);
      },
    },
    "0013_mandate_requests": {
      async up(db: Kysely<unknown>) {
        // Asynchronous mandate grants (issue 15 item 3; OpenID CIBA Core, poll mode): an agent's
        // backchannel request, addressed to one human, until they approve or deny it on the pending
        // page and the agent polls its tokens. Its own table, not mandates in state "requested": the
        // approved mandate may be narrower than the ask, and polling updates rows mandates keep
        // immutable. The auth_req_id is a bearer secret of the agent: only its SHA-256 is stored; the
        // page names a request by `id`. See services/issue/mandates/request-store.ts.
        await db.schema
          .createTable("mandate_requests")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("id", "text", (c) => c.notNull())
          .addColumn("auth_req_id_hash", "text", (c) => c.notNull())
          .addColumn("client_id", "text", (c) => c.notNull())
          .addColumn("principal", "text", (c) => c.notNull())
          .addColumn("ask", "text", (c) => c.notNull())
          .addColumn("binding_message", "text")
          .addColumn("state", "text", (c) =>
            c.notNull().check(sql`state in ('requested', 'approved', 'denied', 'issued')`),
          )
          .addColumn("interval_s", "integer", (c) => c.notNull())
          .addColumn("last_poll_at", bigint)
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .addColumn("mandate_id", "text")
          .addColumn("decided_by", "text")
          .addColumn("decided_at", bigint)
          .addColumn("approval", "text")
          .addPrimaryKeyConstraint("mandate_requests_pk", ["tenant_id", "id"])
          .execute();
        await db.schema
          .createIndex("mandate_requests_auth_req_idx")
          .on("mandate_requests")
          .columns(["tenant_id", "auth_req_id_hash"])
          .unique()
          .execute();
        // The pending page: a human's open requests.
        await db.schema
          .createIndex("mandate_requests_principal_idx")
          .on("mandate_requests")
          .columns(["tenant_id", "principal", "state", "expires_at"])
          .execute();
      },
    },
    "0014_mandate_versions_receipts": {
      async up(db: Kysely<unknown>) {
        // Mandates (issue 15): the version an amendment supersedes (one amendment per version: the
        // unique index), the revocation policy (when the principal's account ends; at the end of the
        // login session it was granted in, when session_id is set) and the signed consent receipt
        // (a compact JWS, services/issue/mandates/receipts.ts). All immutable once granted, as 0009's.
        const mandates = () => db.schema.alterTable("mandates");
        await mandates().addColumn("supersedes", "text").execute();
        await mandates()
          .addColumn("revoke_on_account_end", "integer", (c) => c.notNull().defaultTo(0))
          .execute();
        await mandates().addColumn("session_id", "text").execute();
        await mandates().addColumn("receipt", "text").execute();
        await db.schema
          .createIndex("mandates_supersedes_idx")
          .on("mandates")
          .columns(["tenant_id", "supersedes"])
          .unique()
          .execute();
        await db.schema
          .createIndex("mandates_session_idx")
          .on("mandates")
          .columns(["tenant_id", "session_id"])
          .execute();
        await refuseMandateChanges(db, engine, [...IMMUTABLE_MANDATE_COLUMNS, ...IMMUTABLE_MANDATE_COLUMNS_0014]);
      },
    },
    "0015_agent_identity": {
      async up(db: Kysely<unknown>) {
        // Agent identity (issue 17). The certificates of each tenant's agent CA: one per CA key in
        // signing_keys (purpose agent_ca_root: self-signed; agent_ca: an intermediate signed by a
        // root), made once and never changed (services/signer/ca/).
        await db.schema
          .createTable("agent_ca_certificates")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("key_id", "text", (c) => c.notNull())
          .addColumn("role", "text", (c) => c.notNull().check(sql`role in ('root', 'intermediate')`))
          .addColumn("kid", "text", (c) => c.notNull())
          .addColumn("serial", "text", (c) => c.notNull())
          .addColumn("issuer_key_id", "text", (c) => c.notNull())
          .addColumn("der", "text", (c) => c.notNull())
          .addColumn("not_before", bigint, (c) => c.notNull())
          .addColumn("not_after", bigint, (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("agent_ca_certificates_pk", ["tenant_id", "key_id"])
          .execute();
        // Every agent certificate issued (services/issue/agents/): the deny list is the revoked
        // rows still within their validity, consulted at every use and published as a CRL.
        await db.schema
          .createTable("agent_certificates")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("serial", "text", (c) => c.notNull())
          .addColumn("client_id", "text", (c) => c.notNull())
          .addColumn("spiffe_id", "text", (c) => c.notNull())
          .addColumn("x5t_s256", "text", (c) => c.notNull())
          .addColumn("issuer_kid", "text", (c) => c.notNull())
          .addColumn("not_before", bigint, (c) => c.notNull())
          .addColumn("not_after", bigint, (c) => c.notNull())
          .addColumn("issued_at", bigint, (c) => c.notNull())
          /** How the agent proved itself: enrollment_token, attestation:<attestor>, renewal. */
          .addColumn("proof", "text", (c) => c.notNull())
          .addColumn("renewed_from", "text")
          .addColumn("revoked_at", bigint)
          .addColumn("revocation_reason", "text")
          .addPrimaryKeyConstraint("agent_certificates_pk", ["tenant_id", "serial"])
          .execute();
        await db.schema
          .createIndex("agent_certificates_client_idx")
          .on("agent_certificates")
          .columns(["tenant_id", "client_id", "not_after"])
          .execute();
        await db.schema
          .createIndex("agent_certificates_revoked_idx")
          .on("agent_certificates")
          .columns(["tenant_id", "revoked_at", "not_after"])
          .execute();
        // One-time enrollment tokens: only their SHA-256 is stored; used_at is set in the
        // transaction that records the certificate they bought.
        await db.schema
          .createTable("agent_enrollment_tokens")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("id", "text", (c) => c.notNull())
          .addColumn("token_hash", "text", (c) => c.notNull())
          .addColumn("client_id", "text", (c) => c.notNull())
          .addColumn("created_by", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addColumn("expires_at", bigint, (c) => c.notNull())
          .addColumn("used_at", bigint)
          .addColumn("used_serial", "text")
          .addPrimaryKeyConstraint("agent_enrollment_tokens_pk", ["tenant_id", "id"])
          .execute();
        await db.schema
          .createIndex("agent_enrollment_tokens_hash_idx")
          .on("agent_enrollment_tokens")
          .columns(["tenant_id", "token_hash"])
          .unique()
          .execute();
        // Workload platforms whose signed JWTs attest an agent instead of an enrollment token (e.g. a
        // Kubernetes cluster's service-account issuer), and which workload subject is which agent.
        await db.schema
          .createTable("agent_attestors")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("name", "text", (c) => c.notNull())
          .addColumn("issuer", "text", (c) => c.notNull())
          .addColumn("audience", "text", (c) => c.notNull())
          .addColumn("jwks_uri", "text")
          .addColumn("jwks", "text")
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("agent_attestors_pk", ["tenant_id", "name"])
          .execute();
        // A token's issuer picks its attestor: one attestor per issuer, also under concurrent creation.
        await db.schema
          .createIndex("agent_attestors_issuer_idx")
          .on("agent_attestors")
          .columns(["tenant_id", "issuer"])
          .unique()
          .execute();
        await db.schema
          .createTable("agent_workload_bindings")
          .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
          .addColumn("attestor", "text", (c) => c.notNull())
          .addColumn("subject", "text", (c) => c.notNull())
          .addColumn("client_id", "text", (c) => c.notNull())
          .addColumn("created_at", bigint, (c) => c.notNull())
          .addPrimaryKeyConstraint("agent_workload_bindings_pk", ["tenant_id", "attestor", "subject"])
          .execute();
      },
    },
    // Issue 18 (federation): each in its own file under migrations/.
    "0016_identity_providers": { up: (db: Kysely<unknown>) => identityProviders0016.up(db, engine) },
    "0017_agent_federation": { up: (db: Kysely<unknown>) => agentFederation0017.up(db, engine) },
    "0018_api_keys": { up: (db: Kysely<unknown>) => apiKeys0018.up(db, engine) },
    "0019_tenant_trusts": { up: (db: Kysely<unknown>) => tenantTrusts0019.up(db, engine) },
    "0020_federation_indexes": { up: (db: Kysely<unknown>) => federationIndexes0020.up(db) },
  };
}

/** The columns of a granted mandate that never change (0009_mandates). */
const IMMUTABLE_MANDATE_COLUMNS = [
  "tenant_id",
  "id",
  "version",
  "parent_id",
  "depth",
  "principal",
  "agent_id",
  "scopes",
  "resources",
  "authorization_details",
  "usage_limits",
  "may_act",
  "not_before",
  "expires_at",
  "max_token_ttl_ms",
  "max_delegation_depth",
  "created_at",
  "consent",
];

/** The columns 0014_mandate_versions_receipts adds, as immutable as the others. */
const IMMUTABLE_MANDATE_COLUMNS_0014 = ["supersedes", "revoke_on_account_end", "session_id", "receipt"];

/** The trigger refusing changes to `columns` of a mandate (replacing the one an earlier migration made). */
async function refuseMandateChanges(
  db: Kysely<unknown>,
  engine: Engine,
  columns: readonly string[] = IMMUTABLE_MANDATE_COLUMNS,
): Promise<void> {
  const message = "a granted mandate is immutable: only its state and revocation change";
  if (engine === "sqlite") {
    await sql.raw("DROP TRIGGER IF EXISTS mandates_immutable").execute(db);
    await sql
      .raw(
        `CREATE TRIGGER mandates_immutable BEFORE UPDATE OF ${columns.join(", ")} ON mandates ` +
          `BEGIN SELECT RAISE(ABORT, '${message}'); END`,
      )
      .execute(db);
    return;
  }
  const changed = columns.map((c) => `NEW.${c} IS DISTINCT FROM OLD.${c}`).join(" OR ");
  await sql
    .raw(
      "CREATE OR REPLACE FUNCTION mandate_refuse_mandate_change() RETURNS trigger LANGUAGE plpgsql AS $$ " +
        `BEGIN IF ${changed} THEN RAISE EXCEPTION '${message}' USING ERRCODE = 'integrity_constraint_violation'; ` +
        "END IF; RETURN NEW; END $$",
    )
    .execute(db);
  await sql.raw("DROP TRIGGER IF EXISTS mandates_immutable ON mandates").execute(db);
  await sql
    .raw(
      "CREATE TRIGGER mandates_immutable BEFORE UPDATE ON mandates " +
        "FOR EACH ROW EXECUTE FUNCTION mandate_refuse_mandate_change()",
    )
    .execute(db);
}

export class StaticMigrationProvider implements MigrationProvider {
  readonly #migrations: Record<string, Migration>;
  constructor(migrations: Record<string, Migration>) {
    this.#migrations = migrations;
  }
  async getMigrations(): Promise<Record<string, Migration>> {
    return this.#migrations;
  }
}
