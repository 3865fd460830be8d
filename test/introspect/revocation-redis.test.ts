// Revocations reach the other replicas over Redis pub/sub alone (issue 15 item 7): three replicas
// on one PostgreSQL database (MANDATE_TEST_POSTGRES=1) with PostgreSQL LISTEN turned off
// (revocation.listen false), a 30 s poll and a 30 s feed heartbeat, so nothing but a notification
// can tell a replica within seconds. Replicas one and two share the real Redis on 127.0.0.1:6379;
// three has no Redis (the control). A mandate revoked with Issue.RevokeMandate on one, and an access
// token revoked with RFC 7009 on one, appear on two's revocation feed (Introspect.WatchRevocations)
// within 2 s — long before the poll could have — while three's feed stays silent meanwhile.
import { randomBytes } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InProcessMandate, startInProcess, TENANT } from "../../bench/in-process.ts";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Introspect, RevocationKind } from "../../gen/mandate/v1/introspect_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { engines } from "../helpers/engines.ts";

const REDIS_URL = process.env.MANDATE_TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0";
const RESOURCE = "https://api.example.com/";
/** Within this, only a notification can have told a replica (poll and heartbeat: 30 s). */
const WITHIN_MS = 2000;

/** Follows a replica's revocation feed: when each entry (kind:id) arrived. */
function follow(replica: InProcessMandate) {
  const seen = new Map<string, number>();
  const abort = new AbortController();
  const done = (async () => {
    try {
      const stream = replica.mandate.clients
        .get(Introspect)
        .watchRevocations({ tenant: TENANT }, { signal: abort.signal });
      for await (const message of stream)
        for (const entry of message.entries) seen.set(`${RevocationKind[entry.kind]}:${entry.id}`, Date.now());
    } catch (error) {
      if (!abort.signal.aborted) throw error;
    }
  })();
  const stop = () => {
    abort.abort();
    return done;
  };
  return { seen, stop };
}

/** How long after `since` the feed showed `key`, waiting at most `ms`; undefined when it did not. */
async function arrival(feed: ReturnType<typeof follow>, key: string, since: number, ms = WITHIN_MS) {
  for (;;) {
    const at = feed.seen.get(key);
    if (at !== undefined) return at - since;
    if (Date.now() - since > ms) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.runIf(engines.some((e) => e.name === "postgres"))("revocations over Redis pub/sub, LISTEN off", () => {
  let database: { url: string; dispose(): Promise<void> };
  let one: InProcessMandate;
  let two: InProcessMandate;
  let three: InProcessMandate;

  beforeAll(async () => {
    database = await (engines.at(-1) as (typeof engines)[number]).open();
    const kek = randomBytes(32).toString("base64url");
    const quiet = {
      "revocation.listen": false,
      "revocation.pollInterval": 30_000,
      "revocation.staleAfter": 600_000,
      "revocation.feedHeartbeat": 30_000,
    };
    const overrides = { ...quiet, "redis.url": REDIS_URL };
    one = await startInProcess(undefined, { databaseUrl: database.url, kek, overrides });
    two = await startInProcess(undefined, { databaseUrl: database.url, kek, overrides });
    three = await startInProcess(undefined, { databaseUrl: database.url, kek, overrides: quiet });
  }, 120_000);
  afterAll(async () => {
    await three?.stop();
    await two?.stop();
    await one?.stop();
    await database?.dispose();
  });

  /**
   * Follows two's and three's feeds, runs `revoke` (on one) once they are open (their first read of
   * the log done), and how long after it each feed showed `key` (undefined: not within WITHIN_MS).
   */
  async function revokedOnOne(key: string, revoke: () => Promise<unknown>) {
    const onTwo = follow(two);
    const onThree = follow(three);
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const since = Date.now();
      await revoke();
      const [viaRedis, control] = await Promise.all([arrival(onTwo, key, since), arrival(onThree, key, since)]);
      return { viaRedis, control };
    } finally {
      await onTwo.stop();
      await onThree.stop();
    }
  }

  it("a mandate revoked on one is on two's feed within 2 s, carried by Redis alone", async () => {
    const issue = one.mandate.clients.get(Issue);
    const { client } = await issue.createClient({
      tenant: TENANT,
      metadata: {
        kind: ClientKind.AGENT,
        clientName: "Redis bot",
        owner: "alice",
        dpopJkt: randomBytes(32).toString("base64url"),
        grantTypes: ["client_credentials"],
        scope: "orders.read",
        resources: [RESOURCE],
      },
    });
    const { mandate } = await issue.createMandate({
      tenant: TENANT,
      mandate: {
        principal: { id: "alice", kind: PartyKind.HUMAN },
        agent: { id: client?.clientId as string, kind: PartyKind.AGENT },
        scopes: ["orders.read"],
        resources: [RESOURCE],
        expireTime: timestampFromMs(Date.now() + 3_600_000),
      },
    });
    const id = mandate?.id as string;
    const { viaRedis, control } = await revokedOnOne(`MANDATE:${id}`, () =>
      issue.revokeMandate({ tenant: TENANT, mandateId: id, reason: "redis test" }),
    );
    console.log(`mandate revocation on the other replica over Redis after ${viaRedis} ms`);
    expect(viaRedis).toBeDefined();
    expect(viaRedis).toBeLessThan(WITHIN_MS);
    // Without Redis (and without LISTEN) nothing tells three before its poll.
    expect(control).toBeUndefined();
  }, 30_000);

  it("an access token revoked on one (RFC 7009) is on two's feed within 2 s", async () => {
    const { id, secret } = await one.register("orders.read", RESOURCE);
    const basic = `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
    const tokenUrl = `${one.config.publicBaseUrl}/t/${TENANT}/oauth2/token`;
    const issued = await fetch(tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic },
      body: new URLSearchParams({ grant_type: "client_credentials", scope: "orders.read", resource: RESOURCE }),
    });
    expect(issued.status).toBe(200);
    const { access_token: token } = (await issued.json()) as { access_token: string };
    const jti = JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString()).jti as string;
    const { viaRedis, control } = await revokedOnOne(`TOKEN:${jti}`, async () => {
      const revoked = await fetch(`${one.config.publicBaseUrl}/t/${TENANT}/oauth2/revoke`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic },
        body: new URLSearchParams({ token }),
      });
      expect(revoked.status).toBe(200);
    });
    console.log(`token revocation on the other replica over Redis after ${viaRedis} ms`);
    expect(viaRedis).toBeLessThan(WITHIN_MS);
    expect(control).toBeUndefined();
  }, 30_000);
});
