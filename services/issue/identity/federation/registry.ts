// A tenant's upstream identity providers (identity_providers): what the login page offers, what
// home-realm discovery picks by e-mail domain, and what the federation endpoints start logins at.
// Admin RPCs and the CLI (admin.ts, services/cli/idps.ts) write through create/update here too.
import type { IdentityProvidersTable } from "../../../shared/store/migrations/0016_identity_providers.ts";
import type { Store, TenantDb, TenantTransaction } from "../../../shared/store/store.ts";

export type ProviderKind = "oidc" | "saml";

export interface IdentityProviderRecord {
  tenant: string;
  /** Lower-case letters, digits and dashes: the provider's name in URLs. */
  id: string;
  kind: ProviderKind;
  displayName: string;
  /** Protocol settings (OIDC: see OidcSettings in oidc.ts; SAML: saml*.ts). */
  settings: Record<string, unknown>;
  /** Lower-case e-mail domains this IdP signs in (home-realm discovery). */
  emailDomains: string[];
  /** Claim/attribute mapping to the Mandate identity (linking.ts). */
  claimMapping: Record<string, unknown>;
  enabled: boolean;
  createdAt: number;
  updatedAt: number;
}

export type NewIdentityProvider = Omit<IdentityProviderRecord, "tenant" | "createdAt" | "updatedAt">;

export const PROVIDER_ID = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** How a write runs: in the caller's transaction (`tx`, so it commits with the caller's audit event), at `now`. */
export interface WriteOptions {
  tx?: TenantTransaction | undefined;
  now?: number | undefined;
}

export class IdentityProviders {
  readonly #store: Store;
  readonly #now: () => number;

  constructor(store: Store, now: () => number) {
    this.#store = store;
    this.#now = now;
  }

  async create(
    tenant: string,
    provider: NewIdentityProvider,
    { tx, now = this.#now() }: WriteOptions = {},
  ): Promise<IdentityProviderRecord> {
    if (!PROVIDER_ID.test(provider.id)) throw new Error(`identity provider id "${provider.id}" is not valid`);
    await (tx ?? this.#store.forTenant(tenant).db)
      .insertInto("identity_providers")
      .values({ tenant_id: tenant, ...toRow(provider), created_at: now, updated_at: now })
      .execute();
    return { ...provider, emailDomains: normalDomains(provider.emailDomains), tenant, createdAt: now, updatedAt: now };
  }

  /**
   * Replaces the provider's fields; false when there is no such provider or, with `ifUpdatedAt`
   * (compare-and-set), when it changed since that update.
   */
  async update(
    tenant: string,
    provider: NewIdentityProvider,
    { tx, now = this.#now(), ifUpdatedAt }: WriteOptions & { ifUpdatedAt?: number | undefined } = {},
  ): Promise<boolean> {
    let query = (tx ?? this.#store.forTenant(tenant).db)
      .updateTable("identity_providers")
      .set({ ...toRow(provider), updated_at: now })
      .where("tenant_id", "=", tenant)
      .where("id", "=", provider.id);
    if (ifUpdatedAt !== undefined) query = query.where("updated_at", "=", ifUpdatedAt);
    const result = await query.executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async delete(tenant: string, id: string): Promise<boolean> {
    const result = await this.#store
      .forTenant(tenant)
      .db.deleteFrom("identity_providers")
      .where("tenant_id", "=", tenant)
      .where("id", "=", id)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async get(
    tenant: string,
    id: string,
    db?: TenantDb | TenantTransaction,
  ): Promise<IdentityProviderRecord | undefined> {
    const row = await (db ?? this.#store.forTenant(tenant).db)
      .selectFrom("identity_providers")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("id", "=", id)
      .executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  async list(tenant: string): Promise<IdentityProviderRecord[]> {
    const rows = await this.#store
      .forTenant(tenant)
      .db.selectFrom("identity_providers")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .orderBy("id")
      .execute();
    return rows.map(fromRow);
  }

  /** The enabled IdP that signs in `email`'s domain (home-realm discovery), if any. */
  async byEmailDomain(tenant: string, email: string): Promise<IdentityProviderRecord | undefined> {
    const at = email.lastIndexOf("@");
    const domain = (at >= 0 ? email.slice(at + 1) : email).trim().toLowerCase();
    if (!domain) return undefined;
    const providers = await this.list(tenant);
    return providers.find((p) => p.enabled && p.emailDomains.includes(domain));
  }
}

function normalDomains(domains: string[]): string[] {
  return [...new Set(domains.map((d) => d.trim().toLowerCase()).filter((d) => d !== ""))];
}

function toRow(p: NewIdentityProvider) {
  return {
    id: p.id,
    kind: p.kind,
    display_name: p.displayName,
    settings: JSON.stringify(p.settings),
    email_domains: JSON.stringify(normalDomains(p.emailDomains)),
    claim_mapping: JSON.stringify(p.claimMapping),
    enabled: p.enabled ? 1 : 0,
  };
}

function fromRow(row: IdentityProvidersTable): IdentityProviderRecord {
  return {
    tenant: row.tenant_id,
    id: row.id,
    kind: row.kind,
    displayName: row.display_name,
    settings: JSON.parse(row.settings) as Record<string, unknown>,
    emailDomains: JSON.parse(row.email_domains) as string[],
    claimMapping: JSON.parse(row.claim_mapping) as Record<string, unknown>,
    enabled: row.enabled === 1,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
