// Migration 0017 (issue 18): the agent federation gateway's trusts — external issuers of JWTs,
// SAML bearer assertions, ID-JAGs and external CAs whose identities a tenant lets in, and within
// which bounds. Not yet released: its owner may still change it until issue 18 lands.
import type { Kysely } from "kysely";

export interface FederationTrustsTable {
  tenant_id: string;
  id: string;
  /** jwt | saml | id_jag | x509_ca */
  kind: string;
  /** The external issuer (JWT `iss`, SAML Issuer, CA subject) this trust is for. */
  issuer: string;
  /** JSON: how to verify (jwks_uri / jwks / discovery; SAML certificates; CA PEMs) and the audience expected. */
  verification: string;
  /** JSON: external subject → agent mapping (claim names, fixed client, patterns). */
  mapping: string;
  /** JSON arrays: what a federated identity may get at most. */
  allowed_scopes: string;
  allowed_resources: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

export async function up(db: Kysely<unknown>, engine: "sqlite" | "postgres"): Promise<void> {
  const bigint = engine === "postgres" ? "bigint" : "integer";
  await db.schema
    .createTable("federation_trusts")
    .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("issuer", "text", (c) => c.notNull())
    .addColumn("verification", "text", (c) => c.notNull())
    .addColumn("mapping", "text", (c) => c.notNull())
    .addColumn("allowed_scopes", "text", (c) => c.notNull())
    .addColumn("allowed_resources", "text", (c) => c.notNull())
    .addColumn("created_at", bigint, (c) => c.notNull())
    .addColumn("expires_at", bigint)
    .addColumn("revoked_at", bigint)
    .addPrimaryKeyConstraint("federation_trusts_pk", ["tenant_id", "id"])
    .execute();
  await db.schema
    .createIndex("federation_trusts_issuer_idx")
    .on("federation_trusts")
    .columns(["tenant_id", "kind", "issuer"])
    .execute();
}
