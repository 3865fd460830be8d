// The audit writer: of every process hosting the Audit service over one store (replicas, `--workers`),
// the one holding the "audit-writer" lease drains the outbox, signs checkpoints, and takes the events
// committed alone (a client-credentials token's, a decision's) straight into the log, skipping the
// outbox. The others leave those events in the outbox for it. The lease elects for cost, not for
// correctness: two writers at once (around a lease's expiry) still append in order, since every
// append locks the tenant's head; what one writer saves is the contention and the outbox round trip.
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/logger.ts";
import { Lease, leaseHolderId } from "../shared/store/lease.ts";
import type { Store, TimedEvent } from "../shared/store/store.ts";
import { type AuditLog, eventFromOutbox } from "./log.ts";

/** How long the lease lasts unrenewed: how long a dead writer's work waits for another. */
const LEASE_TTL_MS = 6_000;
/** How often the holder renews and the others try: a third of the lease, so one missed turn is harmless. */
const RENEW_EVERY_MS = LEASE_TTL_MS / 3;

export interface AuditWriterLeaseOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  log: AuditLog;
  /** This process's name in the lease (a fresh id by default). */
  holder?: string;
}

export class AuditWriterLease {
  readonly #lease: Lease;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #log: AuditLog;
  #held = false;
  #triedAt = Number.NEGATIVE_INFINITY;

  constructor(options: AuditWriterLeaseOptions) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#log = options.log;
    this.#lease = new Lease(
      options.store,
      options.clock,
      "audit-writer",
      options.holder ?? leaseHolderId(),
      LEASE_TTL_MS,
    );
  }

  /** Whether this process is the writer (as of its last take or renewal). */
  get held(): boolean {
    return this.#held;
  }

  /** Takes or renews the lease now; routes events committed alone to the log while held. */
  async hold(): Promise<boolean> {
    this.#triedAt = this.#clock.now();
    let held = false;
    try {
      held = await this.#lease.acquire();
    } catch (error) {
      // Unknown: the lease may have lapsed meanwhile, so act as a non-writer until it is renewed.
      this.#logger.warn({ err: error }, "audit writer lease not renewed; events wait in the outbox");
    }
    if (held !== this.#held) this.#logger.info({ holder: this.#lease.holder, held }, "audit writer lease changed");
    this.#held = held;
    this.#store.routeLoneEvents(held ? (tenant, timed) => this.#appendAlone(tenant, timed) : undefined);
    return held;
  }

  /** `hold()` when a renewal (or, for a non-writer, another try) is due; else whether it is held. */
  async renewIfDue(): Promise<boolean> {
    if (this.#clock.now() - this.#triedAt < RENEW_EVERY_MS) return this.#held;
    return this.hold();
  }

  /** Stops taking events committed alone (they go to the outbox again); the lease is kept until release. */
  giveUp(): void {
    this.#held = false;
    this.#store.routeLoneEvents(undefined);
  }

  /** Hands the lease back so another process takes over at once (graceful stop). */
  async release(): Promise<void> {
    this.giveUp();
    await this.#lease.release().catch((error: unknown) => {
      this.#logger.warn({ err: error }, "audit writer lease not released; it lapses on its own");
    });
  }

  async #appendAlone(tenant: string, timed: TimedEvent): Promise<void> {
    await this.#log.append(tenant, [eventFromOutbox(timed)]);
  }
}
