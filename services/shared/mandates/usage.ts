// Counting a mandate's usage limits, atomically under concurrency (tables mandate_usage,
// mandate_consumptions). `consume` charges one meter of a mandate and of every mandate above it
// (a sub-mandate counts against its parents' limits), in one transaction:
//   1. the idempotency key is claimed first (INSERT ... ON CONFLICT DO NOTHING): a concurrent
//      request with the same key waits for this one and then finds its result, so a retry returns
//      the first result and never charges twice (the same key with another meter or amount is an
//      IdempotencyConflict);
//   2. every mandate of the chain must be usable (active, inside its validity);
//   3. each counter of the meter (one per limit and period: `period_start` is the start of the
//      current period, counted from the mandate's not_before) is created if missing, then charged
//      by a conditional UPDATE ... SET used = used + amount WHERE used + amount <= maximum, root
//      mandate first, limits by period: one fixed order, so row locks never deadlock on
//      PostgreSQL (a concurrent UPDATE of the row waits and re-checks the condition on the new
//      value); SQLite runs one writer at a time. No value is read and then written back.
//   4. a counter that would pass its maximum refuses the whole consumption (UsageLimitExceeded):
//      the transaction rolls back, nothing is charged, the key is not kept (a retry is decided anew,
//      e.g. in the next period);
//   5. the result is kept with the key, and a mandate.consumed.v1 audit event commits with it.
// A counter row is updated first and created (INSERT ... ON CONFLICT DO NOTHING) only when the
// UPDATE found none, then updated again: one statement per counter once it exists. Several
// consumptions of one chain in one transaction (a token exchange batch: chargeAllWithin) charge
// each counter once by their sum — the same conditional UPDATE, so the same guarantee — and claim
// their keys with their results in one INSERT, in a savepoint; when that cannot be done for all of
// them it is rolled back and the caller charges them one by one.
// Amounts are floating-point numbers: meters of money should count in minor units (cents).
import { sql } from "kysely";
import { type Actor, mandateConsumed } from "../audit-events.ts";
import type { Clock } from "../clock.ts";
import type { Store } from "../store/store.ts";
import type { TenantDb } from "../store/tenancy.ts";
import { type MandateRecord, MandateStore } from "./mandate-store.ts";

export interface ConsumeRequest {
  /** What is counted: "calls", or e.g. "amount:EUR". */
  meter: string;
  amount: number;
  /** The same key again returns the first result without charging twice (per mandate). */
  idempotencyKey: string;
}

/** One counter after a consumption. */
export interface Counter {
  mandateId: string;
  meter: string;
  /** 0: the mandate's whole life. */
  periodMs: number;
  periodStart: number;
  used: number;
  maximum: number;
}

export interface ConsumeResult {
  mandateId: string;
  meter: string;
  amount: number;
  at: number;
  /** Every counter charged, root mandate first. */
  counters: Counter[];
  /** True when this is the stored result of an earlier consumption with the same key. */
  replayed: boolean;
}

/** The consumption would pass a limit of the mandate or of a parent; nothing was charged. */
export class UsageLimitExceeded extends Error {
  readonly counter: Counter;
  constructor(counter: Counter, amount: number) {
    const per = counter.periodMs === 0 ? "in all" : `per period of ${counter.periodMs} ms`;
    super(
      `mandate ${counter.mandateId} allows ${counter.maximum} ${counter.meter} ${per}; ${counter.used} used, ${amount} more refused`,
    );
    this.name = "UsageLimitExceeded";
    this.counter = counter;
  }
}

/** The mandate (or one above it) does not exist, is not active, or is outside its validity. */
export class MandateNotUsable extends Error {
  readonly mandateId: string;
  readonly reason: "not_found" | "not_active" | "not_yet_valid" | "expired";
  constructor(mandateId: string, reason: MandateNotUsable["reason"], detail: string) {
    super(`mandate ${mandateId} ${detail}`);
    this.name = "MandateNotUsable";
    this.mandateId = mandateId;
    this.reason = reason;
  }
}

/** The idempotency key was used before for another meter or amount. */
export class IdempotencyConflict extends Error {
  constructor(key: string) {
    super(`idempotency key "${key}" was used for another consumption of this mandate`);
    this.name = "IdempotencyConflict";
  }
}

export class MandateUsage {
  readonly #store: Store;
  readonly #clock: Clock;
  constructor(store: Store, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  /** Charges `request.amount` of `request.meter` to the mandate and its parents, or throws (see the header). */
  async consume(
    tenant: string,
    mandateId: string,
    request: ConsumeRequest,
    actor?: Partial<Actor>,
  ): Promise<ConsumeResult> {
    requireWellFormed(request);
    const at = this.#clock.now();
    const scoped = this.#store.forTenant(tenant);
    return scoped.transaction(async (tx) => {
      const counters = scoped.use(UsageCounters, tx);
      const earlier = await counters.claim(mandateId, request, at);
      if (earlier) return earlier;
      const chain = await scoped.use(MandateStore, tx).chain(mandateId);
      if (!chain) throw new MandateNotUsable(mandateId, "not_found", "does not exist");
      for (const mandate of chain) requireUsable(mandate, at);
      const charged = await chargeChain(counters, chain, request, at);
      const result: Omit<ConsumeResult, "replayed"> = {
        mandateId,
        meter: request.meter,
        amount: request.amount,
        at,
        counters: charged,
      };
      await counters.keep(mandateId, request.idempotencyKey, result);
      const mandate = chain.at(-1) as MandateRecord;
      const event = mandateConsumed(
        { mandateId, principal: mandate.principal, agent: mandate.agent, ...request, counters: charged },
        actor,
      );
      await scoped.recordEvent(tx, event, at);
      return { ...result, replayed: false };
    });
  }
}

/**
 * Steps 1, 3 and 4 of `consume` in the caller's transaction, for a chain (root first) the caller has
 * read — and locked, and checked usable — in that transaction: the key claimed, every limit of the
 * meter along the chain charged, the result kept. No audit event: the caller's own event records it
 * (a token exchange counts its `tokens` this way, in the transaction that issues the token). A
 * consumption that would pass a limit throws UsageLimitExceeded: roll the transaction back.
 */
export async function chargeWithin(
  counters: UsageCounters,
  chain: readonly MandateRecord[],
  request: ConsumeRequest,
  at: number,
): Promise<ConsumeResult> {
  requireWellFormed(request);
  const mandateId = (chain.at(-1) as MandateRecord).id;
  const earlier = await counters.claim(mandateId, request, at);
  if (earlier) return earlier;
  const charged = await chargeChain(counters, chain, request, at);
  const result = { mandateId, meter: request.meter, amount: request.amount, at, counters: charged };
  await counters.keep(mandateId, request.idempotencyKey, result);
  return { ...result, replayed: false };
}

/** A consumption of chargeAllWithin: the request and when it is made (which period it counts in). */
export interface TimedConsumption {
  request: ConsumeRequest;
  at: number;
}

/**
 * chargeWithin for several consumptions of one chain that charge the same counters (one meter, the
 * same periods), in a savepoint, with one statement per counter and one for all the keys: each
 * counter charged once by the sum of the amounts in the conditional UPDATE (root first), then every
 * key claimed with its result in one multi-row INSERT. All or nothing: undefined — the savepoint
 * rolled back, nothing charged or claimed — when they cannot all be charged so: a counter whose
 * maximum the sum would pass, a key claimed before (a replay, or the same key twice), consumptions
 * in different periods; the caller then charges them one by one with chargeWithin, which decides
 * each exactly. Each result's counters read as if charged one after the other, in order.
 *
 * Counters are locked before keys here, keys before counters in chargeWithin: two transactions
 * could wait on each other only by claiming one key at once, which keys unique to one consumption
 * (a token's jti, counted once) never do. Keys a client may send twice at once go to chargeWithin.
 */
export async function chargeAllWithin(
  counters: UsageCounters,
  chain: readonly MandateRecord[],
  consumptions: readonly TimedConsumption[],
): Promise<ConsumeResult[] | undefined> {
  const first = consumptions[0];
  if (!first) return [];
  for (const { request } of consumptions) requireWellFormed(request);
  const { meter } = first.request;
  const plan = chainCounters(chain, meter, first.at);
  const samePeriods = (at: number) =>
    chainCounters(chain, meter, at).every((counter, i) => counter.periodStart === plan[i]?.periodStart);
  if (consumptions.some(({ request, at }) => request.meter !== meter || !samePeriods(at))) return undefined;
  const mandateId = (chain.at(-1) as MandateRecord).id;
  return counters.inSavepoint(() => chargeTogether(counters, mandateId, plan, consumptions));
}

async function chargeTogether(
  counters: UsageCounters,
  mandateId: string,
  plan: readonly Counter[],
  consumptions: readonly TimedConsumption[],
): Promise<ConsumeResult[] | undefined> {
  const total = consumptions.reduce((sum, { request }) => sum + request.amount, 0);
  const finals: number[] = [];
  for (const counter of plan) {
    const used = await counters.tryCharge(counter, total);
    if (used === undefined) return undefined;
    finals.push(used);
  }
  let after = total;
  const results = consumptions.map(({ request, at }) => {
    after -= request.amount;
    const charged = plan.map((counter, i) => ({ ...counter, used: (finals[i] as number) - after }));
    return { mandateId, meter: request.meter, amount: request.amount, at, counters: charged };
  });
  if (!(await counters.claimAll(mandateId, results, consumptions))) return undefined;
  return results.map((result) => ({ ...result, replayed: false }));
}

/** Whether any mandate of the chain limits `meter` (otherwise a consumption of it charges nothing). */
export function limitsMeter(chain: readonly MandateRecord[], meter: string): boolean {
  return chain.some((mandate) => mandate.usageLimits.some((limit) => limit.meter === meter));
}

/** Charges every limit of the meter along the chain, root first, limits by period (the lock order). */
async function chargeChain(
  counters: UsageCounters,
  chain: readonly MandateRecord[],
  request: ConsumeRequest,
  at: number,
): Promise<Counter[]> {
  const charged: Counter[] = [];
  for (const counter of chainCounters(chain, request.meter, at))
    charged.push(await counters.charge(counter, request.amount));
  return charged;
}

/** The counters of `meter` along the chain at `at` (used 0), root first, limits by period: the lock order. */
function chainCounters(chain: readonly MandateRecord[], meter: string, at: number): Counter[] {
  const counters: Counter[] = [];
  for (const mandate of chain) {
    const limits = mandate.usageLimits.filter((l) => l.meter === meter).sort((a, b) => a.periodMs - b.periodMs);
    for (const limit of limits) {
      counters.push({
        mandateId: mandate.id,
        meter: limit.meter,
        periodMs: limit.periodMs,
        periodStart: periodStart(mandate.notBefore, limit.periodMs, at),
        used: 0,
        maximum: limit.maximum,
      });
    }
  }
  return counters;
}

function requireWellFormed(request: ConsumeRequest): void {
  if (!(Number.isFinite(request.amount) && request.amount > 0)) {
    throw new RangeError("the amount must be a positive number");
  }
  if (!/^[\x21-\x7e]{1,64}$/.test(request.meter)) throw new RangeError("the meter must be 1-64 visible characters");
  if (!/^[\x21-\x7e]{1,255}$/.test(request.idempotencyKey)) {
    throw new RangeError("the idempotency key must be 1-255 visible characters");
  }
}

function requireUsable(mandate: MandateRecord, at: number): void {
  if (mandate.state !== "active") throw new MandateNotUsable(mandate.id, "not_active", `is ${mandate.state}`);
  if (at < mandate.notBefore) {
    throw new MandateNotUsable(
      mandate.id,
      "not_yet_valid",
      `is not valid before ${new Date(mandate.notBefore).toISOString()}`,
    );
  }
  if (at >= mandate.expiresAt) {
    throw new MandateNotUsable(mandate.id, "expired", `expired at ${new Date(mandate.expiresAt).toISOString()}`);
  }
}

/** Start of the period of `periodMs` that contains `at`, periods counted from `anchor`; 0 for the whole life. */
export function periodStart(anchor: number, periodMs: number, at: number): number {
  if (periodMs <= 0) return 0;
  return anchor + Math.floor((at - anchor) / periodMs) * periodMs;
}

/** Rows per multi-row INSERT: 7 parameters each, inside both engines' bound-parameter limits. */
const ROWS_PER_STATEMENT = 100;

/** The counter and idempotency rows of one tenant: `scoped.use(UsageCounters, tx)`. */
export class UsageCounters {
  readonly #tenant: string;
  readonly #db: TenantDb;
  constructor(tenant: string, db: TenantDb) {
    this.#tenant = tenant;
    this.#db = db;
  }

  /**
   * Claims the idempotency key; when it was claimed before (and committed), the earlier result.
   * A concurrent claim of the same key waits here until the other transaction ends.
   */
  async claim(mandateId: string, request: ConsumeRequest, at: number): Promise<ConsumeResult | undefined> {
    const inserted = await this.#db
      .insertInto("mandate_consumptions")
      .values(this.#consumptionRow(mandateId, request, at, ""))
      .onConflict((oc) => oc.columns(["tenant_id", "mandate_id", "idempotency_key"]).doNothing())
      .returning("idempotency_key")
      .executeTakeFirst();
    if (inserted) return undefined;
    const earlier = await this.#db
      .selectFrom("mandate_consumptions")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("mandate_id", "=", mandateId)
      .where("idempotency_key", "=", request.idempotencyKey)
      .executeTakeFirstOrThrow();
    if (earlier.meter !== request.meter || Number(earlier.amount) !== request.amount) {
      throw new IdempotencyConflict(request.idempotencyKey);
    }
    return { ...(JSON.parse(earlier.result) as Omit<ConsumeResult, "replayed">), replayed: true };
  }

  /** Adds `amount` to the counter unless that passes its maximum (then UsageLimitExceeded). */
  async charge(counter: Counter, amount: number): Promise<Counter> {
    const used = await this.tryCharge(counter, amount);
    if (used !== undefined) return { ...counter, used };
    const current = await this.#db
      .selectFrom("mandate_usage")
      .select("used")
      .where("tenant_id", "=", this.#tenant)
      .where("mandate_id", "=", counter.mandateId)
      .where("meter", "=", counter.meter)
      .where("period_ms", "=", counter.periodMs)
      .where("period_start", "=", counter.periodStart)
      .executeTakeFirst();
    throw new UsageLimitExceeded({ ...counter, used: Number(current?.used ?? 0) }, amount);
  }

  /**
   * Adds `amount` to the counter unless that passes its maximum: the counter's new value, or
   * undefined (nothing charged). The conditional UPDATE is the guard: on PostgreSQL a concurrent
   * UPDATE of the row waits for this transaction and re-checks the condition on the new value. The
   * row is created (used 0) only when the UPDATE found none — a concurrent creation waits on the
   * key, and the second UPDATE (a new snapshot under READ COMMITTED) sees the committed row.
   */
  async tryCharge(counter: Counter, amount: number): Promise<number | undefined> {
    const updated = await this.#increment(counter, amount);
    if (updated !== undefined) return updated;
    await this.#db
      .insertInto("mandate_usage")
      .values({
        tenant_id: this.#tenant,
        mandate_id: counter.mandateId,
        meter: counter.meter,
        period_ms: counter.periodMs,
        period_start: counter.periodStart,
        used: 0,
      })
      .onConflict((oc) => oc.columns(["tenant_id", "mandate_id", "meter", "period_ms", "period_start"]).doNothing())
      .execute();
    // Created now, or by a transaction that committed since the first UPDATE, or there all along
    // and past the maximum: the UPDATE decides again.
    return this.#increment(counter, amount);
  }

  async #increment(counter: Counter, amount: number): Promise<number | undefined> {
    const updated = await this.#db
      .updateTable("mandate_usage")
      .set((eb) => ({ used: eb("used", "+", amount) }))
      .where("tenant_id", "=", this.#tenant)
      .where("mandate_id", "=", counter.mandateId)
      .where("meter", "=", counter.meter)
      .where("period_ms", "=", counter.periodMs)
      .where("period_start", "=", counter.periodStart)
      .where(sql<number>`used + ${amount}`, "<=", counter.maximum)
      .returning("used")
      .executeTakeFirst();
    return updated ? Number(updated.used) : undefined;
  }

  /**
   * Claims every key with its result, in one INSERT per chunk (inside both engines' parameter
   * limits); false when any was claimed before (its row is left alone, the others are inserted:
   * roll back to a savepoint).
   */
  async claimAll(
    mandateId: string,
    results: ReadonlyArray<Omit<ConsumeResult, "replayed">>,
    consumptions: readonly TimedConsumption[],
  ): Promise<boolean> {
    for (let start = 0; start < consumptions.length; start += ROWS_PER_STATEMENT) {
      const rows = consumptions
        .slice(start, start + ROWS_PER_STATEMENT)
        .map(({ request, at }, i) => this.#consumptionRow(mandateId, request, at, JSON.stringify(results[start + i])));
      const claimed = await this.#db
        .insertInto("mandate_consumptions")
        .values(rows)
        .onConflict((oc) => oc.columns(["tenant_id", "mandate_id", "idempotency_key"]).doNothing())
        .returning("idempotency_key")
        .execute();
      if (claimed.length < rows.length) return false;
    }
    return true;
  }

  /** A `mandate_consumptions` row: the claimed key with its result (JSON; empty until known). */
  #consumptionRow(mandateId: string, request: ConsumeRequest, at: number, result: string) {
    return {
      tenant_id: this.#tenant,
      mandate_id: mandateId,
      idempotency_key: request.idempotencyKey,
      meter: request.meter,
      amount: request.amount,
      at,
      result,
    };
  }

  /** Runs `fn` in a savepoint of the transaction, rolled back when it answers undefined or throws. */
  async inSavepoint<T>(fn: () => Promise<T | undefined>): Promise<T | undefined> {
    await sql`savepoint mandate_usage_charge`.execute(this.#db);
    let result: T | undefined;
    try {
      result = await fn();
    } catch (error) {
      await sql`rollback to savepoint mandate_usage_charge`.execute(this.#db);
      await sql`release savepoint mandate_usage_charge`.execute(this.#db);
      throw error;
    }
    if (result === undefined) await sql`rollback to savepoint mandate_usage_charge`.execute(this.#db);
    await sql`release savepoint mandate_usage_charge`.execute(this.#db);
    return result;
  }

  /** Stores the result with the claimed key, for retries. */
  async keep(mandateId: string, key: string, result: Omit<ConsumeResult, "replayed">): Promise<void> {
    await this.#db
      .updateTable("mandate_consumptions")
      .set({ result: JSON.stringify(result) })
      .where("tenant_id", "=", this.#tenant)
      .where("mandate_id", "=", mandateId)
      .where("idempotency_key", "=", key)
      .execute();
  }

  /** The counters of a mandate (for reports): every meter and period seen so far. */
  async of(mandateId: string): Promise<Array<Omit<Counter, "maximum">>> {
    const rows = await this.#db
      .selectFrom("mandate_usage")
      .selectAll()
      .where("tenant_id", "=", this.#tenant)
      .where("mandate_id", "=", mandateId)
      .orderBy("meter")
      .orderBy("period_ms")
      .orderBy("period_start")
      .execute();
    return rows.map((r) => ({
      mandateId: r.mandate_id,
      meter: r.meter,
      periodMs: Number(r.period_ms),
      periodStart: Number(r.period_start),
      used: Number(r.used),
    }));
  }
}
