// How every replica learns that a tenant's policy changed (activation, data, signing), within a
// second: PostgreSQL LISTEN/NOTIFY when the store is PostgreSQL (the NOTIFY is sent inside the
// change's transaction, so it is delivered exactly when the change commits), Redis pub/sub when
// redis.url is set, and always polling `policy_state` as the fallback. A message carries only the
// tenant id; the receiver re-reads the store and never trusts anything else of it.

import { Redis } from "ioredis";
import { type Kysely, sql } from "kysely";
import pg from "pg";
import type { Logger } from "../../shared/logger.ts";
import type { Database, Engine, Store } from "../../shared/store/store.ts";

/** PostgreSQL NOTIFY channel and Redis pub/sub channel of policy changes. */
export const POSTGRES_CHANNEL = "mandate_policy_changes";
export const REDIS_CHANNEL = "mandate:policy-changes";

/** Rows changed this long before the newest change seen are read again (writers' clocks may differ). */
const POLL_OVERLAP_MS = 5 * 60_000;
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5_000;

const TENANT_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A tenant id from a message, or undefined when it is not one (the message is then ignored). */
export function tenantFromMessage(payload: unknown): string | undefined {
  return typeof payload === "string" && TENANT_ID.test(payload) ? payload : undefined;
}

/** Sends the change's NOTIFY inside its transaction (PostgreSQL delivers it at commit). */
export async function notifyInTransaction(tx: Kysely<Database>, engine: Engine, tenant: string): Promise<void> {
  if (engine === "postgres") await sql`select pg_notify(${POSTGRES_CHANNEL}, ${tenant})`.execute(tx);
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
  readonly #listeners: Array<{ stop(): Promise<void> }> = [];
  #redis: RedisChannel | undefined;
  #poller: Poller | undefined;

  constructor(options: ReloadOptions, handlers: ReloadHandlers) {
    this.#options = options;
    this.#handlers = handlers;
  }

  async start(): Promise<void> {
    const o = this.#options;
    this.#poller = new Poller(o.store.db, o.pollIntervalMs, o.now, this.#handlers, o.logger);
    await this.#poller.start();
    const resync = () => this.#poller?.pollSoon();
    if (o.store.engine === "postgres" && o.postgres !== false) {
      const listener = new PostgresListener(o.databaseUrl, this.#handlers, resync, o.logger);
      this.#listeners.push(listener);
      await listener.start();
    }
    if (o.redisUrl && o.redis !== false) {
      this.#redis = new RedisChannel(o.redisUrl, this.#handlers, resync, o.logger);
      this.#listeners.push(this.#redis);
      await this.#redis.start();
    }
  }

  /** Tells the other replicas over Redis (PostgreSQL's NOTIFY went with the transaction). */
  async publish(tenant: string): Promise<void> {
    await this.#redis?.publish(tenant);
  }

  async stop(): Promise<void> {
    this.#poller?.stop();
    await Promise.allSettled(this.#listeners.splice(0).map((l) => l.stop()));
    this.#redis = undefined;
  }
}

/**
 * Reads `policy_state` rows changed since the last poll (through the global handle: a read across
 * tenants, like the audit outbox drain) and reports each tenant's version; the registry compares.
 */
class Poller {
  readonly #db: Kysely<Database>;
  readonly #interval: number;
  readonly #handlers: ReloadHandlers;
  readonly #logger: Logger;
  #since: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(db: Kysely<Database>, interval: number, now: () => number, handlers: ReloadHandlers, logger: Logger) {
    this.#db = db;
    this.#interval = interval;
    this.#handlers = handlers;
    this.#logger = logger;
    this.#since = now() - POLL_OVERLAP_MS;
  }

  async start(): Promise<void> {
    await this.#poll(true);
    this.#schedule(this.#interval);
  }

  /** Polls at once (a notification channel reconnected and may have missed messages). */
  pollSoon(): void {
    this.#schedule(0);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(delay: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#tick(), delay);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    // One poll at a time; a poll asked for while one runs is served by the next tick.
    if (!this.#running) {
      this.#running = this.#poll(false).finally(() => {
        this.#running = undefined;
      });
    }
    await this.#running;
    this.#schedule(this.#interval);
  }

  async #poll(quiet: boolean): Promise<void> {
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

/** LISTEN on a dedicated connection; reconnects with backoff and resyncs by polling after each connect. */
class PostgresListener {
  readonly #url: string;
  readonly #handlers: ReloadHandlers;
  readonly #resync: () => void;
  readonly #logger: Logger;
  #client: pg.Client | undefined;
  #timer: NodeJS.Timeout | undefined;
  #delay = RECONNECT_MIN_MS;
  #stopped = false;

  constructor(url: string, handlers: ReloadHandlers, resync: () => void, logger: Logger) {
    this.#url = url;
    this.#handlers = handlers;
    this.#resync = resync;
    this.#logger = logger;
  }

  async start(): Promise<void> {
    await this.#connect();
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const client = new pg.Client({ connectionString: this.#url });
    this.#client = client;
    client.on("notification", (message) => {
      const tenant = message.channel === POSTGRES_CHANNEL ? tenantFromMessage(message.payload) : undefined;
      if (tenant) this.#handlers.signal(tenant);
    });
    client.on("error", (error) => this.#lost(client, error));
    client.on("end", () => this.#lost(client, undefined));
    try {
      await client.connect();
      await client.query(`LISTEN ${POSTGRES_CHANNEL}`);
      this.#delay = RECONNECT_MIN_MS;
      this.#resync();
    } catch (error) {
      this.#lost(client, error);
    }
  }

  #lost(client: pg.Client, error: unknown): void {
    if (this.#stopped || this.#client !== client) return;
    this.#client = undefined;
    client.removeAllListeners("end");
    client.end().catch(() => {});
    this.#logger.warn({ err: error }, `policy reload: LISTEN connection lost; reconnecting in ${this.#delay} ms`);
    this.#timer = setTimeout(() => void this.#connect(), this.#delay);
    this.#timer.unref();
    this.#delay = Math.min(this.#delay * 2, RECONNECT_MAX_MS);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}

/** Redis pub/sub: a subscriber connection (ioredis resubscribes after reconnecting) and a publisher. */
class RedisChannel {
  readonly #subscriber: Redis;
  readonly #publisher: Redis;
  readonly #handlers: ReloadHandlers;
  readonly #resync: () => void;
  readonly #logger: Logger;
  #warned = false;

  constructor(url: string, handlers: ReloadHandlers, resync: () => void, logger: Logger) {
    this.#handlers = handlers;
    this.#resync = resync;
    this.#logger = logger;
    this.#subscriber = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: null });
    this.#publisher = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    for (const connection of [this.#subscriber, this.#publisher]) connection.on("error", (e) => this.#warn(e));
  }

  async start(): Promise<void> {
    this.#subscriber.on("message", (channel: string, message: string) => {
      const tenant = channel === REDIS_CHANNEL ? tenantFromMessage(message) : undefined;
      if (tenant) this.#handlers.signal(tenant);
    });
    this.#subscriber.on("ready", () => {
      // (Re)subscribe on every connection: also after a first connect that failed.
      this.#subscriber.subscribe(REDIS_CHANNEL).catch((error: unknown) => this.#warn(error));
      this.#warned = false;
      this.#resync();
    });
    try {
      await this.#subscriber.connect();
      await this.#subscriber.subscribe(REDIS_CHANNEL);
      await this.#publisher.connect();
    } catch (error) {
      this.#warn(error); // ioredis keeps reconnecting; polling covers the meantime
    }
  }

  async publish(tenant: string): Promise<void> {
    try {
      await this.#publisher.publish(REDIS_CHANNEL, tenant);
    } catch (error) {
      this.#warn(error);
    }
  }

  #warn(error: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    this.#logger.warn({ err: error }, "policy reload: Redis pub/sub unavailable; other replicas learn by polling");
  }

  async stop(): Promise<void> {
    this.#subscriber.disconnect();
    this.#publisher.disconnect();
  }
}
