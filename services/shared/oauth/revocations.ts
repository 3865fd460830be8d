// What each replica knows of the revocation log (revocation-log.ts), so that introspection and
// Authorize refuse a revoked token — by its `jti`, or by its `mandate_id` (a mandate's revocation
// cascades to every sub-mandate, so the leaf named in the token is revoked whenever any mandate above
// it is) — without a store query per check:
// - per tenant, the revoked mandate ids and jtis still unexpired, loaded at the tenant's first check;
// - advanced by the log's notifications (NOTIFY in the revoking transaction, Redis publish or, between
//   `mandate dev` workers without Redis, their primary's relay; the shared ChangeNotifications), by the
//   replica's own revocations at once after they commit (`published`, which returns once the relay
//   has handed the news to every other worker), and by a poll of the tenants' heads as the fallback;
// - fail closed: the memory is trusted only while the replica can confirm it is up to date — the
//   LISTEN connection is up (and a poll since it connected succeeded), or a poll succeeded within
//   `staleAfterMs`. Otherwise every check reads the store (and an error reading it is an error,
//   never an answer from a stale set). A notification being applied makes checks of its tenant wait.
import { createLogger, type Logger } from "../logger.ts";
import { PollLoop } from "../poll-loop.ts";
import { ChangeNotifications } from "../store/change-notifications.ts";
import type { Store } from "../store/store.ts";
import { LOG_PAGE, onLocalAppend, REVOCATION_CHANNELS, type RevocationEntry, RevocationLog } from "./revocation-log.ts";

export interface RevocationIndexOptions {
  store: Store;
  /** The store's URL (the LISTEN connection's). */
  databaseUrl: string;
  redisUrl?: string | undefined;
  /** Poll of the tenants' heads (the fallback when no notification arrives). */
  pollIntervalMs: number;
  /** How long the memory is trusted after the last poll that succeeded, while LISTEN is down. */
  staleAfterMs: number;
  /** Turn a notification channel off (tests and the benchmark's baseline); on when available. */
  notifications?: { postgres?: boolean; redis?: boolean } | undefined;
  logger: Logger;
  now: () => number;
}

/** What a token names that a revocation can reach. */
export interface RevocationSubject {
  jti?: string | undefined;
  mandateId?: string | null | undefined;
}

interface TenantSet {
  /** Entries applied through this sequence. */
  sequence: number;
  jtis: Map<string, number>;
  mandates: Map<string, number>;
  /** A catch-up in flight: checks of the tenant wait for it. */
  sync: Promise<void> | undefined;
  /** A signal arrived while catching up: read once more. */
  again: boolean;
  /** The last catch-up failed: the memory of this tenant is behind until one succeeds. */
  behind: boolean;
  /** This process appended through this sequence (maybe not committed yet): read the log until it is applied... */
  pendingThrough: number;
  /** ...or until this time (the append's transaction rolled back). */
  pendingUntil: number;
}

/** How long a check reads the log after an append of this process that it has not seen commit. */
const LOCAL_PENDING_MS = 5_000;

/** Memory and store are pruned of expired entries this often. */
const PRUNE_EVERY_MS = 10 * 60_000;
/** Entries are deleted from the store this long after they expire (clocks of readers may lag). */
const PRUNE_GRACE_MS = 5 * 60_000;

export class RevocationIndex {
  readonly #o: RevocationIndexOptions;
  readonly #tenants = new Map<string, Promise<TenantSet>>();
  /** The sets loaded so far (a notification catches up without waiting a turn). */
  readonly #loaded = new Map<string, TenantSet>();
  readonly #listeners = new Map<string, Set<() => void>>();
  readonly #notifications: ChangeNotifications;
  #started = false;
  #stopped = false;
  /** Start of the last poll that succeeded: everything committed before it is known. */
  #confirmedAt = Number.NEGATIVE_INFINITY;
  /** A poll has succeeded since LISTEN last connected. */
  #listenConfirmed = false;
  #listenEpoch = 0;
  readonly #poller: PollLoop;
  #prunedAt: number;
  #unfollowLocal: (() => void) | undefined;

  constructor(options: RevocationIndexOptions) {
    this.#o = options;
    this.#prunedAt = options.now();
    this.#poller = new PollLoop(() => this.#poll(), options.pollIntervalMs);
    this.#notifications = new ChangeNotifications(
      {
        channels: REVOCATION_CHANNELS,
        engine: options.store.engine,
        databaseUrl: options.databaseUrl,
        redisUrl: options.redisUrl,
        postgres: options.notifications?.postgres,
        redis: options.notifications?.redis,
        logger: options.logger,
        what: "revocations",
      },
      {
        signal: (tenant) => this.#signal(tenant),
        resync: () => {
          this.#listenConfirmed = false;
          this.#listenEpoch++;
          this.#poller.pollSoon();
        },
      },
    );
  }

  /** An index that is never started: every check reads the store (tools, tests of other parts). */
  static readingStore(store: Store, logger: Logger = createLogger("silent")): RevocationIndex {
    return new RevocationIndex({
      store,
      databaseUrl: "",
      pollIntervalMs: 1000,
      staleAfterMs: 0,
      logger,
      now: Date.now,
    });
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const ours = this.#o.store.db.getExecutor().adapter;
    this.#unfollowLocal = onLocalAppend((store, tenant, through) => {
      const set = store === ours ? this.#loaded.get(tenant) : undefined;
      if (!set) return;
      set.pendingThrough = Math.max(set.pendingThrough, through);
      set.pendingUntil = this.#o.now() + LOCAL_PENDING_MS;
    });
    await this.#notifications.start();
    await this.#poller.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unfollowLocal?.();
    this.#poller.stop();
    await this.#notifications.stop();
  }

  /** Whether the memory may answer: LISTEN up and confirmed, or a recent poll; else the store is read. */
  get trusted(): boolean {
    if (!this.#started || this.#stopped) return false;
    if (this.#listenConfirmed && this.#notifications.listening) return true;
    return this.#o.now() - this.#confirmedAt <= this.#o.staleAfterMs;
  }

  /** Whether the token's jti or mandate is revoked (from memory when trusted, else from the store). */
  async isRevoked(tenant: string, subject: RevocationSubject): Promise<boolean> {
    const mandateId = subject.mandateId ?? undefined;
    if (!subject.jti && !mandateId) return false;
    if (this.trusted) {
      const set = await this.#tenant(tenant);
      // An append of this process not applied yet: read the log (it may have committed by now).
      if (set.pendingThrough > set.sequence && this.#o.now() < set.pendingUntil) await this.#catchUp(tenant, set);
      else if (set.sync) await set.sync;
      if (!set.behind) {
        const now = this.#o.now();
        const hit = (map: Map<string, number>, id: string | undefined) => id !== undefined && (map.get(id) ?? 0) > now;
        return hit(set.jtis, subject.jti) || hit(set.mandates, mandateId);
      }
    }
    // Fail closed: what the store says, or an error.
    const log = this.#o.store.forTenant(tenant).use(RevocationLog);
    return (
      (subject.jti !== undefined && (await log.anyRevoked("jti", [subject.jti]))) ||
      (mandateId !== undefined && (await log.anyRevoked("mandate", [mandateId])))
    );
  }

  /**
   * After this replica committed revocations of `tenant`: learn them now (the caller's answer waits
   * for it, so this replica refuses the tokens at once) and tell the replicas listening on Redis.
   */
  async published(tenant: string): Promise<void> {
    const set = this.#loaded.get(tenant);
    if (set) await this.#catchUp(tenant, set).catch(() => {});
    else this.#emit(tenant);
    await this.#notifications.publish(tenant);
  }

  /** Calls `listener` whenever the tenant's log may have grown; returns the unsubscribe. */
  watch(tenant: string, listener: () => void): () => void {
    let set = this.#listeners.get(tenant);
    if (!set) {
      set = new Set();
      this.#listeners.set(tenant, set);
    }
    set.add(listener);
    // The tenant is followed (and so its growth noticed by the poll) from now on.
    this.#tenant(tenant).catch(() => {});
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(tenant);
    };
  }

  #emit(tenant: string): void {
    for (const listener of this.#listeners.get(tenant) ?? []) listener();
  }

  #signal(tenant: string): void {
    const set = this.#loaded.get(tenant);
    if (set) this.#catchUp(tenant, set).catch(() => {});
    else this.#emit(tenant);
  }

  /** The tenant's set, loaded from the log at its first use. */
  #tenant(tenant: string): Promise<TenantSet> {
    let loaded = this.#tenants.get(tenant);
    if (!loaded) {
      const set: TenantSet = {
        sequence: 0,
        jtis: new Map(),
        mandates: new Map(),
        sync: undefined,
        again: false,
        behind: false,
        pendingThrough: 0,
        pendingUntil: 0,
      };
      loaded = this.#catchUp(tenant, set).then(() => {
        this.#loaded.set(tenant, set);
        return set;
      });
      this.#tenants.set(tenant, loaded);
      // A load that failed is tried again at the next use.
      loaded.catch(() => this.#tenants.delete(tenant));
    }
    return loaded;
  }

  /** Reads the tenant's entries after what is applied, until none is left; one at a time per tenant. */
  #catchUp(tenant: string, set: TenantSet): Promise<void> {
    if (set.sync) {
      set.again = true;
      return set.sync;
    }
    const run = async () => {
      let applied = 0;
      try {
        do {
          set.again = false;
          applied += await this.#readNew(tenant, set);
        } while (set.again);
        set.behind = false;
      } catch (error) {
        set.behind = true;
        this.#o.logger.warn({ err: error, tenant }, "revocations: reading the revocation log failed");
        throw error;
      } finally {
        set.sync = undefined;
        if (applied > 0) this.#emit(tenant);
      }
    };
    set.sync = run();
    return set.sync;
  }

  /** One read of the entries after what is applied; how many were applied. */
  async #readNew(tenant: string, set: TenantSet): Promise<number> {
    const log = this.#o.store.forTenant(tenant).use(RevocationLog);
    // Entries through the head are committed (the head moves in their transaction): none is missed
    // by reading after it next time, even if every entry read now has expired.
    const head = await log.head();
    let applied = 0;
    for (;;) {
      const entries = await log.after(set.sequence, this.#o.now());
      for (const entry of entries) apply(set, entry);
      applied += entries.length;
      if (entries.length < LOG_PAGE) break;
    }
    if (head > set.sequence) set.sequence = head;
    return applied;
  }

  /** Reads the heads of the tenants followed here and catches up those that moved. */
  async #poll(): Promise<void> {
    const started = this.#o.now();
    const epoch = this.#listenEpoch;
    try {
      const sets = new Map(this.#loaded);
      if (sets.size > 0) {
        const heads = await this.#o.store.db
          .selectFrom("revocation_heads")
          .select(["tenant_id", "last_sequence"])
          .where("tenant_id", "in", [...sets.keys()])
          .execute();
        for (const head of heads) {
          const set = sets.get(head.tenant_id) as TenantSet;
          if (Number(head.last_sequence) > set.sequence || set.behind) await this.#catchUp(head.tenant_id, set);
        }
      }
      this.#confirmedAt = started;
      if (epoch === this.#listenEpoch && this.#notifications.listening) this.#listenConfirmed = true;
      if (started - this.#prunedAt >= PRUNE_EVERY_MS) await this.#prune(sets, started);
    } catch (error) {
      this.#o.logger.warn({ err: error }, "revocations: polling the revocation log failed; retrying");
    }
  }

  async #prune(sets: Map<string, TenantSet>, now: number): Promise<void> {
    this.#prunedAt = now;
    for (const [tenant, set] of sets) {
      for (const map of [set.jtis, set.mandates]) for (const [id, until] of map) if (until <= now) map.delete(id);
      await this.#o.store
        .forTenant(tenant)
        .use(RevocationLog)
        .prune(now - PRUNE_GRACE_MS);
    }
  }
}

function apply(set: TenantSet, entry: RevocationEntry): void {
  (entry.kind === "mandate" ? set.mandates : set.jtis).set(entry.id, entry.expireTime);
  if (entry.sequence > set.sequence) set.sequence = entry.sequence;
}
