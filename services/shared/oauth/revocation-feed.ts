// The resource-server side of the revocation feed (issue 15, item 7): follows a tenant's
// GET /t/{tenant}/revocations (Server-Sent Events, WHATWG HTML §9.2) with fetch, keeps the revoked
// mandate ids and jtis until they expire, resumes after the last sequence it applied when the
// connection drops (Last-Event-ID), and fails closed: once the feed has been silent (no event, no
// heartbeat) for longer than `maxSilenceMs`, tokens are refused — or, when `fallback` is given
// (introspection), decided by it — until the feed is back. Plug it into ResourceServer as
// `revocations` so even locally verified JWTs stop working within a second of their revocation.
import type { AccessTokenClaims } from "./access-token.ts";

export interface RevocationFeedOptions {
  /** The feed's URL: `{issuer}/revocations` (the issuer is `{public_base}/t/{tenant}`). */
  url: string;
  /** An access token of the tenant with `mandate:introspect` (fetched anew on each connection). */
  token: () => Promise<string>;
  /** Refuse tokens once the feed has been silent this long (default 15 s: three missed heartbeats). */
  maxSilenceMs?: number;
  /** Asked instead of refusing while the feed is down: e.g. introspection of the token. True: active. */
  fallback?: ((token: string, claims: AccessTokenClaims) => Promise<boolean>) | undefined;
  /** Wait before reconnecting (default 500 ms, doubling to 5 s). */
  reconnectMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
  /** Told of each failure to connect or read (logging). */
  onError?: (error: unknown) => void;
}

/** Why the feed refuses a token; ResourceServer turns it into `invalid_token`. */
export class RevocationRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RevocationRefusal";
  }
}

/** The feed asked to start again from 0 (its log does not know our position). */
class Resync extends Error {}

export class RevocationFeed {
  readonly #o: RevocationFeedOptions;
  readonly #now: () => number;
  readonly #maxSilence: number;
  readonly #jtis = new Map<string, number>();
  readonly #mandates = new Map<string, number>();
  #sequence = 0;
  #heardAt = Number.NEGATIVE_INFINITY;
  #abort = new AbortController();
  #running: Promise<void> | undefined;
  #ready: Promise<void>;
  #markReady: () => void = () => {};
  #waiters = new Set<() => void>();

  constructor(options: RevocationFeedOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#maxSilence = options.maxSilenceMs ?? 15_000;
    this.#ready = new Promise((resolve) => {
      this.#markReady = resolve;
    });
  }

  /** Starts following; resolves once the first message (backlog or heartbeat) arrived. */
  start(): Promise<void> {
    this.#running ??= this.#follow();
    return this.#ready;
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#running;
  }

  /** The sequence applied through (resume point). */
  get sequence(): number {
    return this.#sequence;
  }

  /** Whether the feed spoke within `maxSilenceMs`: the revoked set is then current. */
  get live(): boolean {
    return this.#now() - this.#heardAt <= this.#maxSilence;
  }

  /** Resolves after the next message applied (tests, tools). */
  next(): Promise<void> {
    return new Promise((resolve) => this.#waiters.add(resolve));
  }

  /** Throws RevocationRefusal when the token's jti or mandate is revoked, or the feed is down (fail closed). */
  async check(claims: AccessTokenClaims, token: string): Promise<void> {
    if (!this.live) {
      if (this.#o.fallback && (await this.#o.fallback(token, claims))) return;
      throw new RevocationRefusal(
        this.#o.fallback
          ? "the access token is not active"
          : "the revocation feed is unavailable: tokens cannot be checked against revocations",
      );
    }
    const now = this.#now();
    const revoked = (map: Map<string, number>, id: string | undefined) => id !== undefined && (map.get(id) ?? 0) > now;
    if (revoked(this.#jtis, claims.jti)) throw new RevocationRefusal("the access token has been revoked");
    if (revoked(this.#mandates, claims.mandate_id)) {
      throw new RevocationRefusal("the mandate the access token derives from has been revoked");
    }
  }

  async #follow(): Promise<void> {
    const base = this.#o.reconnectMs ?? 500;
    let delay = base;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        await this.#connection(signal, () => {
          delay = base;
        });
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof Resync) {
          this.#jtis.clear();
          this.#mandates.clear();
          this.#sequence = 0;
          continue;
        }
        this.#o.onError?.(error);
      }
      if (signal.aborted) break;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5_000);
    }
  }

  /** One connection: reads events until it ends or fails. */
  async #connection(signal: AbortSignal, connected: () => void): Promise<void> {
    const fetcher = this.#o.fetch ?? fetch;
    const response = await fetcher(this.#o.url, {
      headers: {
        accept: "text/event-stream",
        authorization: `Bearer ${await this.#o.token()}`,
        ...(this.#sequence > 0 ? { "last-event-id": String(this.#sequence) } : {}),
      },
      signal,
    });
    if (response.status !== 200 || !response.body) {
      const text = await response.text().catch(() => "");
      throw new Error(`the revocation feed answered ${response.status}: ${text.slice(0, 200)}`);
    }
    connected();
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, "\n");
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        this.#event(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf("\n\n");
      }
    }
    throw new Error("the revocation feed closed the connection");
  }

  /** One SSE event block: `event:`, `id:`, `data:` fields; comments and `retry:` ignored. */
  #event(block: string): void {
    const { type, id, data } = parseEvent(block);
    if (type === "resync") throw new Resync(data);
    if (type === "revocation") {
      const entry = JSON.parse(data) as { kind: string; id: string; expire_time: number };
      (entry.kind === "mandate" ? this.#mandates : this.#jtis).set(entry.id, entry.expire_time);
    } else if (type !== "heartbeat") {
      return;
    }
    if (id !== undefined && /^[0-9]+$/.test(id)) this.#sequence = Math.max(this.#sequence, Number(id));
    this.#heardAt = this.#now();
    this.#markReady();
    this.#prune();
    for (const waiter of this.#waiters) waiter();
    this.#waiters.clear();
  }

  #prune(): void {
    if (this.#jtis.size + this.#mandates.size < 10_000) return;
    const now = this.#now();
    for (const map of [this.#jtis, this.#mandates]) for (const [id, until] of map) if (until <= now) map.delete(id);
  }
}

/** WHATWG HTML §9.2.6: an event's fields, line by line (a leading colon is a comment). */
function parseEvent(block: string): { type: string; id: string | undefined; data: string } {
  let type = "message";
  let id: string | undefined;
  const data: string[] = [];
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    if (colon === 0) continue;
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  return { type, id, data: data.join("\n") };
}
