// Mandates of a tenant in the store (tables mandates, mandate_usage): insert, read, list, the chain
// of parents, and revocation that cascades to every sub-mandate in one transaction. A granted
// mandate is immutable — only its state and revocation columns change (a trigger of migration
// 0009 refuses the rest); expiry and exhaustion are not stored but computed on read
// (`currentState`). Obtained from the tenant handle: `scoped.use(MandateStore, tx?)`.
//
// Concurrency: a sub-mandate is inserted while its parent chain is locked FOR SHARE (PostgreSQL)
// and a revocation first updates the mandate it starts from, so either the revocation sees the new
// sub-mandate (and revokes it) or the creation sees the revoked parent (and refuses). SQLite has
// one writer: transactions run one after another.
import { PostgresAdapter } from "kysely";
import type { MandatesTable } from "../store/schema.ts";
import type { TenantDb } from "../store/tenancy.ts";

/** A usage limit: at most `maximum` of `meter` per `periodMs` (0: over the mandate's whole life). */
export interface UsageLimitBound {
  meter: string;
  maximum: number;
  periodMs: number;
}

/** An RFC 9396 authorization details object: a `type` and its type's fields. */
export type AuthorizationDetail = { type: string } & Record<string, unknown>;

/** What a mandate allows (times in ms since the epoch). */
export interface MandateBounds {
  scopes: readonly string[];
  resources: readonly string[];
  authorizationDetails: readonly AuthorizationDetail[];
  notBefore: number;
  expiresAt: number;
  /** Longest access-token lifetime; null: no bound of its own. */
  maxTokenTtlMs: number | null;
  usageLimits: readonly UsageLimitBound[];
  maxDelegationDepth: number;
  /** Agents (client ids) that may receive a sub-mandate; empty: any. */
  mayAct: readonly string[];
}

/** Stored states; "expired" and "exhausted" are computed on read. */
export type StoredState = "requested" | "active" | "denied" | "revoked";
export type MandateState = StoredState | "expired" | "exhausted";

/** How the principal approved the mandate. */
export interface ConsentRecord {
  /** Who approved: the principal, or for an administrative grant the administrator (`by`). */
  approvedBy: Record<string, string>;
  at: number;
  method: "administrative" | "interactive" | "asynchronous";
  /** The text shown to whoever approved it. */
  text: string;
}

export interface MandateRecord extends MandateBounds {
  id: string;
  version: number;
  parentId: string | null;
  /** Hops from the root mandate (0 for a root). */
  depth: number;
  principal: string;
  agent: string;
  state: StoredState;
  createdAt: number;
  revokedAt: number | null;
  revokedBy: Record<string, string> | null;
  revokeReason: string | null;
  consent: ConsentRecord;
  /** The version this amendment supersedes (revoked when this one is granted). */
  supersedes?: string | null;
  /** Revoked when the principal's account ends (is deleted or disabled). */
  revokeOnAccountEnd?: boolean;
  /** Revoked when this login session (the one it was granted in) ends; null: sessions do not matter. */
  sessionId?: string | null;
  /** The signed consent receipt (compact JWS over the mandate's canonical JSON); null before receipts. */
  receipt?: string | null;
}

export interface MandateFilter {
  principal?: string | undefined;
  agent?: string | undefined;
  /** Only these (computed) states; empty or absent for all. */
  states?: readonly MandateState[] | undefined;
}

/** A mandate a revocation reached. */
export interface RevokedMandate {
  id: string;
  principal: string;
  agent: string;
}

export interface Revocation {
  by: Record<string, string>;
  reason: string;
  at: number;
}

/** Longest chain of sub-mandates followed (a guard: depths are far smaller). */
const MAX_CHAIN = 64;
/** Ids per `IN (...)` list: well inside both engines' bound-parameter limits. */
const IN_CHUNK = 500;

export class MandateStore {
  readonly #tenant: string;
  readonly #db: TenantDb;
  constructor(tenant: string, db: TenantDb) {
    this.#tenant = tenant;
    this.#db = db;
  }

  async insert(record: MandateRecord): Promise<void> {
    await this.#db.insertInto("mandates").values(toRow(this.#tenant, record)).execute();
  }

  async find(id: string): Promise<MandateRecord | undefined> {
    const row = await this.#db
      .selectFrom("mandates")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", id)
      .executeTakeFirst();
    return row && fromRow(row);
  }

  /**
   * The mandate and its parents, root first (undefined when `id` does not exist). With `lock`, each
   * row is locked FOR SHARE on PostgreSQL (root first, one fixed order), so no revocation of the
   * chain commits until the caller's transaction ends.
   */
  async chain(id: string, { lock = false } = {}): Promise<MandateRecord[] | undefined> {
    const chain: MandateRecord[] = [];
    let next: string | null = id;
    while (next !== null && chain.length < MAX_CHAIN) {
      const found: MandateRecord | undefined = await this.find(next);
      if (!found) return chain.length === 0 ? undefined : chain.reverse();
      chain.push(found);
      next = found.parentId;
    }
    chain.reverse();
    if (lock && this.#postgres) {
      for (const mandate of chain) {
        const row = await this.#db
          .selectFrom("mandates")
          .select("state")
          .where("tenant_id", "=", this.#tenant)
          .where("id", "=", mandate.id)
          .forShare()
          .executeTakeFirst();
        // Read after the lock: a revocation that committed meanwhile is seen.
        if (row) mandate.state = row.state as StoredState;
      }
    }
    return chain;
  }

  /** Mandates in id order (ids grow with time) after `after`, at most `limit`, matching the SQL part of `filter`. */
  async list(filter: MandateFilter, now: number, limit: number, after?: string): Promise<MandateRecord[]> {
    let query = this.#db
      .selectFrom("mandates")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .orderBy("id")
      .limit(limit);
    if (after !== undefined) query = query.where("id", ">", after);
    if (filter.principal) query = query.where("principal", "=", filter.principal);
    if (filter.agent) query = query.where("agent_id", "=", filter.agent);
    const states = filter.states ?? [];
    if (states.length > 0) {
      query = query.where((eb) =>
        eb.or(
          states.map((state) => {
            if (state === "expired") return eb.and([eb("state", "=", "active"), eb("expires_at", "<=", now)]);
            if (state === "active" || state === "exhausted") {
              return eb.and([eb("state", "=", "active"), eb("expires_at", ">", now)]);
            }
            return eb("state", "=", state);
          }),
        ),
      );
    }
    return (await query.execute()).map(fromRow);
  }

  /** Unrevoked mandates that end with login session `sessionId` (revoke_on_session_end). */
  async bySession(sessionId: string): Promise<MandateRecord[]> {
    const rows = await this.#db
      .selectFrom("mandates")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("session_id", "=", sessionId)
      .where("state", "!=", "revoked")
      .orderBy("id")
      .execute();
    return rows.map(fromRow);
  }

  /** The mandate that amends `id` (its next version), if any. */
  async supersededBy(id: string): Promise<MandateRecord | undefined> {
    const row = await this.#db
      .selectFrom("mandates")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("supersedes", "=", id)
      .executeTakeFirst();
    return row && fromRow(row);
  }

  /** How much of each lifetime limit's meter each mandate used: mandate id → meter → used. */
  async lifetimeUsage(ids: readonly string[]): Promise<Map<string, Map<string, number>>> {
    const usage = new Map<string, Map<string, number>>();
    for (let i = 0; i < ids.length; i += IN_CHUNK) {
      const rows = await this.#db
        .selectFrom("mandate_usage")
        .select(["mandate_id", "meter", "used"])
        .where("tenant_id", "=", this.#tenant)
        .where("mandate_id", "in", ids.slice(i, i + IN_CHUNK))
        .where("period_ms", "=", 0)
        .execute();
      for (const row of rows) {
        const meters = usage.get(row.mandate_id) ?? new Map<string, number>();
        meters.set(row.meter, Number(row.used));
        usage.set(row.mandate_id, meters);
      }
    }
    return usage;
  }

  /** Every sub-mandate below `id` (children, their children...), nearest first. */
  async descendants(id: string): Promise<string[]> {
    const found: string[] = [];
    let frontier = [id];
    for (let level = 0; frontier.length > 0 && level < MAX_CHAIN; level++) {
      frontier = await this.#children(frontier);
      found.push(...frontier);
    }
    return found;
  }

  /**
   * Revokes `id` and every sub-mandate below it (call in a transaction); returns the mandates this
   * call revoked, `id` first when it was not revoked yet. Revoking what is revoked changes nothing.
   * Rows are updated level by level from `id` down, so two overlapping revocations lock in the same
   * order (the one starting higher waits at the other's first row) and never deadlock.
   */
  async revokeTree(id: string, revocation: Revocation): Promise<RevokedMandate[]> {
    // The mandate's own row first: it is locked until the transaction ends (see the header).
    const revoked = await this.#revoke([id], revocation, revocation.by);
    const cascade = { ...revocation.by, cascade_from: id };
    let frontier = [id];
    for (let level = 0; frontier.length > 0 && level < MAX_CHAIN; level++) {
      frontier = await this.#children(frontier);
      for (let i = 0; i < frontier.length; i += IN_CHUNK) {
        revoked.push(...(await this.#revoke(frontier.slice(i, i + IN_CHUNK), revocation, cascade)));
      }
    }
    return revoked;
  }

  async #children(parents: string[]): Promise<string[]> {
    const children: string[] = [];
    for (let i = 0; i < parents.length; i += IN_CHUNK) {
      const rows = await this.#db
        .selectFrom("mandates")
        .select("id")
        .where("tenant_id", "=", this.#tenant)
        .where("parent_id", "in", parents.slice(i, i + IN_CHUNK))
        .orderBy("id")
        .execute();
      children.push(...rows.map((r) => r.id));
    }
    return children;
  }

  async #revoke(ids: string[], revocation: Revocation, by: Record<string, string>): Promise<RevokedMandate[]> {
    const rows = await this.#db
      .updateTable("mandates")
      .set({
        state: "revoked",
        revoked_at: revocation.at,
        revoked_by: JSON.stringify(by),
        revoke_reason: revocation.reason,
      })
      .where("tenant_id", "=", this.#tenant)
      .where("id", "in", ids)
      .where("state", "!=", "revoked")
      .returning(["id", "principal", "agent_id"])
      .execute();
    // In the order asked (RETURNING's order is unspecified).
    const done = new Map(rows.map((r) => [r.id, { id: r.id, principal: r.principal, agent: r.agent_id }]));
    return ids.flatMap((i) => done.get(i) ?? []);
  }

  get #postgres(): boolean {
    return this.#db.getExecutor().adapter instanceof PostgresAdapter;
  }
}

/** The state as of `now`: stored states, or "expired" / "exhausted" for an active mandate. */
export function currentState(
  mandate: MandateRecord,
  now: number,
  lifetimeUsed: ReadonlyMap<string, number> | undefined,
): MandateState {
  if (mandate.state !== "active") return mandate.state;
  if (now >= mandate.expiresAt) return "expired";
  const exhausted = mandate.usageLimits.some(
    (limit) => limit.periodMs === 0 && (lifetimeUsed?.get(limit.meter) ?? 0) >= limit.maximum,
  );
  return exhausted ? "exhausted" : "active";
}

function toRow(tenant: string, m: MandateRecord): MandatesTable {
  return {
    tenant_id: tenant,
    id: m.id,
    version: m.version,
    parent_id: m.parentId,
    depth: m.depth,
    principal: m.principal,
    agent_id: m.agent,
    scopes: JSON.stringify(m.scopes),
    resources: JSON.stringify(m.resources),
    authorization_details: JSON.stringify(m.authorizationDetails),
    usage_limits: JSON.stringify(
      m.usageLimits.map((l) => ({ meter: l.meter, maximum: l.maximum, period_ms: l.periodMs })),
    ),
    may_act: JSON.stringify(m.mayAct),
    not_before: m.notBefore,
    expires_at: m.expiresAt,
    max_token_ttl_ms: m.maxTokenTtlMs,
    max_delegation_depth: m.maxDelegationDepth,
    state: m.state,
    created_at: m.createdAt,
    revoked_at: m.revokedAt,
    revoked_by: m.revokedBy ? JSON.stringify(m.revokedBy) : null,
    revoke_reason: m.revokeReason,
    consent: JSON.stringify(m.consent),
    supersedes: m.supersedes ?? null,
    revoke_on_account_end: m.revokeOnAccountEnd ? 1 : 0,
    session_id: m.sessionId ?? null,
    receipt: m.receipt ?? null,
  };
}

/** A stored row as a record (also for queries of their own: MandateStandings). */
export function fromRow(row: MandatesTable): MandateRecord {
  const limits = JSON.parse(row.usage_limits) as Array<{ meter: string; maximum: number; period_ms: number }>;
  return {
    id: row.id,
    version: Number(row.version),
    parentId: row.parent_id,
    depth: Number(row.depth),
    principal: row.principal,
    agent: row.agent_id,
    scopes: JSON.parse(row.scopes) as string[],
    resources: JSON.parse(row.resources) as string[],
    authorizationDetails: JSON.parse(row.authorization_details) as AuthorizationDetail[],
    usageLimits: limits.map((l): UsageLimitBound => ({ meter: l.meter, maximum: l.maximum, periodMs: l.period_ms })),
    mayAct: JSON.parse(row.may_act) as string[],
    notBefore: Number(row.not_before),
    expiresAt: Number(row.expires_at),
    maxTokenTtlMs: row.max_token_ttl_ms === null ? null : Number(row.max_token_ttl_ms),
    maxDelegationDepth: Number(row.max_delegation_depth),
    state: row.state as StoredState,
    createdAt: Number(row.created_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
    revokedBy: row.revoked_by ? (JSON.parse(row.revoked_by) as Record<string, string>) : null,
    revokeReason: row.revoke_reason,
    consent: JSON.parse(row.consent) as ConsentRecord,
    // Migration 0014's fields only when set (records written before it, or without them, read back equal).
    ...(row.supersedes ? { supersedes: row.supersedes } : {}),
    ...(Number(row.revoke_on_account_end ?? 0) === 1 ? { revokeOnAccountEnd: true } : {}),
    ...(row.session_id ? { sessionId: row.session_id } : {}),
    ...(row.receipt ? { receipt: row.receipt } : {}),
  };
}
