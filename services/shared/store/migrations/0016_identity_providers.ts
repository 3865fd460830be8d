// Migration 0016 (issue 18): upstream identity providers of each tenant (OIDC, SAML 2.0), the
// identities they vouch for linked to Mandate subjects, and logins in flight to them.
// Not yet released: its owner may still change it until issue 18 lands.
import type { Kysely } from "kysely";

/** A tenant's upstream IdP (services/issue/identity/federation/). */
export interface IdentityProvidersTable {
  tenant_id: string;
  /** Its name in URLs and the CLI: lower-case letters, digits, dashes. */
  id: string;
  kind: "oidc" | "saml";
  display_name: string;
  /** JSON: the protocol settings (OIDC issuer/client/preset; SAML IdP metadata and SP options). */
  settings: string;
  /** JSON array of e-mail domains whose users this IdP signs in (home-realm discovery). */
  email_domains: string;
  /** JSON: how claims/attributes map to the Mandate identity (email, name, groups → roles). */
  claim_mapping: string;
  enabled: number;
  created_at: number;
  updated_at: number;
}

/** An upstream identity linked to a Mandate subject. */
export interface FederatedIdentitiesTable {
  tenant_id: string;
  provider_id: string;
  /** The IdP's subject (OIDC `sub`, SAML NameID). */
  external_subject: string;
  /** The Mandate `sub` it signs in as. */
  subject: string;
  /** JSON: the mapped attributes of the last login (email, name, roles). */
  attributes: string;
  created_at: number;
  last_login_at: number;
}

/** A login sent to an upstream IdP, until it comes back (state/RelayState, nonce, PKCE, InResponseTo). */
export interface FederationLoginsTable {
  tenant_id: string;
  /** SHA-256 of the state / RelayState handle the browser carries. */
  id: string;
  provider_id: string;
  /** JSON: what the return must match (nonce, code_verifier, SAML request id) and where it resumes. */
  pending: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

/**
 * A Mandate login session opened by a federated login (cookie value hashed): the subject, the
 * upstream's acr/amr/auth_time passed through, and the linked identity's claims. Separate from
 * oauth_sessions so it exists whatever the primary identity provider (dev users or Kratos).
 */
export interface FederatedSessionsTable {
  tenant_id: string;
  id_hash: string;
  provider_id: string;
  subject: string;
  auth_time: number;
  acr: string;
  /** JSON array of RFC 8176 method references. */
  amr: string;
  /** JSON: the identity claims released by scope (email, name, groups...). */
  claims: string;
  expires_at: number;
}

export async function up(db: Kysely<unknown>, engine: "sqlite" | "postgres"): Promise<void> {
  const bigint = engine === "postgres" ? "bigint" : "integer";
  await db.schema
    .createTable("identity_providers")
    .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("display_name", "text", (c) => c.notNull())
    .addColumn("settings", "text", (c) => c.notNull())
    .addColumn("email_domains", "text", (c) => c.notNull())
    .addColumn("claim_mapping", "text", (c) => c.notNull())
    .addColumn("enabled", "integer", (c) => c.notNull())
    .addColumn("created_at", bigint, (c) => c.notNull())
    .addColumn("updated_at", bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint("identity_providers_pk", ["tenant_id", "id"])
    .execute();
  await db.schema
    .createTable("federated_identities")
    .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
    .addColumn("provider_id", "text", (c) => c.notNull())
    .addColumn("external_subject", "text", (c) => c.notNull())
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("attributes", "text", (c) => c.notNull())
    .addColumn("created_at", bigint, (c) => c.notNull())
    .addColumn("last_login_at", bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint("federated_identities_pk", ["tenant_id", "provider_id", "external_subject"])
    .execute();
  await db.schema
    .createTable("federation_logins")
    .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("provider_id", "text", (c) => c.notNull())
    .addColumn("pending", "text", (c) => c.notNull())
    .addColumn("created_at", bigint, (c) => c.notNull())
    .addColumn("expires_at", bigint, (c) => c.notNull())
    .addColumn("used_at", bigint)
    .addPrimaryKeyConstraint("federation_logins_pk", ["tenant_id", "id"])
    .execute();
  await db.schema
    .createTable("federated_sessions")
    .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
    .addColumn("id_hash", "text", (c) => c.notNull())
    .addColumn("provider_id", "text", (c) => c.notNull())
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("auth_time", bigint, (c) => c.notNull())
    .addColumn("acr", "text", (c) => c.notNull())
    .addColumn("amr", "text", (c) => c.notNull())
    .addColumn("claims", "text", (c) => c.notNull())
    .addColumn("expires_at", bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint("federated_sessions_pk", ["tenant_id", "id_hash"])
    .execute();
}
