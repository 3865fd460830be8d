// Cross-organization trust (issue 18 item 3): tenant A (the trusting tenant) lets tenant B's agents
// (or humans) act in A within named scopes, resources and RFC 9396 authorization details, until the
// trust expires or is revoked. Rows live in A (tenant_trusts, migration 0019).
//
// Revocation stops every crossing at once: every token a trust let cross is remembered by `jti`
// (tenant_trust_crossings, recorded in the issuing transaction by `recordCrossing`), and revoking the
// trust appends each still-live one to A's revocation log (shared/oauth/revocation-log.ts) in the
// revoking transaction. Introspection and Authorize check that log on every call (this replica's
// appends are seen before the revocation returns: onLocalAppend; other replicas at the NOTIFY), so
// a crossing token issued earlier is inactive as soon as the revocation commits, and new exchanges
// are refused because the trust row is read on each one.
import { randomUUID } from "node:crypto";
import {
  type Actor,
  type TenantCrossing,
  tenantCrossed,
  tenantTrustCreated,
  tenantTrustRevoked,
} from "../../../shared/audit-events.ts";
import { RevocationLog } from "../../../shared/oauth/revocation-log.ts";
import type { TenantTrustsTable } from "../../../shared/store/migrations/0019_tenant_trusts.ts";
import type { Store, TenantDb, TenantTransaction, Transaction } from "../../../shared/store/store.ts";
import { pinToTenant } from "../../../shared/store/tenancy.ts";
import { checkDetails } from "../../mandates/exchange-request.ts";
import type { AuthorizationDetail } from "../../mandates/narrowing.ts";
import { OAuthError } from "../../oauth/errors.ts";

/** Which of B's identities may cross: its agents (a token whose `sub` is its client), or its humans. */
export const SUBJECT_KINDS = ["agent", "human"] as const;
export type SubjectKind = (typeof SUBJECT_KINDS)[number];

export interface TenantTrust {
  id: string;
  /** The trusting tenant (A). */
  tenant: string;
  /** The trusted tenant (B). */
  foreignTenant: string;
  /** A's agent client standing for B's identities: the crossing token's client_id and sub. */
  clientId: string;
  subjectKinds: SubjectKind[];
  scopes: string[];
  resources: string[];
  authorizationDetails: AuthorizationDetail[];
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

export interface NewTenantTrust {
  foreignTenant: string;
  clientId: string;
  subjectKinds: readonly SubjectKind[];
  scopes: readonly string[];
  resources: readonly string[];
  authorizationDetails: readonly AuthorizationDetail[];
  expiresAt: number;
}

/** A trust cannot be made as asked: `field` names the request field at fault. */
export class TenantTrustRefused extends Error {
  readonly kind: "invalid" | "not_found";
  readonly field: string;
  constructor(kind: "invalid" | "not_found", field: string, message: string) {
    super(message);
    this.name = "TenantTrustRefused";
    this.kind = kind;
    this.field = field;
  }
}

/** The active trust `tenant` placed in `foreignTenant` at `now`, if any (newest first). */
export function isActive(trust: TenantTrust, now: number): boolean {
  return trust.revokedAt === null && trust.expiresAt > now;
}

export class TenantTrusts {
  readonly #store: Store;
  readonly #now: () => number;
  constructor(store: Store, now: () => number) {
    this.#store = store;
    this.#now = now;
  }

  async create(tenant: string, trust: NewTenantTrust, actor: Partial<Actor>): Promise<TenantTrust> {
    const now = this.#now();
    await this.#validate(tenant, trust, now);
    const row: TenantTrust = {
      id: `ttr_${randomUUID()}`,
      tenant,
      foreignTenant: trust.foreignTenant,
      clientId: trust.clientId,
      subjectKinds: [...new Set(trust.subjectKinds)],
      scopes: [...new Set(trust.scopes)],
      resources: [...new Set(trust.resources)],
      authorizationDetails: [...trust.authorizationDetails],
      createdBy: JSON.stringify(actor.by ?? {}),
      createdAt: now,
      expiresAt: trust.expiresAt,
      revokedAt: null,
    };
    const scoped = this.#store.forTenant(tenant);
    await scoped.transaction(async (tx) => {
      await tx.insertInto("tenant_trusts").values(toRow(row)).execute();
      await scoped.recordEvent(tx, tenantTrustCreated({ ...row, trustId: row.id }, actor), now);
    });
    return row;
  }

  async list(tenant: string): Promise<TenantTrust[]> {
    const rows = await this.#store
      .forTenant(tenant)
      .db.selectFrom("tenant_trusts")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .orderBy("created_at", "desc")
      .execute();
    return rows.map(fromRow);
  }

  async get(tenant: string, id: string, db?: TenantDb | TenantTransaction): Promise<TenantTrust | undefined> {
    const row = await (db ?? this.#store.forTenant(tenant).db)
      .selectFrom("tenant_trusts")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("id", "=", id)
      .executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  /** The trusts of `tenant` in `foreignTenant` that are active now, newest first. */
  async activeFor(tenant: string, foreignTenant: string): Promise<TenantTrust[]> {
    const now = this.#now();
    const rows = await this.#store
      .forTenant(tenant)
      .db.selectFrom("tenant_trusts")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("foreign_tenant", "=", foreignTenant)
      .where("revoked_at", "is", null)
      .where("expires_at", ">", now)
      .orderBy("created_at", "desc")
      .execute();
    return rows.map(fromRow);
  }

  /**
   * Ends the trust and revokes every crossing token it let through that has not expired, in one
   * transaction with the audit record. Revoking a revoked trust changes nothing and says so.
   */
  async revoke(
    tenant: string,
    id: string,
    actor: Partial<Actor>,
  ): Promise<{ trust: TenantTrust; revokedTokens: number }> {
    const now = this.#now();
    const scoped = this.#store.forTenant(tenant);
    return scoped.transaction(async (tx) => {
      // The row lock (PostgreSQL) orders this against a crossing being recorded (recordCrossing
      // locks it too): a crossing either committed before — and is revoked here — or sees the revocation.
      const locked = await tx
        .updateTable("tenant_trusts")
        .set({ revoked_at: now })
        .where("tenant_id", "=", tenant)
        .where("id", "=", id)
        .where("revoked_at", "is", null)
        .executeTakeFirst();
      const trust = await this.get(tenant, id, tx);
      if (!trust) throw new TenantTrustRefused("not_found", "id", `no tenant trust ${id} in tenant ${tenant}`);
      if (Number(locked.numUpdatedRows) === 0) return { trust, revokedTokens: 0 };
      const live = await tx
        .selectFrom("tenant_trust_crossings")
        .select(["jti", "expires_at"])
        .where("tenant_id", "=", tenant)
        .where("trust_id", "=", id)
        .where("expires_at", ">", now)
        .execute();
      await scoped.recordEvent(
        tx,
        tenantTrustRevoked({ trustId: id, foreignTenant: trust.foreignTenant }, live.length, actor),
        now,
      );
      // Last: the log's head row stays locked until commit (revocation-log.ts).
      await scoped.use(RevocationLog, tx).append(
        live.map((t) => ({ kind: "jti" as const, id: t.jti, expireTime: Number(t.expires_at) })),
        now,
      );
      return { trust, revokedTokens: live.length };
    });
  }

  /**
   * In the transaction `tx` (opened on the store, not on one tenant: both tenants' outboxes are
   * written): checks the trust is still active under a row lock, remembers the token A issued, and
   * records the crossing in A's log and in B's. Refuses (false) when the trust ended meanwhile.
   */
  async recordCrossing(tx: Transaction, crossing: TenantCrossing): Promise<boolean> {
    const now = this.#now();
    const inTrusting = pinToTenant(tx, crossing.tenant) as TenantTransaction;
    const active = await lockActive(inTrusting, crossing.tenant, crossing.trustId, now, this.#store.engine);
    if (!active) return false;
    // Crossings whose tokens expired no longer need revoking: each crossing clears its trust's (the
    // primary key's prefix), so the table stays as small as the trust's live tokens.
    await inTrusting
      .deleteFrom("tenant_trust_crossings")
      .where("tenant_id", "=", crossing.tenant)
      .where("trust_id", "=", crossing.trustId)
      .where("expires_at", "<=", now)
      .execute();
    await inTrusting
      .insertInto("tenant_trust_crossings")
      .values({
        tenant_id: crossing.tenant,
        trust_id: crossing.trustId,
        jti: crossing.jti,
        expires_at: crossing.expiresAt,
      })
      .execute();
    await this.#store.forTenant(crossing.tenant).recordEvent(inTrusting, tenantCrossed(crossing, "inbound"), now);
    const inForeign = pinToTenant(tx, crossing.foreignTenant) as TenantTransaction;
    await this.#store
      .forTenant(crossing.foreignTenant)
      .recordEvent(inForeign, tenantCrossed(crossing, "outbound"), now);
    return true;
  }

  async #validate(tenant: string, trust: NewTenantTrust, now: number): Promise<void> {
    if (trust.foreignTenant === tenant) {
      throw new TenantTrustRefused("invalid", "foreign_tenant", "a tenant does not need a trust in itself");
    }
    const foreign = await this.#store.db
      .selectFrom("tenants")
      .select("id")
      .where("id", "=", trust.foreignTenant)
      .executeTakeFirst();
    if (!foreign) throw new TenantTrustRefused("not_found", "foreign_tenant", `no tenant ${trust.foreignTenant}`);
    const client = await this.#store
      .forTenant(tenant)
      .db.selectFrom("oauth_clients")
      .select("kind")
      .where("tenant_id", "=", tenant)
      .where("client_id", "=", trust.clientId)
      .executeTakeFirst();
    if (!client)
      throw new TenantTrustRefused("not_found", "client_id", `no client ${trust.clientId} in tenant ${tenant}`);
    if (client.kind !== "agent") {
      throw new TenantTrustRefused(
        "invalid",
        "client_id",
        `${trust.clientId} is not an agent client: B's identities act in A as an agent`,
      );
    }
    if (trust.subjectKinds.length === 0 || trust.subjectKinds.some((k) => !SUBJECT_KINDS.includes(k))) {
      throw new TenantTrustRefused("invalid", "subject_kinds", `subject kinds are among ${SUBJECT_KINDS.join(", ")}`);
    }
    if (trust.scopes.length === 0 && trust.resources.length === 0 && trust.authorizationDetails.length === 0) {
      throw new TenantTrustRefused(
        "invalid",
        "scopes",
        "a trust names the scopes, resources or authorization details it allows",
      );
    }
    try {
      checkDetails(trust.authorizationDetails);
    } catch (error) {
      if (error instanceof OAuthError) throw new TenantTrustRefused("invalid", "authorization_details", error.message);
      throw error;
    }
    if (!(trust.expiresAt > now))
      throw new TenantTrustRefused("invalid", "expires_at", "the trust must expire in the future");
  }
}

/** The trust row, locked for the rest of `tx` (PostgreSQL; SQLite has one writer), if active at `now`. */
async function lockActive(
  tx: TenantTransaction,
  tenant: string,
  id: string,
  now: number,
  engine: "sqlite" | "postgres",
): Promise<boolean> {
  let query = tx
    .selectFrom("tenant_trusts")
    .select("id")
    .where("tenant_id", "=", tenant)
    .where("id", "=", id)
    .where("revoked_at", "is", null)
    .where("expires_at", ">", now);
  if (engine === "postgres") query = query.forUpdate();
  return (await query.executeTakeFirst()) !== undefined;
}

type Row = TenantTrustsTable;

function toRow(trust: TenantTrust): Row {
  return {
    tenant_id: trust.tenant,
    id: trust.id,
    foreign_tenant: trust.foreignTenant,
    client_id: trust.clientId,
    subject_kinds: JSON.stringify(trust.subjectKinds),
    allowed_scopes: JSON.stringify(trust.scopes),
    allowed_resources: JSON.stringify(trust.resources),
    authorization_details: JSON.stringify(trust.authorizationDetails),
    created_by: trust.createdBy,
    created_at: trust.createdAt,
    expires_at: trust.expiresAt,
    revoked_at: trust.revokedAt,
  };
}

function fromRow(row: Row): TenantTrust {
  return {
    id: row.id,
    tenant: row.tenant_id,
    foreignTenant: row.foreign_tenant,
    clientId: row.client_id,
    subjectKinds: JSON.parse(row.subject_kinds) as SubjectKind[],
    scopes: JSON.parse(row.allowed_scopes) as string[],
    resources: JSON.parse(row.allowed_resources) as string[],
    authorizationDetails: JSON.parse(row.authorization_details) as AuthorizationDetail[],
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}
