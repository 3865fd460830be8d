// Persistence of the authorization state: codes, grants (refresh-token families), refresh tokens,
// the access tokens minted from grants, and revocations. Obtained from the tenant handle
// (`scoped.grants(tx)`): bound to the caller's transaction, a token is never returned without its
// rows (and audit record); without one, for reads.
import type { OAuthGrantsTable } from "../store/schema.ts";
import type { TenantDb } from "../store/tenancy.ts";
import { RevocationLog } from "./revocation-log.ts";

/** The approved authorization request a code stands for. */
export interface CodeRequest {
  clientId: string;
  redirectUri: string;
  scope: string[];
  resources: string[];
  codeChallenge: string;
  subject: string;
  authTime: number;
  acr: string;
  amr: string[];
  claims: Record<string, unknown>;
  nonce?: string | undefined;
  dpopJkt?: string | undefined;
}

export interface GrantRow {
  id: string;
  clientId: string;
  subject: string;
  scope: string[];
  resources: string[];
  dpopJkt: string | null;
  authTime: number | null;
  acr: string | null;
  amr: string[];
  claims: Record<string, unknown>;
  expiresAt: number;
  revokedAt: number | null;
  /** The mandate a token exchange's family lives under (its tokens carry mandate_id); null otherwise. */
  mandateId?: string | null;
  /** RFC 9396 authorization details the family's access tokens carry (token exchange of a mandate). */
  authorizationDetails?: unknown[] | undefined;
}

/** Ids per `IN (...)` list: well inside both engines' bound-parameter limits. */
const IN_CHUNK = 500;

export class GrantStore {
  readonly #tenant: string;
  readonly #db: TenantDb;
  constructor(tenant: string, db: TenantDb) {
    this.#tenant = tenant;
    this.#db = db;
  }

  async insertCode(codeHash: string, request: CodeRequest, now: number, ttlMs: number) {
    await this.#db
      .insertInto("oauth_codes")
      .values({
        tenant_id: this.#tenant,
        code_hash: codeHash,
        client_id: request.clientId,
        request: JSON.stringify(request),
        created_at: now,
        expires_at: now + ttlMs,
        consumed_at: null,
        grant_id: null,
      })
      .execute();
  }

  async findCode(codeHash: string) {
    const row = await this.#db
      .selectFrom("oauth_codes")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("code_hash", "=", codeHash)
      .executeTakeFirst();
    return row && { ...row, request: JSON.parse(row.request) as CodeRequest };
  }

  /** Marks the code used by `grantId`; false if another request consumed it first. */
  async consumeCode(codeHash: string, grantId: string, now: number): Promise<boolean> {
    const result = await this.#db
      .updateTable("oauth_codes")
      .set({ consumed_at: now, grant_id: grantId })
      .where("tenant_id", "=", this.#tenant)
      .where("code_hash", "=", codeHash)
      .where("consumed_at", "is", null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async insertGrant(grant: GrantRow, now: number) {
    await this.#db
      .insertInto("oauth_grants")
      .values({
        tenant_id: this.#tenant,
        id: grant.id,
        client_id: grant.clientId,
        subject: grant.subject,
        scope: grant.scope.join(" "),
        resources: JSON.stringify(grant.resources),
        dpop_jkt: grant.dpopJkt,
        auth_time: grant.authTime,
        acr: grant.acr,
        amr: JSON.stringify(grant.amr),
        claims: JSON.stringify(grant.claims),
        created_at: now,
        expires_at: grant.expiresAt,
        revoked_at: null,
        mandate_id: grant.mandateId ?? null,
        authorization_details: grant.authorizationDetails?.length ? JSON.stringify(grant.authorizationDetails) : null,
      })
      .execute();
  }

  async findGrant(id: string): Promise<GrantRow | undefined> {
    const row = await this.#db
      .selectFrom("oauth_grants")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", id)
      .executeTakeFirst();
    return row && grantOf(row);
  }

  /**
   * The refresh-token families that live under any of these mandates (token exchanges of a mandate,
   * migration 0011), revoked or not: what a mandate's revocation reaches besides its access tokens.
   */
  async grantsOfMandates(mandateIds: readonly string[]): Promise<GrantRow[]> {
    const found: GrantRow[] = [];
    for (let i = 0; i < mandateIds.length; i += IN_CHUNK) {
      const rows = await this.#db
        .selectFrom("oauth_grants")
        .selectAll()
        .where("tenant_id", "=", this.#tenant)
        .where("mandate_id", "in", mandateIds.slice(i, i + IN_CHUNK))
        .orderBy("id")
        .execute();
      found.push(...rows.map(grantOf));
    }
    return found;
  }

  /**
   * Revokes a grant and everything derived from it: its refresh tokens die with it (they are
   * checked against the grant) and its unexpired access tokens join the revocation list, so
   * introspection refuses them at once. True if this call revoked it.
   */
  async revokeGrant(id: string, now: number): Promise<boolean> {
    const result = await this.#db
      .updateTable("oauth_grants")
      .set({ revoked_at: now })
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", id)
      .where("revoked_at", "is", null)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) return false;
    const live = await this.#db
      .selectFrom("oauth_access_tokens")
      .select(["jti", "expires_at"])
      .where("tenant_id", "=", this.#tenant)
      .where("grant_id", "=", id)
      .where("expires_at", ">", now)
      .execute();
    for (const token of live) await this.revokeAccessToken(token.jti, token.expires_at, now);
    return true;
  }

  async insertRefreshToken(tokenHash: string, grantId: string, now: number, expiresAt: number) {
    await this.#db
      .insertInto("oauth_refresh_tokens")
      .values({
        tenant_id: this.#tenant,
        token_hash: tokenHash,
        grant_id: grantId,
        created_at: now,
        expires_at: expiresAt,
        spent_at: null,
      })
      .execute();
  }

  async findRefreshToken(tokenHash: string) {
    return this.#db
      .selectFrom("oauth_refresh_tokens")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("token_hash", "=", tokenHash)
      .executeTakeFirst();
  }

  /** Spends a refresh token on rotation; false if it was already spent (reuse, or a concurrent rotation). */
  async spendRefreshToken(tokenHash: string, now: number): Promise<boolean> {
    const result = await this.#db
      .updateTable("oauth_refresh_tokens")
      .set({ spent_at: now })
      .where("tenant_id", "=", this.#tenant)
      .where("token_hash", "=", tokenHash)
      .where("spent_at", "is", null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async recordAccessToken(jti: string, grantId: string, expiresAt: number) {
    await this.#db
      .insertInto("oauth_access_tokens")
      .values({ tenant_id: this.#tenant, jti, grant_id: grantId, expires_at: expiresAt })
      .execute();
  }

  async grantOfAccessToken(jti: string): Promise<string | undefined> {
    const row = await this.#db
      .selectFrom("oauth_access_tokens")
      .select("grant_id")
      .where("tenant_id", "=", this.#tenant)
      .where("jti", "=", jti)
      .executeTakeFirst();
    return row?.grant_id;
  }

  /** Lists the token as revoked until it expires, and enters it in the revocation log (the feed, every replica). */
  async revokeAccessToken(jti: string, expiresAt: number, at: number = Date.now()) {
    const result = await this.#db
      .insertInto("oauth_revoked_tokens")
      .values({ tenant_id: this.#tenant, jti, expires_at: expiresAt })
      .onConflict((oc) => oc.columns(["tenant_id", "jti"]).doNothing())
      .executeTakeFirst();
    if (Number(result.numInsertedOrUpdatedRows ?? 0) === 0) return;
    await new RevocationLog(this.#tenant, this.#db).append([{ kind: "jti", id: jti, expireTime: expiresAt }], at);
  }

  async isAccessTokenRevoked(jti: string): Promise<boolean> {
    const row = await this.#db
      .selectFrom("oauth_revoked_tokens")
      .select("jti")
      .where("tenant_id", "=", this.#tenant)
      .where("jti", "=", jti)
      .executeTakeFirst();
    return row !== undefined;
  }
}

function grantOf(row: OAuthGrantsTable): GrantRow {
  return {
    id: row.id,
    clientId: row.client_id,
    subject: row.subject,
    scope: row.scope.split(" ").filter(Boolean),
    resources: JSON.parse(row.resources) as string[],
    dpopJkt: row.dpop_jkt,
    authTime: row.auth_time,
    acr: row.acr,
    amr: row.amr ? (JSON.parse(row.amr) as string[]) : [],
    claims: row.claims ? (JSON.parse(row.claims) as Record<string, unknown>) : {},
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    mandateId: row.mandate_id ?? null,
    ...(row.authorization_details ? { authorizationDetails: JSON.parse(row.authorization_details) as unknown[] } : {}),
  };
}
