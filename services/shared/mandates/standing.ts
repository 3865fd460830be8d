// A mandate as a decision reads it, in one query: the mandate and every mandate above it (a
// recursive walk up parent_id), each with its usage counters of the current period. Authorize reads
// this once per decision about a token (or request) that names a mandate, and nothing when it names
// none. Obtained from the tenant handle: `scoped.use(MandateStandings)`.
//
// Every tenant table the query touches is pinned to the handle's tenant, inside the CTEs too: a
// mandate id of another tenant is simply not found.
import { sql } from "kysely";
import { PreparedQuery } from "../store/prepared.ts";
import type { TenantDb } from "../store/tenancy.ts";
import { fromRow, type MandateRecord } from "./mandate-store.ts";

/** One counter of the current period (or of the whole life: periodMs 0). */
export interface StandingCounter {
  meter: string;
  periodMs: number;
  periodStart: number;
  used: number;
}

export interface Standing {
  /** The mandate and its parents, root first (the mandate last). */
  chain: MandateRecord[];
  /** Mandate id → its counters of the current period (missing: nothing used yet). */
  counters: Map<string, StandingCounter[]>;
}

/** Longest chain followed (a guard: MandateStore follows the same bound). */
const MAX_CHAIN = 64;

/**
 * The one query (prepared.ts: built and compiled once per tenant): the mandate, every mandate above
 * it, and their counters of the period current at `now`.
 */
const STANDING = new PreparedQuery({ id: "", now: 0 }, (db, tenant, { id, now }) =>
  db
    .withRecursive("chain(id, parent_id, hops)", (db) =>
      db
        .selectFrom("mandates")
        .select(["id", "parent_id", sql<number>`0`.as("hops")])
        .where("tenant_id", "=", tenant)
        .where("id", "=", id)
        .unionAll((up) =>
          up
            .selectFrom("mandates as m")
            .innerJoin("chain", "chain.parent_id", "m.id")
            .select(["m.id", "m.parent_id", sql<number>`chain.hops + 1`.as("hops")])
            .where("m.tenant_id", "=", tenant)
            .where("chain.hops", "<", MAX_CHAIN),
        ),
    )
    .with("counters", (db) =>
      db
        .selectFrom("mandate_usage")
        .select(["mandate_id", "meter", "period_ms", "period_start", "used"])
        .where("tenant_id", "=", tenant)
        .where("mandate_id", "in", db.selectFrom("chain").select("chain.id"))
        // The current period only: its start is the last one at or before `now`.
        .where((eb) => eb.or([eb("period_ms", "=", 0), eb(eb("period_start", "+", eb.ref("period_ms")), ">", now)])),
    )
    .selectFrom("mandates")
    .leftJoin("counters", "counters.mandate_id", "mandates.id")
    .selectAll("mandates")
    .select([
      "counters.meter as counter_meter",
      "counters.period_ms as counter_period_ms",
      "counters.period_start as counter_period_start",
      "counters.used as counter_used",
    ])
    .where("mandates.tenant_id", "=", tenant)
    .where("mandates.id", "in", (db) => db.selectFrom("chain").select("chain.id")),
);

export class MandateStandings {
  readonly #tenant: string;
  readonly #db: TenantDb;
  constructor(tenant: string, db: TenantDb) {
    this.#tenant = tenant;
    this.#db = db;
  }

  /** The mandate `id` with its chain and counters as of `now`; undefined when it does not exist. */
  async of(id: string, now: number): Promise<Standing | undefined> {
    const { rows } = await STANDING.execute(this.#db, this.#tenant, { id, now });
    if (!rows.some((row) => row.id === id)) return undefined;
    const records = new Map<string, MandateRecord>();
    const counters = new Map<string, StandingCounter[]>();
    for (const row of rows) {
      if (!records.has(row.id)) records.set(row.id, fromRow(row));
      if (row.counter_meter === null) continue;
      const list = counters.get(row.id) ?? [];
      list.push({
        meter: row.counter_meter,
        periodMs: Number(row.counter_period_ms),
        periodStart: Number(row.counter_period_start),
        used: Number(row.counter_used),
      });
      counters.set(row.id, list);
    }
    return { chain: rootFirst(records, id), counters };
  }
}

/** The chain from the mandate up through parent ids, root first; it stops where a parent is missing. */
function rootFirst(records: ReadonlyMap<string, MandateRecord>, id: string): MandateRecord[] {
  const chain: MandateRecord[] = [];
  for (let next = records.get(id); next && chain.length < MAX_CHAIN; ) {
    chain.push(next);
    next = next.parentId === null ? undefined : records.get(next.parentId);
  }
  return chain.reverse();
}
