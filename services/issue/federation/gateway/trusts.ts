// federation_trusts (migration 0017): which external issuers a tenant lets its agents arrive from,
// how their credentials are verified, how their subjects map to agents, and the most they may get.
// A trust is active until it expires or is revoked; a revoked trust refuses at once (every request
// reads the row).

import { federationTrustChanged } from "../../../shared/audit-events.ts";
import type { FederationTrustsTable } from "../../../shared/store/migrations/0017_agent_federation.ts";
import type { Store } from "../../../shared/store/store.ts";
import { uuidV7 } from "../../../shared/uuid-v7.ts";

export const TRUST_KINDS = ["jwt", "id_jag", "saml", "x509_ca"] as const;
export type TrustKind = (typeof TRUST_KINDS)[number];

/** How a trust's credentials are verified. */
export interface TrustVerification {
  /** JWT / ID-JAG: the issuer's JWK Set URL (fetched SSRF-safely). */
  jwks_uri?: string | undefined;
  /** JWT / ID-JAG: find jwks_uri by OIDC Discovery / RFC 8414 metadata at the issuer. */
  discovery?: boolean | undefined;
  /** JWT / ID-JAG: a JWK Set configured inline. */
  jwks?: { keys: Record<string, unknown>[] } | undefined;
  /** SAML: the IdP's signing certificates; x509_ca: the CA certificates (PEM). */
  certificates?: string[] | undefined;
  /** The audience expected instead of the tenant's issuer / token endpoint (RFC 7523 §3 item 3). */
  audience?: string | undefined;
  /** Longest assertion lifetime (exp − iat, or exp − now) accepted, seconds; default 3600. */
  max_lifetime?: number | undefined;
}

/** How an external subject maps to an agent client of the tenant. */
export interface TrustMapping {
  /** The claim (JWT) / attribute (SAML) / certificate name (x509_ca: "san_uri", "san_dns", "san_email", "subject") read; default "sub". */
  claim?: string | undefined;
  /** Value of that claim → agent client id. */
  clients?: Record<string, string> | undefined;
  /** Every subject of this trust is this agent (when no table entry matches or no table is given). */
  client?: string | undefined;
}

export interface NewFederationTrust {
  kind: TrustKind;
  issuer: string;
  verification: TrustVerification;
  mapping: TrustMapping;
  allowedScopes: string[];
  allowedResources: string[];
  expiresAt?: number | undefined;
}

export interface FederationTrust extends Omit<NewFederationTrust, "expiresAt"> {
  id: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

export function toTrust(row: FederationTrustsTable): FederationTrust {
  return {
    id: row.id,
    kind: row.kind as TrustKind,
    issuer: row.issuer,
    verification: JSON.parse(row.verification) as TrustVerification,
    mapping: JSON.parse(row.mapping) as TrustMapping,
    allowedScopes: JSON.parse(row.allowed_scopes) as string[],
    allowedResources: JSON.parse(row.allowed_resources) as string[],
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  };
}

export function trustRow(tenant: string, trust: NewFederationTrust, now: number): FederationTrustsTable {
  return {
    tenant_id: tenant,
    id: `ft_${uuidV7(now)}`,
    kind: trust.kind,
    issuer: trust.issuer,
    verification: JSON.stringify(trust.verification),
    mapping: JSON.stringify(trust.mapping),
    allowed_scopes: JSON.stringify(trust.allowedScopes),
    allowed_resources: JSON.stringify(trust.allowedResources),
    created_at: now,
    expires_at: trust.expiresAt ?? null,
    revoked_at: null,
  };
}

/** The tenant's active trusts of one kind for one issuer (none revoked, none expired). */
export async function activeTrusts(
  store: Store,
  tenant: string,
  kinds: readonly TrustKind[],
  issuer: string | undefined,
  now: number,
): Promise<FederationTrust[]> {
  let query = store
    .forTenant(tenant)
    .db.selectFrom("federation_trusts")
    .selectAll()
    .where("tenant_id", "=", tenant)
    .where("kind", "in", [...kinds])
    .where("revoked_at", "is", null);
  if (issuer !== undefined) query = query.where("issuer", "=", issuer);
  const rows = await query.execute();
  return rows.map(toTrust).filter((trust) => trust.expiresAt === null || trust.expiresAt > now);
}

export async function listTrusts(store: Store, tenant: string): Promise<FederationTrust[]> {
  const rows = await store
    .forTenant(tenant)
    .db.selectFrom("federation_trusts")
    .selectAll()
    .where("tenant_id", "=", tenant)
    .orderBy("created_at")
    .execute();
  return rows.map(toTrust);
}

/** Creates a trust and records its audit event in the same transaction. */
export async function createTrust(
  store: Store,
  tenant: string,
  trust: NewFederationTrust,
  now: number,
  by: Record<string, string>,
): Promise<FederationTrust> {
  const row = trustRow(tenant, trust, now);
  const scoped = store.forTenant(tenant);
  await scoped.transaction(async (tx) => {
    await tx.insertInto("federation_trusts").values(row).execute();
    await scoped.recordEvent(tx, federationTrustChanged("created", trustSummary(row), by), now);
  });
  return toTrust(row);
}

/** Revokes a trust (refused from the next request on); false when there is no such active trust. */
export async function revokeTrust(
  store: Store,
  tenant: string,
  id: string,
  now: number,
  by: Record<string, string>,
): Promise<boolean> {
  const scoped = store.forTenant(tenant);
  return scoped.transaction(async (tx) => {
    const row = await tx
      .selectFrom("federation_trusts")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("id", "=", id)
      .executeTakeFirst();
    if (!row || row.revoked_at !== null) return false;
    await tx
      .updateTable("federation_trusts")
      .set({ revoked_at: now })
      .where("tenant_id", "=", tenant)
      .where("id", "=", id)
      .execute();
    await scoped.recordEvent(tx, federationTrustChanged("revoked", trustSummary(row), by), now);
    return true;
  });
}

function trustSummary(row: FederationTrustsTable) {
  return {
    id: row.id,
    kind: row.kind,
    issuer: row.issuer,
    allowedScopes: JSON.parse(row.allowed_scopes) as string[],
    allowedResources: JSON.parse(row.allowed_resources) as string[],
    expiresAt: row.expires_at,
  };
}
