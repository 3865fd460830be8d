// Migration 0019 (issue 18): cross-organization trust — tenant A (tenant_id) lets tenant B's agents
// (or humans) act in A within named bounds, until it expires or is revoked. Not yet released: its
// owner may still change it until issue 18 lands.
import type { Kysely } from "kysely";

export interface TenantTrustsTable {
  /** The trusting tenant (A). */
  tenant_id: string;
  id: string;
  /** The trusted tenant (B). */
  foreign_tenant: string;
  /**
   * The agent client of A that represents B's crossing identities in A: the crossing token's
   * client_id and sub (B's identities travel in its `act`); chosen by A's administrator.
   */
  client_id: string;
  /** JSON array: agent | human — which of B's identities may cross. */
  subject_kinds: string;
  /** JSON arrays: the most a crossing token may carry. */
  allowed_scopes: string;
  allowed_resources: string;
  authorization_details: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

/**
 * Each access token a trust let cross (its `jti`, in the trusting tenant A), kept until it expires:
 * revoking the trust appends every live one to A's revocation log in the revoking transaction, so
 * introspection and Authorize refuse them at once (shared/oauth/revocation-log.ts).
 */
export interface TenantTrustCrossingsTable {
  tenant_id: string;
  trust_id: string;
  jti: string;
  expires_at: number;
}

export async function up(db: Kysely<unknown>, engine: "sqlite" | "postgres"): Promise<void> {
  const bigint = engine === "postgres" ? "bigint" : "integer";
  await db.schema
    .createTable("tenant_trusts")
    .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("foreign_tenant", "text", (c) => c.notNull().references("tenants.id"))
    .addColumn("client_id", "text", (c) => c.notNull())
    .addColumn("subject_kinds", "text", (c) => c.notNull())
    .addColumn("allowed_scopes", "text", (c) => c.notNull())
    .addColumn("allowed_resources", "text", (c) => c.notNull())
    .addColumn("authorization_details", "text", (c) => c.notNull())
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("created_at", bigint, (c) => c.notNull())
    .addColumn("expires_at", bigint, (c) => c.notNull())
    .addColumn("revoked_at", bigint)
    .addPrimaryKeyConstraint("tenant_trusts_pk", ["tenant_id", "id"])
    .execute();
  await db.schema
    .createIndex("tenant_trusts_foreign_idx")
    .on("tenant_trusts")
    .columns(["tenant_id", "foreign_tenant"])
    .execute();
  await db.schema
    .createTable("tenant_trust_crossings")
    .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
    .addColumn("trust_id", "text", (c) => c.notNull())
    .addColumn("jti", "text", (c) => c.notNull())
    .addColumn("expires_at", bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint("tenant_trust_crossings_pk", ["tenant_id", "trust_id", "jti"])
    .execute();
}
