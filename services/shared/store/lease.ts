// A lease in the database electing one replica for a job (key rotation, the audit log writer).
// Whoever holds an unexpired lease runs the job; the holder renews it each round; if it dies, the
// lease expires and another replica takes over. Acquisition is a single conditional statement, so
// two replicas can never both believe they hold it at the same moment of the database's order.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Clock } from "../clock.ts";
import type { Store } from "./store.ts";

/** This process's name in a lease: host and pid (which worker holds it, for operators and tests), and a unique id. */
export function leaseHolderId(): string {
  return `${hostname()}/${process.pid}/${randomUUID()}`;
}

export class Lease {
  readonly name: string;
  readonly holder: string;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #ttlMs: number;

  constructor(store: Store, clock: Clock, name: string, holder: string, ttlMs: number) {
    this.#store = store;
    this.#clock = clock;
    this.name = name;
    this.holder = holder;
    this.#ttlMs = ttlMs;
  }

  /** Takes or renews the lease; true when this holder has it until now + ttl. */
  async acquire(): Promise<boolean> {
    const now = this.#clock.now();
    const expiresAt = now + this.#ttlMs;
    const inserted = await this.#store.db
      .insertInto("leases")
      .values({ name: this.name, holder: this.holder, expires_at: expiresAt })
      .onConflict((c) => c.column("name").doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1) return true;
    const updated = await this.#store.db
      .updateTable("leases")
      .set({ holder: this.holder, expires_at: expiresAt })
      .where("name", "=", this.name)
      .where((eb) => eb.or([eb("holder", "=", this.holder), eb("expires_at", "<=", now)]))
      .executeTakeFirst();
    return Number(updated.numUpdatedRows) === 1;
  }

  /** Gives the lease up (on shutdown) so another replica takes over at once. */
  async release(): Promise<void> {
    await this.#store.db.deleteFrom("leases").where("name", "=", this.name).where("holder", "=", this.holder).execute();
  }
}
