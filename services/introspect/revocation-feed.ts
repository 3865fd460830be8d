// The revocation feed for resource servers that verify tokens locally (issue 15, item 7): a tenant's
// revocation log (services/shared/oauth/revocation-log.ts) as Introspect.WatchRevocations (a gRPC
// server stream) and as Server-Sent Events at GET /t/{tenant}/revocations (WHATWG HTML §9.2: event
// id = sequence, resumable with Last-Event-ID or ?after=). Both send the retained entries after the
// resume point, then each new one as soon as this replica learns it (notification, poll), and a
// heartbeat when nothing happens. The callers are those who may introspect: a token of the tenant
// with `mandate:introspect` (the RPC's access rule; the SSE endpoint is admitted the same way).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  RevocationKind,
  type WatchRevocationsRequest,
  type WatchRevocationsResponseSchema,
} from "../../gen/mandate/v1/introspect_pb.js";
import type { Config } from "../shared/config.ts";
import { failedPrecondition, invalidArgument } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { API_SCOPES } from "../shared/oauth/mandate-api.ts";
import { LOG_PAGE, type RevocationEntry, RevocationLog } from "../shared/oauth/revocation-log.ts";
import type { RevocationIndex } from "../shared/oauth/revocations.ts";
import { type HttpCallerGate, httpClientCertificate } from "../shared/rpc/caller-authentication.ts";
import type { TenantLookup } from "../shared/rpc/service.ts";
import type { Store } from "../shared/store/store.ts";
import { IllFormedText, parseFormStrict } from "../shared/text.ts";

export interface FeedDeps {
  store: Store;
  revocations: Pick<RevocationIndex, "watch">;
  now: () => number;
  heartbeatMs: number;
}

/** Entries the receiver applies, and the sequence it is then up to date through; no entries: a heartbeat. */
export interface FeedBatch {
  entries: RevocationEntry[];
  sequence: number;
}

/** A resume point the log does not know (beyond its head): the receiver must start again from 0. */
export class ResyncRequired extends Error {
  constructor(after: number, head: number) {
    super(
      `the revocation log of this tenant ends at sequence ${head}; ${after} is not one of its positions ` +
        "(another deployment's, or a restored database): resync from 0",
    );
    this.name = "ResyncRequired";
  }
}

/** Sequences are JavaScript numbers and SQL bigints: a resume point past 2^53 - 1 names nothing. */
export const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;

/** The tenant's log after `after`, backlog first, then live; ends when `signal` aborts. */
export async function* followLog(
  deps: FeedDeps,
  tenant: string,
  after: number,
  signal: AbortSignal,
): AsyncGenerator<FeedBatch> {
  const log = deps.store.forTenant(tenant).use(RevocationLog);
  const waker = new Waker(signal);
  const unwatch = deps.revocations.watch(tenant, () => waker.wake());
  try {
    const head = await log.head();
    if (after > head) throw new ResyncRequired(after, head);
    let sequence = after;
    let sentAt = Number.NEGATIVE_INFINITY;
    while (!signal.aborted) {
      if (waker.woken) {
        waker.woken = false;
        for await (const batch of newEntries(log, sequence, deps.now)) {
          sequence = batch.sequence;
          sentAt = deps.now();
          yield batch;
        }
      }
      const quiet = deps.now() - sentAt;
      if (quiet >= deps.heartbeatMs) {
        sentAt = deps.now();
        yield { entries: [], sequence };
        // Each heartbeat also reads the log: the feed never depends on notifications alone.
        waker.woken = true;
        continue;
      }
      await waker.sleep(deps.heartbeatMs - quiet);
    }
  } finally {
    unwatch();
    waker.close();
  }
}

/** The batches of entries after `sequence` (none when nothing moved), the last one up to the head. */
async function* newEntries(log: RevocationLog, sequence: number, now: () => number): AsyncGenerator<FeedBatch> {
  // The head first: entries through it are committed, so none is missed after it (even expired ones).
  const through = await log.head();
  for (;;) {
    const entries = await log.after(sequence, now());
    const last = entries.at(-1)?.sequence ?? sequence;
    if (entries.length === LOG_PAGE) {
      sequence = last;
      yield { entries, sequence };
      continue;
    }
    const end = Math.max(through, last);
    if (entries.length > 0 || end > sequence) yield { entries, sequence: end };
    return;
  }
}

/** A sleep that a change of the log (or the end of the stream) cuts short. */
class Waker {
  woken = true;
  readonly #signal: AbortSignal;
  #cut: (() => void) | undefined;
  readonly #onAbort = () => this.#cut?.();
  constructor(signal: AbortSignal) {
    this.#signal = signal;
    signal.addEventListener("abort", this.#onAbort);
  }

  wake(): void {
    this.woken = true;
    this.#cut?.();
  }

  async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#cut = () => {
        clearTimeout(timer);
        resolve();
      };
      if (this.woken || this.#signal.aborted) this.#cut();
    });
    this.#cut = undefined;
  }

  close(): void {
    this.#signal.removeEventListener("abort", this.#onAbort);
  }
}

type ResponseInit = MessageInitShape<typeof WatchRevocationsResponseSchema>;

/** Introspect.WatchRevocations. */
export function watchRevocationsRpc(deps: FeedDeps) {
  return async function* watchRevocations(
    request: WatchRevocationsRequest,
    context: { signal: AbortSignal },
  ): AsyncGenerator<ResponseInit> {
    if (request.afterSequence > BigInt(MAX_SEQUENCE)) {
      throw invalidArgument([{ field: "after_sequence", description: `must be at most ${MAX_SEQUENCE}` }]);
    }
    try {
      for await (const batch of followLog(deps, request.tenant, Number(request.afterSequence), context.signal)) {
        yield {
          entries: batch.entries.map((e) => ({
            sequence: BigInt(e.sequence),
            kind: e.kind === "mandate" ? RevocationKind.MANDATE : RevocationKind.TOKEN,
            id: e.id,
            revokeTime: timestampFromMs(e.revokeTime),
            expireTime: timestampFromMs(e.expireTime),
          })),
          sequence: BigInt(batch.sequence),
          sendTime: timestampFromMs(deps.now()),
        };
      }
    } catch (error) {
      if (error instanceof ResyncRequired) throw failedPrecondition(error.message, "RESYNC_REQUIRED");
      throw error;
    }
  };
}

export interface SseOptions extends FeedDeps {
  publicBaseUrl: string;
  tenants: TenantLookup;
  /** Admits an HTTP caller as a PUBLIC RPC with these scopes (CallerAuthentication.admitHttp). */
  callers: HttpCallerGate;
  logger: Logger;
  /** Where a caller's client certificate is read (RFC 8705 §3: a certificate-bound token needs it). */
  config: Config;
}

const SSE_PATH = /^\/t\/([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\/revocations$/;
/** EventSource reconnects after this long (the `retry` field). */
const RETRY_MS = 1000;

/** GET /t/{tenant}/revocations as the Introspect module's `http` handler: false for other paths. */
export function revocationFeedHttp(options: SseOptions) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    // The edge hands every handler the target in origin form (services/edge/server.ts,
    // acceptedTarget): routes match its path as sent, as the OAuth server's do, and the query is read
    // as a strict form (services/shared/text.ts). Not `new URL(target, base)`: that throws on a target
    // such as `//[` (a scheme-relative reference with a bad host) and re-reads `//host/t/x/revocations`
    // as host + path; both are simply not this endpoint's path (404 like every unknown path).
    const { path, query } = splitTarget(req.url ?? "/");
    const match = SSE_PATH.exec(path);
    if (!match) return false;
    const tenant = match[1] as string;
    try {
      await serveSse(options, tenant, { path, query }, req, res);
    } catch (error) {
      answerFailure(options.logger, res, error);
    }
    return true;
  };
}

async function serveSse(
  options: SseOptions,
  tenant: string,
  target: { path: string; query: string },
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (req.method !== "GET") {
    throw new HttpRefusal(405, "invalid_request", "the revocation feed is read with GET", { allow: "GET" });
  }
  if (!(await options.tenants.exists(tenant))) throw new HttpRefusal(404, "invalid_request", `no tenant "${tenant}"`);
  await options.callers.admitHttp({
    name: "the revocation feed",
    method: "GET",
    url: `${options.publicBaseUrl}${target.path}`,
    authorization: req.headers.authorization,
    dpop: typeof req.headers.dpop === "string" ? req.headers.dpop : undefined,
    clientCertificate: httpClientCertificate(req, options.config, options.logger),
    address: req.socket.remoteAddress,
    tenant,
    scopes: [API_SCOPES.introspect],
  });
  const after = resumePoint(req.headers["last-event-id"], queryParameter(target.query, "after"));
  const abort = new AbortController();
  const close = () => abort.abort();
  req.on("close", close);
  res.on("close", close);
  const batches = followLog(options, tenant, after, abort.signal);
  try {
    // The first batch (or the resync refusal) before the headers: a refusal can still be a status.
    let next = await batches.next();
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    });
    res.write(`retry: ${RETRY_MS}\n\n`);
    while (!next.done) {
      res.write(sseEvents(next.value));
      next = await batches.next();
    }
  } catch (error) {
    if (error instanceof ResyncRequired) {
      // Inside the stream, as an event (EventSource drops a non-200 answer without telling why).
      if (!res.headersSent) res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
      res.write(`event: resync\ndata: ${JSON.stringify({ error: "resync_required", message: error.message })}\n\n`);
      res.end();
      return;
    }
    if (res.headersSent) {
      options.logger.warn({ err: error, tenant }, "revocation feed: the stream ended on an error");
      res.destroy();
      return;
    }
    throw error;
  } finally {
    abort.abort();
    await batches.return(undefined);
  }
  res.end();
}

/** One batch as SSE: an event per entry (id = sequence), or a heartbeat naming the sequence. */
function sseEvents(batch: FeedBatch): string {
  if (batch.entries.length === 0) {
    return `event: heartbeat\nid: ${batch.sequence}\ndata: ${JSON.stringify({ sequence: batch.sequence })}\n\n`;
  }
  let text = "";
  for (const e of batch.entries) {
    const data = {
      sequence: e.sequence,
      kind: e.kind,
      id: e.id,
      revoke_time: e.revokeTime,
      expire_time: e.expireTime,
    };
    text += `event: revocation\nid: ${e.sequence}\ndata: ${JSON.stringify(data)}\n\n`;
  }
  const last = batch.entries.at(-1) as RevocationEntry;
  // Expired entries were skipped: the receiver resumes after the batch's sequence, not its last entry's.
  if (batch.sequence > last.sequence) text += sseEvents({ entries: [], sequence: batch.sequence });
  return text;
}

/** A request target in origin form as its path (as sent) and its query (without the `?`, any `#…` dropped). */
function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf("?");
  if (q < 0) return { path: target, query: "" };
  const hash = target.indexOf("#", q);
  return { path: target.slice(0, q), query: target.slice(q + 1, hash < 0 ? undefined : hash) };
}

/** A query parameter (absent: null); one that is not text or is repeated is a bad request. */
function queryParameter(query: string, name: string): string | null {
  let pairs: Array<[string, string]>;
  try {
    pairs = parseFormStrict(query);
  } catch (error) {
    if (error instanceof IllFormedText) throw new HttpRefusal(400, "invalid_request", error.message);
    throw error;
  }
  const values = pairs.filter(([key]) => key === name).map(([, value]) => value);
  if (values.length > 1) throw new HttpRefusal(400, "invalid_request", `parameter "${name}" is repeated`);
  return values[0] ?? null;
}

/** WHATWG HTML §9.2.4: Last-Event-ID (what an EventSource sends on reconnecting) wins over ?after=. */
function resumePoint(lastEventId: string | string[] | undefined, after: string | null): number {
  const value = typeof lastEventId === "string" && lastEventId !== "" ? lastEventId : (after ?? "0");
  if (!/^[0-9]{1,16}$/.test(value) || Number(value) > MAX_SEQUENCE) {
    throw new HttpRefusal(400, "invalid_request", `the resume point must be a sequence number, not "${value}"`);
  }
  return Number(value);
}

class HttpRefusal extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

const GATE_STATUS: Partial<Record<Code, [number, string]>> = {
  [Code.Unauthenticated]: [401, "invalid_token"],
  [Code.PermissionDenied]: [403, "insufficient_scope"],
  [Code.ResourceExhausted]: [429, "too_many_requests"],
  [Code.Unavailable]: [503, "temporarily_unavailable"],
};

/** The refusal as JSON with its status; a 401 carries the gate's challenge (RFC 6750 §3). */
function answerFailure(logger: Logger, res: ServerResponse, error: unknown): void {
  let refusal: HttpRefusal;
  if (error instanceof HttpRefusal) refusal = error;
  else if (error instanceof ConnectError && GATE_STATUS[error.code]) {
    const [status, code] = GATE_STATUS[error.code] as [number, string];
    const headers: Record<string, string> = {};
    for (const name of ["www-authenticate", "retry-after"]) {
      const value = error.metadata.get(name);
      if (value) headers[name] = value;
    }
    refusal = new HttpRefusal(status, code, error.rawMessage, headers);
  } else {
    logger.error({ err: error }, "revocation feed failed");
    refusal = new HttpRefusal(503, "temporarily_unavailable", "the revocation feed is unavailable; retry shortly", {
      "retry-after": "1",
    });
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: refusal.code, error_description: refusal.message });
  res.writeHead(refusal.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    ...refusal.headers,
  });
  res.end(body);
}
