// Backchannel requests for a mandate (table mandate_requests, migration 0013): the asynchronous grant
// of issue 15 item 3, OpenID CIBA Core 1.0 in poll mode. An agent asks (bc-authorize) for a mandate
// addressed to one human; the human approves (possibly narrowed) or denies it on the pending page;
// the agent polls the token endpoint with its auth_req_id until then. Every state change is one
// conditional UPDATE (never read-then-write): two polls, or a poll and a decision, cannot both win.
// Obtained from the tenant handle: `scoped.use(MandateRequestStore, tx?)`.
import { handleHash } from "../../shared/oauth/handles.ts";
import type { MandateRequestsTable } from "../../shared/store/schema.ts";
import type { TenantDb } from "../../shared/store/tenancy.ts";
import type { MandateAsk } from "./oauth-request.ts";

export type RequestState = "requested" | "approved" | "denied" | "issued";

/** How the approving human had signed in: what the tokens say about the authentication. */
export interface RequestApproval {
  authTime: number;
  acr: string;
  amr: string[];
  claims: Record<string, unknown>;
}

export interface MandateRequest {
  /** Public id (`mrq_…`): what the pending page's forms name. Never the auth_req_id. */
  id: string;
  clientId: string;
  principal: string;
  ask: MandateAsk;
  bindingMessage: string | null;
  state: RequestState;
  /** Seconds between polls (CIBA Core §7.3), grown by each slow_down (§11). */
  intervalS: number;
  lastPollAt: number | null;
  createdAt: number;
  expiresAt: number;
  mandateId: string | null;
  decidedBy: string | null;
  decidedAt: number | null;
  approval: RequestApproval | null;
}

/** The decision a human takes on a request addressed to them. */
export type RequestDecision = { state: "approved"; mandateId: string; approval: RequestApproval } | { state: "denied" };

/** CIBA Core §11: each slow_down makes the interval at least 5 seconds longer. */
export const SLOW_DOWN_STEP_S = 5;

/** A stored request as read (selectAll): the table's columns (shared/store/schema.ts). */
type Row = MandateRequestsTable;

export class MandateRequestStore {
  readonly #tenant: string;
  readonly #db: TenantDb;
  constructor(tenant: string, db: TenantDb) {
    this.#tenant = tenant;
    this.#db = db;
  }

  /** Stores a new request, found again by `authReqId` (kept only as its SHA-256). */
  async insert(request: MandateRequest, authReqId: string): Promise<void> {
    await this.#db
      .insertInto("mandate_requests")
      .values({
        tenant_id: this.#tenant,
        id: request.id,
        auth_req_id_hash: handleHash(authReqId),
        client_id: request.clientId,
        principal: request.principal,
        ask: JSON.stringify(request.ask),
        binding_message: request.bindingMessage,
        state: request.state,
        interval_s: request.intervalS,
        last_poll_at: request.lastPollAt,
        created_at: request.createdAt,
        expires_at: request.expiresAt,
        mandate_id: null,
        decided_by: null,
        decided_at: null,
        approval: null,
      })
      .execute();
  }

  /** The request an auth_req_id names, whoever's it is (the caller checks the client). */
  async byAuthReqId(authReqId: string): Promise<MandateRequest | undefined> {
    const row = await this.#db
      .selectFrom("mandate_requests")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("auth_req_id_hash", "=", handleHash(authReqId))
      .executeTakeFirst();
    return row && fromRow(row);
  }

  async find(id: string): Promise<MandateRequest | undefined> {
    const row = await this.#db
      .selectFrom("mandate_requests")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", id)
      .executeTakeFirst();
    return row && fromRow(row);
  }

  /** The requests waiting for `principal`'s decision now, oldest first. */
  async pendingFor(principal: string, now: number, limit: number): Promise<MandateRequest[]> {
    const rows = await this.#db
      .selectFrom("mandate_requests")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("principal", "=", principal)
      .where("state", "=", "requested")
      .where("expires_at", ">", now)
      .orderBy("created_at")
      .orderBy("id")
      .limit(limit)
      .execute();
    return rows.map(fromRow);
  }

  /**
   * Records a poll of request `id` when the interval has passed since the last one (true); otherwise
   * (false: slow_down, CIBA Core §11) grows the interval by SLOW_DOWN_STEP_S and restarts it now.
   */
  async recordPoll(id: string, now: number): Promise<boolean> {
    const result = await this.#db
      .updateTable("mandate_requests")
      .set({ last_poll_at: now })
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", id)
      .where((eb) =>
        eb.or([eb("last_poll_at", "is", null), eb(eb("last_poll_at", "+", eb("interval_s", "*", 1000)), "<=", now)]),
      )
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 1) return true;
    await this.#db
      .updateTable("mandate_requests")
      .set((eb) => ({ interval_s: eb("interval_s", "+", SLOW_DOWN_STEP_S), last_poll_at: now }))
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", id)
      .execute();
    return false;
  }

  /**
   * The human's decision on a request addressed to them, still waiting and not expired; false when
   * it is not (decided meanwhile, expired, someone else's). Run in the transaction of what goes with it.
   */
  async decide(id: string, principal: string, decision: RequestDecision, now: number): Promise<boolean> {
    const result = await this.#db
      .updateTable("mandate_requests")
      .set({
        state: decision.state,
        decided_by: principal,
        decided_at: now,
        ...(decision.state === "approved"
          ? { mandate_id: decision.mandateId, approval: JSON.stringify(decision.approval) }
          : {}),
      })
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", id)
      .where("principal", "=", principal)
      .where("state", "=", "requested")
      .where("expires_at", ">", now)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Deletes the requests nobody needs any more (housekeeping): those that expired before `before`,
   * and those finished (denied, or their tokens issued) before it. Returns how many.
   */
  async prune(before: number): Promise<number> {
    const result = await this.#db
      .deleteFrom("mandate_requests")
      .where("tenant_id", "=", this.#tenant)
      .where((eb) =>
        eb.or([
          eb("expires_at", "<=", before),
          eb.and([eb("state", "in", ["denied", "issued"]), eb("decided_at", "<=", before)]),
        ]),
      )
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** An approved request's tokens were issued: once only (false when another poll got them first). */
  async markIssued(id: string): Promise<boolean> {
    const result = await this.#db
      .updateTable("mandate_requests")
      .set({ state: "issued" })
      .where("tenant_id", "=", this.#tenant)
      .where("id", "=", id)
      .where("state", "=", "approved")
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}

function fromRow(row: Row): MandateRequest {
  return {
    id: row.id,
    clientId: row.client_id,
    principal: row.principal,
    ask: JSON.parse(row.ask) as MandateAsk,
    bindingMessage: row.binding_message,
    state: row.state as RequestState,
    intervalS: Number(row.interval_s),
    lastPollAt: row.last_poll_at === null ? null : Number(row.last_poll_at),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    mandateId: row.mandate_id,
    decidedBy: row.decided_by,
    decidedAt: row.decided_at === null ? null : Number(row.decided_at),
    approval: row.approval === null ? null : (JSON.parse(row.approval) as RequestApproval),
  };
}
