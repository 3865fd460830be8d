// How every replica learns, within a second, that something of a tenant changed in the store: a
// PostgreSQL NOTIFY sent inside the change's transaction (delivered exactly when the change
// commits) on a LISTEN connection, and Redis pub/sub when redis.url is set. A message carries only
// the tenant id; the receiver re-reads the store and never trusts anything else of it. Each user
// (policy reload, the revocation log) has its own pair of channels and its own poll as the fallback:
// after every (re)connect the user is told to resync, since messages may have been missed meanwhile.
// Without Redis, the workers of `mandate dev --workers N` tell each other through their primary
// process instead (a ChangeRelay, runtime/worker-state.ts): a worker's publish reaches every other.
import { Redis } from "ioredis";
import { type Kysely, sql } from "kysely";
import pg from "pg";
import type { Logger } from "../logger.ts";
import type { Database, Engine } from "./store.ts";

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5_000;

const TENANT_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A tenant id from a message, or undefined when it is not one (the message is then ignored). */
export function tenantFromMessage(payload: unknown): string | undefined {
  return typeof payload === "string" && TENANT_ID.test(payload) ? payload : undefined;
}

/** Sends a change's NOTIFY inside its transaction (PostgreSQL delivers it at commit; SQLite has none). */
export async function notifyInTransaction(
  tx: Kysely<Database>,
  engine: Engine,
  channel: string,
  tenant: string,
): Promise<void> {
  if (engine === "postgres") await sql`select pg_notify(${channel}, ${tenant})`.execute(tx);
}

/** The channel names of one kind of change. */
export interface ChangeChannels {
  /** PostgreSQL NOTIFY channel (an identifier: lower case letters and underscores). */
  postgres: string;
  /** Redis pub/sub channel. */
  redis: string;
}

export interface ChangeNotificationOptions {
  channels: ChangeChannels;
  engine: Engine;
  /** The store's URL (the LISTEN connection's). */
  databaseUrl: string;
  redisUrl?: string | undefined;
  /** Turn a channel off (tests of the fallback); both default to on when available. */
  postgres?: boolean | undefined;
  redis?: boolean | undefined;
  logger: Logger;
  /** Words for log lines: "policy reload", "revocations". */
  what: string;
}

export interface ChangeHandlers {
  /** A message named the tenant. */
  signal(tenant: string): void;
  /** A channel (re)connected: messages may have been missed, read the store again. */
  resync(): void;
}

/**
 * Carries messages between sibling processes that share no Redis (`mandate dev` workers, through
 * their primary). Like Redis pub/sub it never counts as listening: a message may be lost.
 */
export interface ChangeRelay {
  /** Tells the sibling processes; resolves once each live one has been handed the message. */
  publish(channel: string, tenant: string): Promise<void>;
  /** Calls `signal` with each tenant a sibling publishes on `channel`; returns the unsubscribe. */
  subscribe(channel: string, signal: (tenant: string) => void): () => void;
}

/** The relay of this process, when it has sibling processes and no Redis (set once at start-up). */
let processRelay: ChangeRelay | undefined;

export function relayChangesThrough(relay: ChangeRelay | undefined): void {
  processRelay = relay;
}

/** The notification channels of one kind of change: a LISTEN connection, a Redis subscriber and publisher. */
export class ChangeNotifications {
  readonly #options: ChangeNotificationOptions;
  readonly #handlers: ChangeHandlers;
  #postgres: PostgresListener | undefined;
  #redis: RedisChannel | undefined;
  /** Without Redis: the relay to sibling processes (its channel is the Redis channel's name), and its unsubscribe. */
  #relay: { relay: ChangeRelay; unsubscribe: () => void } | undefined;

  constructor(options: ChangeNotificationOptions, handlers: ChangeHandlers) {
    this.#options = options;
    this.#handlers = handlers;
  }

  async start(): Promise<void> {
    const o = this.#options;
    if (o.engine === "postgres" && o.postgres !== false) {
      this.#postgres = new PostgresListener(o.databaseUrl, o.channels.postgres, this.#handlers, o.logger, o.what);
      await this.#postgres.start();
    }
    if (o.redisUrl && o.redis !== false) {
      this.#redis = new RedisChannel(o.redisUrl, o.channels.redis, this.#handlers, o.logger, o.what);
      await this.#redis.start();
    } else if (processRelay && o.redis !== false) {
      const relay = processRelay;
      this.#relay = {
        relay,
        unsubscribe: relay.subscribe(o.channels.redis, (tenant) => this.#handlers.signal(tenant)),
      };
    }
  }

  /**
   * Whether the LISTEN connection is up: then every change committed from now on is announced (the
   * NOTIFY travels with the transaction). Redis never counts: its publish may be lost.
   */
  get listening(): boolean {
    return this.#postgres?.listening ?? false;
  }

  /** Tells the other replicas over Redis or the relay (PostgreSQL's NOTIFY went with the transaction). */
  async publish(tenant: string): Promise<void> {
    await this.#redis?.publish(tenant);
    if (this.#relay) {
      try {
        await this.#relay.relay.publish(this.#options.channels.redis, tenant);
      } catch (error) {
        // As a lost Redis message: the others learn at their next poll.
        this.#options.logger.warn(
          { err: error },
          `${this.#options.what}: the other workers were not told; they learn by polling`,
        );
      }
    }
  }

  async stop(): Promise<void> {
    const listeners = [this.#postgres, this.#redis];
    this.#relay?.unsubscribe();
    this.#relay = undefined;
    this.#postgres = undefined;
    this.#redis = undefined;
    await Promise.allSettled(listeners.map((l) => l?.stop()));
  }
}

/** LISTEN on a dedicated connection; reconnects with backoff and asks for a resync after each connect. */
class PostgresListener {
  readonly #url: string;
  readonly #channel: string;
  readonly #handlers: ChangeHandlers;
  readonly #logger: Logger;
  readonly #what: string;
  #client: pg.Client | undefined;
  #timer: NodeJS.Timeout | undefined;
  #delay = RECONNECT_MIN_MS;
  #stopped = false;
  listening = false;

  constructor(url: string, channel: string, handlers: ChangeHandlers, logger: Logger, what: string) {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`not a NOTIFY channel name: ${channel}`);
    this.#url = url;
    this.#channel = channel;
    this.#handlers = handlers;
    this.#logger = logger;
    this.#what = what;
  }

  async start(): Promise<void> {
    await this.#connect();
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const client = new pg.Client({ connectionString: this.#url });
    this.#client = client;
    client.on("notification", (message) => {
      const tenant = message.channel === this.#channel ? tenantFromMessage(message.payload) : undefined;
      if (tenant) this.#handlers.signal(tenant);
    });
    client.on("error", (error) => this.#lost(client, error));
    client.on("end", () => this.#lost(client, undefined));
    try {
      await client.connect();
      await client.query(`LISTEN ${this.#channel}`);
      this.#delay = RECONNECT_MIN_MS;
      this.listening = true;
      this.#handlers.resync();
    } catch (error) {
      this.#lost(client, error);
    }
  }

  #lost(client: pg.Client, error: unknown): void {
    if (this.#stopped || this.#client !== client) return;
    this.#client = undefined;
    this.listening = false;
    client.removeAllListeners("end");
    client.end().catch(() => {});
    this.#logger.warn({ err: error }, `${this.#what}: LISTEN connection lost; reconnecting in ${this.#delay} ms`);
    this.#timer = setTimeout(() => void this.#connect(), this.#delay);
    this.#timer.unref();
    this.#delay = Math.min(this.#delay * 2, RECONNECT_MAX_MS);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.listening = false;
    clearTimeout(this.#timer);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}

/** Redis pub/sub: a subscriber connection (ioredis resubscribes after reconnecting) and a publisher. */
class RedisChannel {
  readonly #channel: string;
  readonly #subscriber: Redis;
  readonly #publisher: Redis;
  readonly #handlers: ChangeHandlers;
  readonly #logger: Logger;
  readonly #what: string;
  #warned = false;

  constructor(url: string, channel: string, handlers: ChangeHandlers, logger: Logger, what: string) {
    this.#channel = channel;
    this.#handlers = handlers;
    this.#logger = logger;
    this.#what = what;
    this.#subscriber = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: null });
    this.#publisher = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    for (const connection of [this.#subscriber, this.#publisher]) connection.on("error", (e) => this.#warn(e));
  }

  async start(): Promise<void> {
    this.#subscriber.on("message", (channel: string, message: string) => {
      const tenant = channel === this.#channel ? tenantFromMessage(message) : undefined;
      if (tenant) this.#handlers.signal(tenant);
    });
    this.#subscriber.on("ready", () => {
      // (Re)subscribe on every connection: also after a first connect that failed.
      this.#subscriber.subscribe(this.#channel).catch((error: unknown) => this.#warn(error));
      this.#warned = false;
      this.#handlers.resync();
    });
    try {
      await this.#subscriber.connect();
      await this.#subscriber.subscribe(this.#channel);
      await this.#publisher.connect();
    } catch (error) {
      this.#warn(error); // ioredis keeps reconnecting; polling covers the meantime
    }
  }

  async publish(tenant: string): Promise<void> {
    try {
      await this.#publisher.publish(this.#channel, tenant);
    } catch (error) {
      this.#warn(error);
    }
  }

  #warn(error: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    this.#logger.warn({ err: error }, `${this.#what}: Redis pub/sub unavailable; other replicas learn by polling`);
  }

  async stop(): Promise<void> {
    this.#subscriber.disconnect();
    this.#publisher.disconnect();
  }
}
