// Group commit of token exchanges that write nothing but their audit event and the count of their
// `tokens` (no sub-mandate, no refresh-token family) — the common case, and the hot path. Each still
// commits only once its mandate chain has been re-read in the committing transaction and found
// active, the rows locked FOR SHARE on PostgreSQL as MandateStore.chain locks them: a revocation
// committed since the exchange's first read is seen (that exchange is refused as its path refuses:
// invalid_request for a token exchange, RFC 8693 §2.2.2 — refusal.ts); one that starts meanwhile
// waits for the batch to commit. What one exchange would do in a transaction of its own, a batch
// does for every exchange that arrived in the same tick: one query reads every chain's states
// (ordered by depth then id: root first, the order revocations lock in); each issuance whose chain
// limits `tokens` is counted (by jti), those of one chain together (usage.ts chargeAllWithin, in a
// savepoint: each counter charged by their number in one conditional UPDATE, then their jtis
// claimed with their results in one INSERT; all or nothing) — when they do not all fit under a
// limit, one by one (chargeWithin, each in a savepoint: past a limit, its charges are rolled back
// and it alone is refused) —, chains in the order of their ids, so concurrent batches charge shared
// counters in one order (roots first); one INSERT records the events of those issued. Like the outbox's group
// commit (shared/store/group-commit.ts serves both), a caller's promise settles once its event is durable, so a token
// leaves only once recorded.
import { sql } from "kysely";
import type { OutboxEvent } from "../../shared/audit-events.ts";
import type { MandateRecord } from "../../shared/mandates/mandate-store.ts";
import {
  type ConsumeResult,
  type Counter,
  chargeAllWithin,
  chargeWithin,
  limitsMeter,
  UsageCounters,
  UsageLimitExceeded,
} from "../../shared/mandates/usage.ts";
import { GroupCommit, type Waiting as GroupWaiting } from "../../shared/store/group-commit.ts";
import { insertOutboxEvents, type TimedEvent } from "../../shared/store/outbox.ts";
import type { Store, TenantTransaction } from "../../shared/store/store.ts";
import { OAuthError } from "../oauth/errors.ts";
import { isCondition, type Refuse } from "./refusal.ts";

/** The usage-limit meter an exchange counts: one per issued access token. */
export const TOKENS_METER = "tokens";

/** An issuance waiting for its batch: the chain (root first) it needs active, and its event. */
export interface PendingIssuance {
  chain: readonly MandateRecord[];
  /** The event, given the `tokens` counters charged (root first; none when nothing is counted). */
  event: (counters: Counter[]) => OutboxEvent;
  at: number;
  /** The token's jti when the chain limits `tokens`: one is counted, keyed by it. */
  counted?: string | undefined;
  /** How the issuance's path refuses a chain that can no longer issue (refusal.ts). */
  refuse: Refuse;
  /** Told of a mandate whose lifetime `tokens` limit is found used up (for good: usage only grows). */
  spent?: ((mandateId: string) => void) | undefined;
}

type Waiting = GroupWaiting<PendingIssuance>;

/** Ids per `IN (...)` list and issuances per batch: inside both engines' bound-parameter limits. */
const MAX_BATCH = 200;

export class IssuanceBatcher {
  readonly #store: Store;
  readonly #batches: GroupCommit<PendingIssuance>;

  constructor(store: Store) {
    this.#store = store;
    this.#batches = new GroupCommit(MAX_BATCH, (tenant, batch) => this.#commit(tenant, batch));
  }

  /** Resolves once the event is durable with the chain found active; the path's refusal when it no longer is. */
  record(tenant: string, issuance: PendingIssuance): Promise<void> {
    return this.#batches.add(tenant, issuance);
  }

  async #commit(tenant: string, batch: Waiting[]): Promise<void> {
    const scoped = this.#store.forTenant(tenant);
    // Counted issuances charge shared counters: in one order across batches (by chain, roots first).
    const ordered = [...batch].sort((a, b) => chainKey(a).localeCompare(chainKey(b)));
    // Mandates found used up are told once the batch has committed (its own charges included).
    const spent: Array<() => void> = [];
    const verdicts = await scoped.transaction(async (tx) => {
      const states = await this.#states(tenant, tx, ordered);
      const counters = scoped.use(UsageCounters, tx);
      const outcomes = await outcomesOf(tx, counters, ordered, states, spent);
      const verdicts = new Map<Waiting, OAuthError>();
      const events: TimedEvent[] = [];
      for (const waiting of ordered) {
        const outcome = outcomes.get(waiting) as Counter[] | OAuthError;
        if (outcome instanceof OAuthError) verdicts.set(waiting, outcome);
        else events.push({ event: waiting.event(outcome), at: waiting.at });
      }
      if (events.length > 0) await insertOutboxEvents(tx, tenant, events);
      return verdicts;
    });
    for (const tell of spent) tell();
    for (const waiting of batch) {
      const refused = verdicts.get(waiting);
      if (refused) waiting.reject(refused);
      else waiting.resolve();
    }
  }

  /** The stored state of every mandate of the batch's chains, read (and locked) root first. */
  async #states(tenant: string, tx: TenantTransaction, batch: readonly Waiting[]): Promise<Map<string, string>> {
    const ids = [...new Set(batch.flatMap((waiting) => waiting.chain.map((link) => link.id)))];
    let query = tx
      .selectFrom("mandates")
      .select(["id", "state"])
      .where("tenant_id", "=", tenant)
      .where("id", "in", ids)
      .orderBy("depth")
      .orderBy("id");
    if (this.#store.engine === "postgres") query = query.forShare();
    return new Map((await query.execute()).map((row) => [row.id, row.state]));
  }
}

/** Each issuance's refusal, or the `tokens` counters it charged (none when not counted). */
async function outcomesOf(
  tx: TenantTransaction,
  counters: UsageCounters,
  ordered: readonly Waiting[],
  states: ReadonlyMap<string, string>,
  spent: Array<() => void>,
): Promise<Map<Waiting, Counter[] | OAuthError>> {
  const outcomes = new Map<Waiting, Counter[] | OAuthError>();
  const toCount: Waiting[] = [];
  for (const waiting of ordered) {
    const refused = refusal(waiting, states);
    if (refused) outcomes.set(waiting, refused);
    else if (waiting.counted === undefined) outcomes.set(waiting, []);
    else toCount.push(waiting);
  }
  // Those of one chain (adjacent: ordered by chain) are counted together, chains in their order.
  for (let start = 0; start < toCount.length; ) {
    const key = chainKey(toCount[start] as Waiting);
    let end = start + 1;
    while (end < toCount.length && chainKey(toCount[end] as Waiting) === key) end++;
    for (const [waiting, outcome] of await countedTogether(tx, counters, toCount.slice(start, end), spent)) {
      outcomes.set(waiting, outcome);
    }
    start = end;
  }
  return outcomes;
}

/** Why an issuance is refused now, or undefined when its whole chain is still active and valid. */
function refusal(waiting: Waiting, states: ReadonlyMap<string, string>): OAuthError | undefined {
  const mandate = waiting.chain.at(-1) as MandateRecord;
  for (const link of [...waiting.chain].reverse()) {
    const which = link.id === mandate.id ? `mandate ${link.id}` : `mandate ${mandate.id}'s parent mandate ${link.id}`;
    const subject = `mandate:${link.id}`;
    const state = states.get(link.id);
    if (state === undefined) return waiting.refuse("unknown_mandate", `${which} no longer exists`, subject);
    if (state !== "active") {
      return waiting.refuse(isCondition(state) ? state : "inactive", `${which} has been ${state}`, subject);
    }
    if (waiting.at >= link.expiresAt) return waiting.refuse("expired", `${which} expired`, subject);
  }
  return undefined;
}

/** The chain's ids, root first: the order its counters are charged in. */
function chainKey(waiting: PendingIssuance): string {
  return waiting.chain.map((link) => link.id).join("/");
}

/**
 * One `tokens` each for counted issuances of one chain: charged together (usage.ts chargeAllWithin:
 * each counter charged by their number in one conditional UPDATE, the jtis claimed in one INSERT,
 * all or nothing); when not all of them fit under a limit (or a jti was claimed before), counted
 * one by one, so exactly those that fit are issued. A mandate a count finds used up is told to
 * `spent` once the batch has committed.
 */
async function countedTogether(
  tx: TenantTransaction,
  counters: UsageCounters,
  group: readonly Waiting[],
  spent: Array<() => void>,
): Promise<Array<[Waiting, Counter[] | OAuthError]>> {
  const first = group[0];
  if (first && group.length > 1) {
    const charged = await chargeAllWithin(
      counters,
      first.chain,
      group.map((waiting) => ({
        request: { meter: TOKENS_METER, amount: 1, idempotencyKey: waiting.counted as string },
        at: waiting.at,
      })),
    );
    if (charged) return group.map((waiting, i) => [waiting, (charged[i] as ConsumeResult).counters]);
  }
  const outcomes: Array<[Waiting, Counter[] | OAuthError]> = [];
  for (const waiting of group) outcomes.push([waiting, (await counted(tx, counters, waiting, spent)) ?? []]);
  return outcomes;
}

/** One `tokens` counted for a counted issuance, in a savepoint: refused past a limit, nothing charged. */
async function counted(
  tx: TenantTransaction,
  counters: UsageCounters,
  waiting: PendingIssuance,
  spent: Array<() => void>,
): Promise<Counter[] | OAuthError | undefined> {
  if (waiting.counted === undefined) return undefined;
  await sql`savepoint mandate_issuance`.execute(tx);
  try {
    const charged = await countToken(
      counters,
      waiting.chain,
      waiting.counted,
      waiting.at,
      waiting.refuse,
      (mandateId) => spent.push(() => waiting.spent?.(mandateId)),
    );
    await sql`release savepoint mandate_issuance`.execute(tx);
    return charged;
  } catch (error) {
    await sql`rollback to savepoint mandate_issuance`.execute(tx);
    await sql`release savepoint mandate_issuance`.execute(tx);
    if (error instanceof OAuthError) return error;
    throw error;
  }
}

/** One `tokens` of the chain's limits, keyed by the token's jti; refused (`refuse`) once a limit is reached. */
export async function countToken(
  counters: UsageCounters,
  chain: readonly MandateRecord[],
  jti: string,
  now: number,
  refuse: Refuse,
  spent?: (mandateId: string) => void,
): Promise<Counter[]> {
  if (!limitsMeter(chain, TOKENS_METER)) return [];
  try {
    const result = await chargeWithin(counters, chain, { meter: TOKENS_METER, amount: 1, idempotencyKey: jti }, now);
    return result.counters;
  } catch (error) {
    if (error instanceof UsageLimitExceeded) {
      const { counter } = error;
      if (counter.periodMs === 0) spent?.(counter.mandateId);
      const per = counter.periodMs === 0 ? "in all" : `per ${counter.periodMs} ms`;
      throw refuse(
        "exhausted",
        `usage limit reached: mandate ${counter.mandateId} allows ${counter.maximum} ${TOKENS_METER} ${per}, all used`,
        `mandate:${counter.mandateId}`,
      );
    }
    throw error;
  }
}
