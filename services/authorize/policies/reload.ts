// How every replica learns that a tenant's policy changed (activation, data, signing), within a
// second: PostgreSQL LISTEN/NOTIFY when the store is PostgreSQL (the NOTIFY is sent inside the
// change's transaction, so it is delivered exactly when the change commits), Redis pub/sub when
// redis.url is set, and always polling `policy_state` as the fallback. A message carries only the
// tenant id; the receiver re-reads the store and never trusts anything else of it. The channels are
// the shared ChangeNotifications (shared/store/change-notifications.ts); the poll is policy_state's.

import type { Kysely } from "kysely";
import type { Logger } from "../../shared/logger.ts";
import { PollLoop } from "../../shared/poll-loop.ts";
import {
  ChangeNotifications,
  notifyInTransaction as notifyChannel,
  tenantFromMessage,
} from "../../shared/store/change-notifications.ts";
import type { Database, Engine, Store } from "../../shared/store/store.ts";

export { tenantFromMessage };

/** PostgreSQL NOTIFY channel and Redis pub/sub channel of policy changes. */
export const POSTGRES_CHANNEL = "mandate_policy_changes";
export const REDIS_CHANNEL = "mandate:policy-changes";

/** Rows changed this long before the newest change seen are read again (writers' clocks may differ). */
const POLL_OVERLAP_MS = 5 * 60_000;

/** Sends the change's NOTIFY inside its transaction (PostgreSQL delivers it at commit). */
export async function notifyInTransaction(tx: Kysely<Database>, engine: Engine, tenant: string): Promise<void> {
  await notifyChannel(tx, engine, POSTGRES_CHANNEL, tenant);
}

export interface ReloadHandlers {
  /** A notification named the tenant: re-read its version from the store. */
  signal(tenant: string): void;
  /** The poll read the tenant's version; `quiet` on the first poll (nothing was known before). */
  version(tenant: string, version: number, quiet: boolean): void;
}

export interface ReloadOptions {
  store: Store;
  /** The store's URL (the LISTEN connection's). */
  databaseUrl: string;
  redisUrl?: string | undefined;
  pollIntervalMs: number;
  /** Turn a channel off (tests of the fallback); both default to on when available. */
  postgres?: boolean;
  redis?: boolean;
  logger: Logger;
  now: () => number;
}

/** The change channels of one registry: listeners, publisher and the poll. */
export class PolicyReloader {
  readonly #options: ReloadOptions;
  readonly #handlers: ReloadHandlers;
  #notifications: ChangeNotifications | undefined;
  #poller: Poller | undefined;

  constructor(options: ReloadOptions, handlers: ReloadHandlers) {
    this.#options = options;
    this.#handlers = handlers;
  }

  async start(): Promise<void> {
    const o = this.#options;
    this.#poller = new Poller(o.store.db, o.pollIntervalMs, o.now, this.#handlers, o.logger);
    await this.#poller.start();
    this.#notifications = new ChangeNotifications(
      {
        channels: { postgres: POSTGRES_CHANNEL, redis: REDIS_CHANNEL },
        engine: o.store.engine,
        databaseUrl: o.databaseUrl,
        redisUrl: o.redisUrl,
        postgres: o.postgres,
        redis: o.redis,
        logger: o.logger,
        what: "policy reload",
      },
      { signal: (tenant) => this.#handlers.signal(tenant), resync: () => this.#poller?.pollSoon() },
    );
    await this.#notifications.start();
  }

  /** Tells the other replicas over Redis (PostgreSQL's NOTIFY went with the transaction). */
  async publish(tenant: string): Promise<void> {
    await this.#notifications?.publish(tenant);
  }

  async stop(): Promise<void> {
    this.#poller?.stop();
    await this.#notifications?.stop();
    this.#notifications = undefined;
  }
}

/**
 * Reads `policy_state` rows changed since the last poll (through the global handle: a read across
 * tenants, like the audit outbox drain) and reports each tenant's version; the registry compares.
 */
class Poller {
  readonly #db: Kysely<Database>;
  readonly #handlers: ReloadHandlers;
  readonly #logger: Logger;
  readonly #loop: PollLoop;
  #since: number;
  /** The first poll is quiet: nothing was known before it. */
  #first = true;

  constructor(db: Kysely<Database>, interval: number, now: () => number, handlers: ReloadHandlers, logger: Logger) {
    this.#db = db;
    this.#handlers = handlers;
    this.#logger = logger;
    this.#since = now() - POLL_OVERLAP_MS;
    this.#loop = new PollLoop(() => this.#poll(), interval);
  }

  async start(): Promise<void> {
    await this.#loop.start();
  }

  /** Polls at once (a notification channel reconnected and may have missed messages). */
  pollSoon(): void {
    this.#loop.pollSoon();
  }

  stop(): void {
    this.#loop.stop();
  }

  async #poll(): Promise<void> {
    const quiet = this.#first;
    this.#first = false;
    try {
      const rows = await this.#db
        .selectFrom("policy_state")
        .select(["tenant_id", "version", "updated_at"])
        .where("updated_at", ">=", this.#since)
        .execute();
      let newest = 0;
      for (const row of rows) {
        newest = Math.max(newest, Number(row.updated_at));
        this.#handlers.version(row.tenant_id, Number(row.version), quiet);
      }
      if (newest > 0) this.#since = Math.max(this.#since, newest - POLL_OVERLAP_MS);
    } catch (error) {
      this.#logger.warn({ err: error }, "policy reload: polling policy_state failed; retrying");
    }
  }
}
