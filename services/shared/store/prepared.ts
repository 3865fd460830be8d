// A hot query built and compiled once, then run with new values. Kysely builds an immutable tree,
// runs the plugins over it (the tenancy guard walks it) and compiles it to SQL on every execution:
// for a query read on every decision (a mandate's standing) that is most of its cost. Here the query
// is compiled once per dialect and tenant with sentinel values in place of the varying ones, and each
// run swaps the values into the compiled parameters. The tenant is never a variable: the tenancy
// guard checked the compiled query with the handle's own tenant, exactly as it would on every run.
import type { Compilable, CompiledQuery, QueryResult } from "kysely";
import type { TenantDb } from "./tenancy.ts";

/** Distinct placeholder values, recognised in the compiled parameters by identity. */
const SENTINEL = "\u0000mandate.prepared.";
/** Compiled queries kept per dialect; beyond it the tenants' entries are dropped and compiled again. */
const MAX_TENANTS = 10_000;

export class PreparedQuery<Args extends Record<string, string | number>, Row> {
  readonly #build: (db: TenantDb, tenant: string, args: Args) => Compilable<Row>;
  readonly #sample: Args;
  readonly #names: readonly (keyof Args)[];
  readonly #compiled = new WeakMap<object, Map<string, { query: CompiledQuery<Row>; slots: (keyof Args | null)[] }>>();

  /**
   * `build` makes the query from `args`; `sample` gives each arg's kind (a string or a number), so the
   * sentinels standing for them have that kind (a number sentinel is a NaN-free, unlikely double).
   */
  constructor(sample: Args, build: (db: TenantDb, tenant: string, args: Args) => Compilable<Row>) {
    this.#build = build;
    this.#names = Object.keys(sample) as (keyof Args)[];
    this.#sample = sample;
  }

  /** Runs the query on `db` (a tenant handle or its transaction) with `args`. */
  execute(db: TenantDb, tenant: string, args: Args): Promise<QueryResult<Row>> {
    const { query, slots } = this.#template(db, tenant);
    const parameters = query.parameters.map((value, i) => {
      const slot = slots[i];
      return slot === null || slot === undefined ? value : args[slot];
    });
    return db.executeQuery<Row>({ ...query, parameters });
  }

  #template(db: TenantDb, tenant: string) {
    const dialect = db.getExecutor().adapter;
    let byTenant = this.#compiled.get(dialect);
    if (!byTenant) {
      byTenant = new Map();
      this.#compiled.set(dialect, byTenant);
    }
    let template = byTenant.get(tenant);
    if (!template) {
      const sentinels = new Map<unknown, keyof Args>();
      const args = {} as Record<keyof Args, string | number>;
      this.#names.forEach((name, i) => {
        const value = typeof this.#sample[name] === "number" ? -7_919_000_000.5 - i : `${SENTINEL}${String(name)}`;
        args[name] = value;
        sentinels.set(value, name);
      });
      const query = this.#build(db, tenant, args as Args).compile();
      const slots = query.parameters.map((value) => sentinels.get(value) ?? null);
      for (const name of this.#names) {
        if (!slots.includes(name)) throw new Error(`prepared query: "${String(name)}" is not a parameter of the SQL`);
      }
      if (byTenant.size >= MAX_TENANTS) byTenant.clear();
      template = { query, slots };
      byTenant.set(tenant, template);
    }
    return template;
  }
}
