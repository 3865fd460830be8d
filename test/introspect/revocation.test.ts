// Revocation that cascades, fast (issue 15, item 7), against real stores and running stacks:
// - the revocation log: gap-free sequences under concurrent revoking transactions, a reader following
//   `sequence > last` never missing one (SQLite and PostgreSQL);
// - the replica's memory of it fails closed (store reads, errors when the store is gone);
// - the feed: SSE (backlog, resume with Last-Event-ID and ?after=, live entries, heartbeats, resync,
//   401/403/400 refusals) and the gRPC stream (resume, FAILED_PRECONDITION, UNAUTHENTICATED,
//   another tenant refused); the resource-server library's RevocationFeed (refuses, fails closed,
//   falls back when configured);
// - the show case (PostgreSQL): two replicas on one database; a mandate revoked on one; the other's
//   introspection, Authorize and a resource server on its feed refuse the token (and one of a
//   sub-mandate) within a second.
// The tokens are real agents' (test/helpers/agents.ts): a mandate exchanged at the token endpoint
// and sub-delegated, DPoP-bound and presented with proofs. (test/e2e/mandate-lifecycle.test.ts
// plays the show case with separate processes and real clients only.)
import { randomBytes } from "node:crypto";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createRemoteJWKSet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InProcessMandate, startInProcess } from "../../bench/in-process.ts";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Introspect, RevocationKind } from "../../gen/mandate/v1/introspect_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { createLogger } from "../../services/shared/logger.ts";
import { ResourceServer, ResourceServerError } from "../../services/shared/oauth/resource-server.ts";
import { RevocationFeed } from "../../services/shared/oauth/revocation-feed.ts";
import { type NewRevocation, RevocationLog } from "../../services/shared/oauth/revocation-log.ts";
import { RevocationIndex } from "../../services/shared/oauth/revocations.ts";
import { Store } from "../../services/shared/store/store.ts";
import {
  type Agent,
  discover,
  type Exchanged,
  exchangeMandate,
  presentedProof,
  registerAgent,
  subDelegate,
} from "../helpers/agents.ts";
import { engines } from "../helpers/engines.ts";

const HOUR = 3_600_000;
const TENANT = "demo";

const append = (store: Store, entries: NewRevocation[], tenant = TENANT) => {
  const scoped = store.forTenant(tenant);
  return scoped.transaction((tx) => scoped.use(RevocationLog, tx).append(entries, Date.now()));
};
const jti = (): NewRevocation => ({ kind: "jti", id: randomBytes(8).toString("hex"), expireTime: Date.now() + HOUR });

describe.each(engines)("the revocation log: $name", (engine) => {
  let store: Store;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    const db = await engine.open();
    dispose = db.dispose;
    store = Store.open({ url: db.url, poolSize: 20 });
    await store.migrate();
    for (const id of [TENANT, "acme"]) {
      await store.db.insertInto("tenants").values({ id, display_name: id, created_at: 0 }).execute();
    }
  });
  afterAll(async () => {
    await store?.close();
    await dispose?.();
  });

  it("numbers concurrent revocations 1..n per tenant with no gap, and a reader following `> last` misses none", async () => {
    const seen: number[] = [];
    let last = 0;
    let writing = true;
    const reader = (async () => {
      const log = store.forTenant(TENANT).use(RevocationLog);
      while (writing || last < 40) {
        for (const entry of await log.after(last, Date.now())) {
          // Never a hole: the next entry read is always the one after the last.
          expect(entry.sequence).toBe(last + 1);
          seen.push(entry.sequence);
          last = entry.sequence;
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    // 40 transactions at once, each holding its sequence a moment before committing.
    await Promise.all(
      Array.from({ length: 40 }, async () => {
        const scoped = store.forTenant(TENANT);
        await scoped.transaction(async (tx) => {
          await scoped.use(RevocationLog, tx).append([jti()], Date.now());
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
        });
      }),
    );
    writing = false;
    await reader;
    expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(await store.forTenant(TENANT).use(RevocationLog).head()).toBe(40);
    // Another tenant has its own sequence.
    expect((await append(store, [jti()], "acme"))[0]?.sequence).toBe(1);
  });

  it("a rolled-back revocation leaves no entry and no hole", async () => {
    const log = store.forTenant(TENANT).use(RevocationLog);
    const head = await log.head();
    const scoped = store.forTenant(TENANT);
    await expect(
      scoped.transaction(async (tx) => {
        await scoped.use(RevocationLog, tx).append([jti()], Date.now());
        throw new Error("the revoking transaction fails");
      }),
    ).rejects.toThrow("fails");
    expect(await log.head()).toBe(head);
    expect((await append(store, [jti()]))[0]?.sequence).toBe(head + 1);
  });

  it("leaves expired entries out of reads and prunes them, never the unexpired", async () => {
    const [old] = await append(store, [{ kind: "mandate", id: "mdt_old", expireTime: Date.now() - 1000 }]);
    const [live] = await append(store, [{ kind: "mandate", id: "mdt_live", expireTime: Date.now() + HOUR }]);
    const log = store.forTenant(TENANT).use(RevocationLog);
    const after = await log.after((old?.sequence ?? 0) - 1, Date.now());
    expect(after.map((e) => e.id)).toEqual(["mdt_live"]);
    expect(await log.anyRevoked("mandate", ["mdt_old"])).toBe(true);
    expect(await log.prune(Date.now())).toBeGreaterThanOrEqual(1);
    expect(await log.anyRevoked("mandate", ["mdt_old"])).toBe(false);
    expect(await log.anyRevoked("mandate", [live?.id as string])).toBe(true);
  });

  it("a replica's memory answers from the log, learns its own revocations at once, and fails closed", async () => {
    const index = new RevocationIndex({
      store,
      databaseUrl: "",
      pollIntervalMs: 60_000,
      staleAfterMs: 300,
      notifications: { postgres: false, redis: false },
      logger: createLogger("silent"),
      now: Date.now,
    });
    await index.start();
    try {
      const token = jti();
      expect(await index.isRevoked(TENANT, { jti: token.id })).toBe(false);
      await append(store, [token]);
      // No notification, no poll for a minute: this process's own append is seen at the next check.
      expect(await index.isRevoked(TENANT, { jti: token.id })).toBe(true);
      expect(await index.isRevoked(TENANT, { mandateId: "mdt_live" })).toBe(true);
      expect(await index.isRevoked(TENANT, { jti: "other", mandateId: "mdt_other" })).toBe(false);
      expect(await index.isRevoked("acme", { jti: token.id })).toBe(false);
      expect(index.trusted).toBe(true);
      // Beyond staleAfter without a successful poll (and no LISTEN), the memory is not trusted: the store is read.
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(index.trusted).toBe(false);
      expect(await index.isRevoked(TENANT, { jti: token.id })).toBe(true);
    } finally {
      await index.stop();
    }
  });
});

describe("an untrusted memory with the store gone is an error, never an answer", () => {
  it("isRevoked rejects", async () => {
    const store = Store.open({ url: `sqlite:${(await engines[0]?.open())?.url.slice("sqlite:".length)}` });
    await store.migrate();
    const index = RevocationIndex.readingStore(store);
    expect(await index.isRevoked(TENANT, { jti: "x" })).toBe(false);
    await store.close();
    await expect(index.isRevoked(TENANT, { jti: "x" })).rejects.toThrow();
  });
});

/** Ms until `refused()` holds, polling; fails after `limit`. */
async function refusedWithin(refused: () => Promise<boolean>, since: number, limit = 5000): Promise<number> {
  for (;;) {
    if (await refused()) return Date.now() - since;
    if (Date.now() - since > limit) throw new Error(`still accepted after ${limit} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Whether `rs` refuses `token`, presented by its `holder` (DPoP scheme, a fresh proof by its key). */
const resourceRefuses = async (rs: ResourceServer, token: string, holder: Agent) => {
  const url = "https://api.example.com/orders";
  try {
    await rs.verify({
      method: "GET",
      url,
      authorization: `DPoP ${token}`,
      dpop: (await presentedProof(holder, token, "GET", url)).proof,
    });
    return false;
  } catch (error) {
    if (error instanceof ResourceServerError) return true;
    throw error;
  }
};

/**
 * An agent and a sub-agent of demo (registered through `grantOn`), alice's mandate to the agent;
 * the agent exchanges it at `exchangeOn`'s token endpoint (`root`) and sub-delegates it (`sub`: the
 * sub-agent's token under the new sub-mandate).
 */
async function agentTokens(grantOn: InProcessMandate, exchangeOn: InProcessMandate, resource: string) {
  const issue = grantOn.mandate.clients.get(Issue);
  const registration = { scope: "orders.read", resources: [resource] };
  const agent = await registerAgent(issue, registration);
  const subAgent = await registerAgent(issue, registration);
  const { mandate } = await issue.createMandate({
    tenant: TENANT,
    mandate: {
      principal: { id: "alice", kind: PartyKind.HUMAN },
      agent: { id: agent.clientId, kind: PartyKind.AGENT },
      scopes: ["orders.read"],
      resources: [resource],
      expireTime: timestampFromMs(Date.now() + HOUR),
      maxTokenLifetime: durationFromMs(300_000),
      maxDelegationDepth: 1,
      mayAct: [subAgent.clientId],
    },
  });
  const endpoint = await discover(`${exchangeOn.config.publicBaseUrl}/t/${TENANT}`);
  const exchange = () => exchangeMandate(endpoint, agent, mandate?.id as string);
  const root: Exchanged = await exchange();
  const sub = await subDelegate(endpoint, agent, root.accessToken, subAgent, { actorScope: "orders.read" });
  return { agent, subAgent, root, sub, exchange };
}

const expiryOf = (token: Exchanged) => (token.claims.exp as number) * 1000;

describe("the revocation feed (SSE and gRPC) and the resource-server library", () => {
  let stack: InProcessMandate;
  let store: Store;
  let feedUrl: string;
  let reader: string;

  beforeAll(async () => {
    stack = await startInProcess(undefined, { overrides: { "revocation.feedHeartbeat": 200 } });
    store = stack.mandate.store as Store;
    feedUrl = `${stack.config.publicBaseUrl}/t/${TENANT}/revocations`;
    reader = await stack.token("mandate:introspect", stack.config.api.audience);
    await stack.mandate.clients.get(Tenants).createTenant({ tenant: "acme", displayName: "Acme" });
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  /** Reads SSE events from `url` until `count` events of type revocation|resync arrived. */
  async function sse(url: string, headers: Record<string, string>, count: number) {
    const abort = new AbortController();
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${reader}`, ...headers },
      signal: abort.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events: Array<{ event: string; id?: string; data: string }> = [];
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf("\n\n");
        const field = (name: string) => [...block.matchAll(/^(\w+): ?(.*)$/gm)].find((m) => m[1] === name)?.[2];
        const event = field("event");
        if (event) events.push({ event, id: field("id") ?? undefined, data: field("data") ?? "" });
      }
      if (events.filter((e) => e.event !== "heartbeat").length >= count) break;
    }
    abort.abort();
    return events;
  }

  it("SSE: the backlog after the resume point (?after= or Last-Event-ID), then live entries, with heartbeats", async () => {
    const [a, b, c] = await append(store, [
      jti(),
      jti(),
      { kind: "mandate", id: "mdt_feed", expireTime: Date.now() + HOUR },
    ]);
    const from = (a?.sequence ?? 1) - 1;
    const all = await sse(`${feedUrl}?after=${from}`, {}, 3);
    const entries = all.filter((e) => e.event === "revocation");
    expect(entries.map((e) => Number(e.id))).toEqual([a?.sequence, b?.sequence, c?.sequence]);
    expect(JSON.parse(entries[2]?.data as string)).toMatchObject({
      kind: "mandate",
      id: "mdt_feed",
      sequence: c?.sequence,
    });
    // Last-Event-ID wins over ?after= (what an EventSource sends when it reconnects).
    const resumed = await sse(`${feedUrl}?after=0`, { "last-event-id": String(b?.sequence) }, 1);
    expect(resumed.filter((e) => e.event === "revocation").map((e) => Number(e.id))).toEqual([c?.sequence]);
    // Live: an entry appended while connected arrives; heartbeats name the sequence.
    const live = sse(feedUrl, { "last-event-id": String(c?.sequence) }, 1);
    await new Promise((resolve) => setTimeout(resolve, 450));
    const [d] = await append(store, [jti()]);
    const events = await live;
    expect(events.some((e) => e.event === "heartbeat" && Number(e.id) === c?.sequence)).toBe(true);
    expect(events.filter((e) => e.event === "revocation").map((e) => Number(e.id))).toEqual([d?.sequence]);
  });

  it("SSE: a resume point beyond the head is a resync event; a malformed one a 400", async () => {
    const events = await sse(`${feedUrl}?after=999999`, {}, 1);
    expect(events.at(-1)?.event).toBe("resync");
    expect(JSON.parse(events.at(-1)?.data as string).error).toBe("resync_required");
    const bad = await fetch(`${feedUrl}?after=-1`, { headers: { authorization: `Bearer ${reader}` } });
    expect(bad.status).toBe(400);
  });

  it("SSE: refuses without a token (401 + challenge), without mandate:introspect or for another tenant (403)", async () => {
    const none = await fetch(feedUrl);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/Bearer/);
    const forged = await fetch(feedUrl, { headers: { authorization: "Bearer not-a-token" } });
    expect(forged.status).toBe(401);
    const authorizer = await stack.token("mandate:authorize", stack.config.api.audience);
    expect((await fetch(feedUrl, { headers: { authorization: `Bearer ${authorizer}` } })).status).toBe(403);
    const acme = await fetch(`${stack.config.publicBaseUrl}/t/acme/revocations`, {
      headers: { authorization: `Bearer ${reader}` },
    });
    expect(acme.status).toBe(403);
    expect((await fetch(feedUrl, { method: "POST", headers: { authorization: `Bearer ${reader}` } })).status).toBe(405);
  });

  it("gRPC: WatchRevocations resumes after a sequence, streams live entries; refusals", async () => {
    const grpc = (token?: string) =>
      createClient(
        Introspect,
        createGrpcTransport({
          baseUrl: `http://127.0.0.1:${stack.mandate.grpcPort}`,
          interceptors: token
            ? [
                (next) => (req) => {
                  req.header.set("authorization", `Bearer ${token}`);
                  return next(req);
                },
              ]
            : [],
        }),
      );
    const head = await store.forTenant(TENANT).use(RevocationLog).head();
    const abort = new AbortController();
    const stream = grpc(reader).watchRevocations(
      { tenant: TENANT, afterSequence: BigInt(head - 1) },
      { signal: abort.signal },
    );
    const received: bigint[] = [];
    let appended = false;
    try {
      for await (const message of stream) {
        for (const entry of message.entries) {
          received.push(entry.sequence);
          expect(entry.kind).not.toBe(RevocationKind.UNSPECIFIED);
        }
        if (!appended) {
          appended = true;
          await append(store, [jti()]);
        }
        if (received.length >= 2) break;
      }
    } finally {
      abort.abort();
    }
    expect(received).toEqual([BigInt(head), BigInt(head + 1)]);
    const refusal = async (call: AsyncIterable<unknown>) => {
      try {
        for await (const _ of call) return undefined;
      } catch (error) {
        return ConnectError.from(error);
      }
      return undefined;
    };
    expect((await refusal(grpc(reader).watchRevocations({ tenant: TENANT, afterSequence: 10_000_000n })))?.code).toBe(
      Code.FailedPrecondition,
    );
    expect((await refusal(grpc().watchRevocations({ tenant: TENANT })))?.code).toBe(Code.Unauthenticated);
    expect((await refusal(grpc(reader).watchRevocations({ tenant: "acme" })))?.code).toBe(Code.PermissionDenied);
  });

  it("RevocationFeed: refuses revoked jtis and mandates, fails closed when silent, falls back when configured", async () => {
    const feed = new RevocationFeed({ url: feedUrl, token: async () => reader, maxSilenceMs: 1000 });
    await feed.start();
    const rs = new ResourceServer({
      issuer: `${stack.config.publicBaseUrl}/t/${TENANT}`,
      audience: "https://api.example.com/",
      keys: createRemoteJWKSet(new URL(`${stack.config.publicBaseUrl}/t/${TENANT}/.well-known/jwks.json`)),
      revocations: feed,
    });
    const resource = "https://api.example.com/";
    const m = await agentTokens(stack, stack, resource);
    const token = m.sub;
    const other = m.root;
    try {
      expect(await resourceRefuses(rs, token.accessToken, m.subAgent)).toBe(false);
      await append(store, [{ kind: "jti", id: other.claims.jti as string, expireTime: expiryOf(other) }]);
      await refusedWithin(() => resourceRefuses(rs, other.accessToken, m.agent), Date.now(), 3000);
      expect(await resourceRefuses(rs, token.accessToken, m.subAgent)).toBe(false);
      await append(store, [{ kind: "mandate", id: token.mandateId, expireTime: Date.now() + HOUR }]);
      await refusedWithin(() => resourceRefuses(rs, token.accessToken, m.subAgent), Date.now(), 3000);
      await expect(
        rs.verify({
          method: "GET",
          url: resource,
          authorization: `DPoP ${token.accessToken}`,
          dpop: (await presentedProof(m.subAgent, token.accessToken, "GET", resource)).proof,
        }),
      ).rejects.toThrow(/mandate .* has been revoked/);
    } finally {
      await feed.stop();
    }
    // Down: a feed that never connects (nothing listens there) refuses every token after maxSilence...
    const fresh = await m.exchange();
    const dead = new RevocationFeed({
      url: "http://127.0.0.1:1/t/demo/revocations",
      token: async () => reader,
      maxSilenceMs: 100,
    });
    void dead.start();
    const deadRs = new ResourceServer({
      issuer: `${stack.config.publicBaseUrl}/t/${TENANT}`,
      audience: resource,
      keys: createRemoteJWKSet(new URL(`${stack.config.publicBaseUrl}/t/${TENANT}/.well-known/jwks.json`)),
      revocations: dead,
    });
    await expect(
      deadRs.verify({
        method: "GET",
        url: resource,
        authorization: `DPoP ${fresh.accessToken}`,
        dpop: (await presentedProof(m.agent, fresh.accessToken, "GET", resource)).proof,
      }),
    ).rejects.toThrow(/revocation feed is unavailable/);
    await dead.stop();
    // ...unless a fallback (introspection) decides meanwhile.
    const asked: string[] = [];
    const fallback = new RevocationFeed({
      url: "http://127.0.0.1:1/t/demo/revocations",
      token: async () => reader,
      maxSilenceMs: 100,
      fallback: async (t) => {
        asked.push(t);
        return t === fresh.accessToken;
      },
    });
    await expect(fallback.check({ jti: fresh.claims.jti } as never, fresh.accessToken)).resolves.toBeUndefined();
    await expect(fallback.check({ jti: "x" } as never, "another")).rejects.toThrow(/not active/);
    expect(asked).toEqual([fresh.accessToken, "another"]);
  });
});

describe.runIf(engines.some((e) => e.name === "postgres"))("two replicas on one PostgreSQL database", () => {
  let database: { url: string; dispose(): Promise<void> };
  let one: InProcessMandate;
  let two: InProcessMandate;

  beforeAll(async () => {
    database = await (engines.at(-1) as (typeof engines)[number]).open();
    const kek = randomBytes(32).toString("base64url");
    const overrides = { "revocation.feedHeartbeat": 200 };
    one = await startInProcess(undefined, { databaseUrl: database.url, kek, overrides });
    two = await startInProcess(undefined, { databaseUrl: database.url, kek, overrides });
  }, 90_000);
  afterAll(async () => {
    await two?.stop();
    await one?.stop();
    await database?.dispose();
  });

  it("revoking a mandate on one: the other's introspection, Authorize and a resource server on its feed refuse within 1 s", async () => {
    const resource = "https://api.example.com/";
    // Granted through one; the agent exchanges and sub-delegates at two's token endpoint, so the
    // tokens name two's issuer (in-process replicas have their own URLs; the e2e test runs them
    // behind one) — and two's introspection, Authorize and resource server know that issuer.
    const m = await agentTokens(one, two, resource);
    const subToken = m.sub.accessToken;
    const rootToken = m.root.accessToken;
    const introspect = two.mandate.clients.get(Introspect);
    const authorize = two.mandate.clients.get(Authorize);
    const reader = await two.token("mandate:introspect", two.config.api.audience);
    const feed = new RevocationFeed({
      url: `${two.config.publicBaseUrl}/t/${TENANT}/revocations`,
      token: async () => reader,
      maxSilenceMs: 2000,
    });
    await feed.start();
    const rs = new ResourceServer({
      issuer: `${two.config.publicBaseUrl}/t/${TENANT}`,
      audience: resource,
      keys: createRemoteJWKSet(new URL(`${two.config.publicBaseUrl}/t/${TENANT}/.well-known/jwks.json`)),
      revocations: feed,
    });
    // The sub-agent's request, with a fresh proof by its key each time.
    const check = async (token: string) =>
      authorize.check({
        tenant: TENANT,
        accessToken: token,
        dpop: await presentedProof(m.subAgent, token, "GET", `${resource}orders/o-1`),
        action: "orders.read",
        resource: { type: "order", id: "o-1", attributes: { audience: resource } },
      });
    const subMandate = m.sub.mandateId;
    const rootMandate = m.root.mandateId;
    try {
      expect((await introspect.introspect({ tenant: TENANT, token: subToken })).active).toBe(true);
      expect((await introspect.introspect({ tenant: TENANT, token: subToken })).mandateId).toBe(subMandate);
      const before = (await check(subToken)).decision;
      expect(before?.allow, JSON.stringify(before?.reasons)).toBe(true);
      expect(await resourceRefuses(rs, subToken, m.subAgent)).toBe(false);
      expect(await resourceRefuses(rs, rootToken, m.agent)).toBe(false);

      const since = Date.now();
      const revokedOn = await one.mandate.clients
        .get(Issue)
        .revokeMandate({ tenant: TENANT, mandateId: rootMandate, reason: "test" });
      expect(revokedOn.revokedMandateIds).toEqual([rootMandate, subMandate]);
      const [introspection, decision, resourceServer] = await Promise.all([
        refusedWithin(async () => !(await introspect.introspect({ tenant: TENANT, token: subToken })).active, since),
        refusedWithin(async () => {
          const d = (await check(subToken)).decision;
          return d?.allow === false && /revoked/.test(d.reasons.map((r) => r.message).join());
        }, since),
        refusedWithin(() => resourceRefuses(rs, subToken, m.subAgent), since),
      ]);
      expect(await resourceRefuses(rs, rootToken, m.agent)).toBe(true);
      console.log(
        `revocation seen on the other replica after: introspection ${introspection} ms, Authorize ${decision} ms, resource server ${resourceServer} ms`,
      );
    } finally {
      await feed.stop();
    }
  });
});
