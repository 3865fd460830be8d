// `mandate dev --workers N` without Redis: what the workers must share, held by the primary process
// and reached over node:cluster's IPC channel — the DPoP and client-assertion replay memory (a
// MemoryReplayCache), the rate limits (a MemoryRateLimiter), and the news of revocations (and of
// every other ChangeNotifications user), relayed by the primary from the worker that made them to
// every other one. One small request/response channel carries all three. Replay checks and rate
// limits sit on the hot path of DPoP and rate-limited requests, so each end sends everything it asks
// or answers within one turn of its event loop as one message, and a check of cost 0 (made before
// every client authentication) is answered by the worker itself while its bucket is full: the primary
// tells every worker of a bucket drawn from before it answers the take. When the primary cannot answer (gone,
// stopped, too slow), replay checks fail closed (ReplayStoreUnavailable: 503, as without Redis) and
// rate limits fall back to the worker's own buckets (as when Redis is down).
import cluster, { type Worker } from "node:cluster";
import type { Logger } from "../shared/logger.ts";
import { MemoryReplayCache, type ReplayCache, ReplayStoreUnavailable } from "../shared/oauth/replay.ts";
import {
  checkRateRule,
  FallbackBuckets,
  MemoryRateLimiter,
  type RateDecision,
  type RateLimiter,
  type RateRule,
} from "../shared/rate-limit.ts";
import { type ChangeRelay, relayChangesThrough, tenantFromMessage } from "../shared/store/change-notifications.ts";

const MESSAGE = "mandate:state";

/** The operations: a worker asks the primary the first three, the primary asks a worker the last. */
const FIRST_USE = "replay.firstUse";
const TAKE = "rate.take";
const PUBLISH = "changes.publish";
const SIGNAL = "changes.signal";
const DRAWN = "rate.drawn";

/** Most buckets a worker remembers as drawn; beyond it the oldest are forgotten (checked as full). */
const MAX_DRAWN = 200_000;

/** How long a worker waits for the primary before a replay check fails and a limit falls back. */
export const PRIMARY_TIMEOUT_MS = 1000;

/** A request: its id at the asking end, the operation, its arguments. */
type Call = [id: number, op: string, args: unknown[]];
/** An answer: the request's id, the error's message (null when it succeeded), the value. */
type Answer = [id: number, error: string | null, value: unknown];

/** Everything one end asked and answered in one turn of its event loop. */
interface StateMessage {
  type: typeof MESSAGE;
  calls: Call[];
  answers: Answer[];
}

const isStateMessage = (message: unknown): message is StateMessage =>
  typeof message === "object" &&
  message !== null &&
  (message as StateMessage).type === MESSAGE &&
  Array.isArray((message as StateMessage).calls) &&
  Array.isArray((message as StateMessage).answers);

/** The other end did not answer: it is gone, its channel closed, or it took longer than allowed. */
export class PeerUnavailable extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "PeerUnavailable";
  }
}

/** An operation this end serves: a value, or a promise of one (answered once it settles). */
type Handler = (args: unknown[]) => unknown;

/** Requests sent in one message share one timer. */
interface Batch {
  left: number;
  timer: NodeJS.Timeout | undefined;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  batch: Batch;
}

export interface StateChannelOptions {
  /** Who answers at the other end, for errors ("the primary process", "worker 1234"). */
  peer: string;
  /** Sends one message; `done` gets the error when it could not be handed to the channel. */
  send(message: StateMessage, done: (error: Error | null) => void): void;
  handlers: Record<string, Handler>;
  timeoutMs: number;
}

/** One end of the channel: requests out and answers back, everything of one event-loop turn in one message. */
export class StateChannel {
  readonly #o: StateChannelOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #calls: Call[] = [];
  #answers: Answer[] = [];
  #batch: Batch = { left: 0, timer: undefined };
  #flushing = false;
  #closed: PeerUnavailable | undefined;

  constructor(options: StateChannelOptions) {
    this.#o = options;
  }

  /** Asks the other end; rejects with PeerUnavailable when it cannot answer in time. */
  request(op: string, args: unknown[]): Promise<unknown> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = ++this.#nextId;
    const batch = this.#batch;
    batch.left++;
    this.#calls.push([id, op, args]);
    this.#scheduleFlush();
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject, batch }));
  }

  /** A message from the other end: its answers settle requests, its calls are served. */
  receive(message: StateMessage): void {
    for (const [id, error, value] of message.answers) {
      if (error === null) this.#settle(id, undefined, value);
      else this.#settle(id, new Error(error));
    }
    for (const call of message.calls) this.#serve(call);
  }

  /** The other end is gone: every request waiting and every later one fails. */
  close(reason: string): void {
    this.#closed ??= new PeerUnavailable(reason);
    for (const id of [...this.#pending.keys()]) this.#settle(id, this.#closed);
  }

  #serve([id, op, args]: Call): void {
    const answer = (error: unknown, value?: unknown) => {
      this.#answers.push(
        error === undefined ? [id, null, value ?? null] : [id, String((error as Error)?.message ?? error), null],
      );
      this.#scheduleFlush();
    };
    const handler = Object.hasOwn(this.#o.handlers, op) ? this.#o.handlers[op] : undefined;
    if (!handler || !Array.isArray(args)) {
      answer(new Error(`unknown operation ${String(op)}`));
      return;
    }
    try {
      const result = handler(args);
      if (result instanceof Promise)
        result.then(
          (value) => answer(undefined, value),
          (error) => answer(error ?? "failed"),
        );
      else answer(undefined, result);
    } catch (error) {
      answer(error ?? "failed");
    }
  }

  #settle(id: number, error: Error | undefined, value?: unknown): void {
    const pending = this.#pending.get(id);
    if (!pending) return; // answered after its timeout
    this.#pending.delete(id);
    if (--pending.batch.left === 0) clearTimeout(pending.batch.timer);
    if (error) pending.reject(error);
    else pending.resolve(value);
  }

  #scheduleFlush(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    // After the I/O callbacks of this turn: what they all asked and answered leaves as one message.
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#flushing = false;
    const { peer, timeoutMs } = this.#o;
    const calls = this.#calls;
    const batch = this.#batch;
    const message: StateMessage = { type: MESSAGE, calls, answers: this.#answers };
    this.#calls = [];
    this.#answers = [];
    this.#batch = { left: 0, timer: undefined };
    const fail = (error: PeerUnavailable) => {
      for (const [id] of calls) this.#settle(id, error);
    };
    if (calls.length > 0) {
      batch.timer = setTimeout(
        () => fail(new PeerUnavailable(`no answer from ${peer} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      batch.timer.unref();
    }
    if (this.#closed) {
      fail(this.#closed);
      return;
    }
    try {
      this.#o.send(message, (error) => {
        if (error) fail(new PeerUnavailable(`${peer} cannot be reached`, error));
      });
    } catch (error) {
      fail(new PeerUnavailable(`${peer} cannot be reached`, error));
    }
  }
}

// --- In the primary ------------------------------------------------------------------------------

export interface HeldState {
  /** Stops answering the workers. */
  close(): void;
}

/**
 * In the primary: holds the memory the workers share and answers them (every worker, replacements
 * included), until closed. A worker's published change is handed to every other live worker before
 * the publisher's request is answered, so once its revocation's response is out, the others know.
 */
export function holdWorkerState(timeoutMs = PRIMARY_TIMEOUT_MS): HeldState {
  const replay = new MemoryReplayCache();
  const limits = new MemoryRateLimiter();
  const channels = new Map<Worker, StateChannel>();
  /** Until when each bucket drawn from may be below capacity, as the workers were last told. */
  const drawn = new Map<string, number>();

  const liveWorkers = (): Worker[] =>
    Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker?.isConnected() === true);

  /**
   * A take of cost > 0 leaves the bucket below capacity until, at the latest, one full refill later.
   * Every worker is told (and has taken it in) before the taker's answer leaves, so a worker answers
   * a check of cost 0 itself only for a bucket that is full. Told until two refills later, and again
   * only once fewer than one refill is left, so a bucket drawn from on every request is not told on
   * every request.
   */
  const tellDrawn = async (key: string, rule: RateRule): Promise<void> => {
    const now = Date.now();
    const refillMs = Math.ceil((rule.capacity / rule.refillPerSecond) * 1000);
    if ((drawn.get(key) ?? 0) >= now + refillMs) return;
    const until = now + 2 * refillMs;
    drawn.delete(key);
    drawn.set(key, until);
    for (const [old, at] of drawn) {
      if (at > now && drawn.size <= MAX_DRAWN) break;
      drawn.delete(old);
    }
    await Promise.allSettled(liveWorkers().map((worker) => channelOf(worker).request(DRAWN, [[[key, until]]])));
  };

  const handlersFor = (from: Worker): Record<string, Handler> => ({
    [FIRST_USE]: ([key, ttlMs]) => replay.firstUseNow(stringArgument(key), numberArgument(ttlMs)),
    [TAKE]: async ([key, rule, cost]) => {
      const [bucket, checked, taken] = [stringArgument(key), ruleArgument(rule), numberArgument(cost)];
      const decision = limits.takeNow(bucket, checked, taken);
      if (taken > 0) await tellDrawn(bucket, checked);
      return decision;
    },
    [PUBLISH]: async ([name, tenant]) => {
      const args = [stringArgument(name), stringArgument(tenant)];
      const others = liveWorkers().filter((worker) => worker !== from);
      // A worker that does not take it in time learns at its next poll, like a lost Redis message.
      await Promise.allSettled(others.map((worker) => channelOf(worker).request(SIGNAL, args)));
    },
  });

  const channelOf = (worker: Worker): StateChannel => {
    let channel = channels.get(worker);
    if (!channel) {
      channel = new StateChannel({
        peer: `worker ${worker.process.pid}`,
        send: (message, done) => worker.send(message, undefined, done),
        handlers: handlersFor(worker),
        // Within the publisher's own wait for the primary's answer.
        timeoutMs: Math.max(1, Math.floor(timeoutMs / 2)),
      });
      channels.set(worker, channel);
    }
    return channel;
  };

  const onMessage = (worker: Worker, message: unknown) => {
    if (isStateMessage(message)) channelOf(worker).receive(message);
  };
  const onExit = (worker: Worker) => {
    channels.get(worker)?.close(`worker ${worker.process.pid} exited`);
    channels.delete(worker);
  };
  // A new worker (a replacement) learns of the buckets drawn so far before it serves.
  const onOnline = (worker: Worker) => {
    const now = Date.now();
    const known = [...drawn].filter(([, until]) => until > now);
    if (known.length > 0)
      void channelOf(worker)
        .request(DRAWN, [known])
        .catch(() => {});
  };
  cluster.on("message", onMessage);
  cluster.on("exit", onExit);
  cluster.on("online", onOnline);
  return {
    close() {
      cluster.off("message", onMessage);
      cluster.off("exit", onExit);
      cluster.off("online", onOnline);
      for (const channel of channels.values()) channel.close("the primary stopped");
      channels.clear();
      void replay.close();
      void limits.close();
    },
  };
}

function stringArgument(value: unknown): string {
  if (typeof value !== "string") throw new TypeError("expected a string");
  return value;
}

function numberArgument(value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw new TypeError("expected a finite number");
  return value;
}

function ruleArgument(value: unknown): RateRule {
  const rule = value as RateRule | null;
  if (typeof rule !== "object" || rule === null) throw new TypeError("expected a rate rule");
  return { capacity: numberArgument(rule.capacity), refillPerSecond: numberArgument(rule.refillPerSecond) };
}

// --- In a worker ---------------------------------------------------------------------------------

const PRIMARY = "the primary process";

export interface WorkerState {
  /** Rate limits whose buckets the primary holds (this worker's own while it cannot answer). */
  rateLimiter(logger: Logger): RateLimiter;
  /** Replay memory the primary holds (fails closed while it cannot answer). */
  replayCache(): ReplayCache;
  close(): void;
}

/**
 * In a worker whose primary holds the shared state (`mandate dev` without Redis): from now on every
 * replay cache this process opens, and every change notification it publishes or follows, goes
 * through the primary.
 */
export function shareStateWithPrimary(timeoutMs = PRIMARY_TIMEOUT_MS): WorkerState {
  const subscribers = new Map<string, Set<(tenant: string) => void>>();
  const drawn = new DrawnBuckets();
  const channel = new StateChannel({
    peer: PRIMARY,
    send: (message, done) => {
      if (!process.send || !process.connected) return done(new Error("the IPC channel is closed"));
      process.send(message, undefined, undefined, done);
    },
    handlers: {
      [DRAWN]: ([entries]) => {
        drawn.learn(entries);
        return true;
      },
      [SIGNAL]: ([name, payload]) => {
        const tenant = tenantFromMessage(payload);
        if (typeof name === "string" && tenant) for (const signal of subscribers.get(name) ?? []) signal(tenant);
        return true;
      },
    },
    timeoutMs,
  });
  const onMessage = (message: unknown) => {
    if (isStateMessage(message)) channel.receive(message);
  };
  const onDisconnect = () => channel.close(`${PRIMARY} is gone`);
  process.on("message", onMessage);
  process.once("disconnect", onDisconnect);

  const relay: ChangeRelay = {
    async publish(name, tenant) {
      await channel.request(PUBLISH, [name, tenant]);
    },
    subscribe(name, signal) {
      let set = subscribers.get(name);
      if (!set) {
        set = new Set();
        subscribers.set(name, set);
      }
      set.add(signal);
      return () => set.delete(signal);
    },
  };
  relayChangesThrough(relay);
  return {
    rateLimiter: (logger) => new PrimaryRateLimiter(channel, logger, drawn),
    replayCache: () => new PrimaryReplayCache(channel),
    close() {
      relayChangesThrough(undefined);
      process.off("message", onMessage);
      process.off("disconnect", onDisconnect);
      channel.close("this worker stopped");
    },
  };
}

/** The primary's replay memory; fails closed (ReplayStoreUnavailable) when it cannot answer. */
class PrimaryReplayCache implements ReplayCache {
  readonly kind = "primary" as const;
  readonly #channel: StateChannel;

  constructor(channel: StateChannel) {
    this.#channel = channel;
  }

  async firstUse(key: string, ttlMs: number): Promise<boolean> {
    try {
      return (await this.#channel.request(FIRST_USE, [key, ttlMs])) === true;
    } catch (error) {
      throw new ReplayStoreUnavailable(error, PRIMARY);
    }
  }

  async close(): Promise<void> {}
}

/** The buckets the primary said may be below capacity, and until when (the rest are full). */
class DrawnBuckets {
  readonly #until = new Map<string, number>();

  learn(entries: unknown): void {
    if (!Array.isArray(entries)) throw new TypeError("expected [key, until] pairs");
    for (const entry of entries) {
      const [key, until] = Array.isArray(entry) ? entry : [];
      this.#until.delete(stringArgument(key));
      this.#until.set(key, numberArgument(until));
    }
    while (this.#until.size > MAX_DRAWN) this.#until.delete(this.#until.keys().next().value as string);
  }

  /** Whether the bucket is certainly full: never drawn from, or its refill is over. */
  full(key: string): boolean {
    const until = this.#until.get(key);
    if (until === undefined) return true;
    if (until > Date.now()) return false;
    this.#until.delete(key);
    return true;
  }
}

/** A check of cost 0 on a full bucket, answered without asking: at least one token is left. */
const FULL: RateDecision = { allowed: true, retryAfterSeconds: 0 };

/** The primary's buckets; this worker's own (with a warning) when it cannot answer. */
class PrimaryRateLimiter implements RateLimiter {
  readonly #channel: StateChannel;
  readonly #fallback: FallbackBuckets;
  readonly #drawn: DrawnBuckets;

  constructor(channel: StateChannel, logger: Logger, drawn: DrawnBuckets) {
    this.#channel = channel;
    this.#fallback = new FallbackBuckets(new MemoryRateLimiter(), logger, PRIMARY);
    this.#drawn = drawn;
  }

  async take(key: string, rule: RateRule, cost = 1): Promise<RateDecision> {
    checkRateRule(rule, cost);
    // Checks (cost 0) come before every token request; the primary has told every worker of each
    // bucket below capacity before answering the take that drew from it, so a full one needs no call.
    if (cost === 0 && this.#drawn.full(key)) return FULL;
    const sent = { capacity: rule.capacity, refillPerSecond: rule.refillPerSecond };
    try {
      const decision = (await this.#channel.request(TAKE, [key, sent, cost])) as RateDecision;
      return decision.allowed === true
        ? { allowed: true, retryAfterSeconds: 0 }
        : { allowed: false, retryAfterSeconds: Math.max(1, Number(decision.retryAfterSeconds) || 1) };
    } catch (error) {
      return this.#fallback.take(key, rule, cost, error);
    }
  }

  close(): Promise<void> {
    return this.#fallback.close();
  }
}
