// A mandate's whole life end to end (issue 15, "Show": revocation across replicas, with real
// clients): `mandate dev` (replica one, it seeds) and `mandate serve all edge` (replica two, the production
// command) as two processes on one PostgreSQL database behind one public URL, and
// nothing but real clients — the CLI registers an agent and a sub-agent and grants alice's mandate
// (a `tokens` limit and a budget); the agent exchanges it with oauth4webapi (RFC 8693, DPoP) at
// replica one and sub-delegates it to the sub-agent (actor token); the sub-agent's token is used on
// replica two: an Authorize Check that consumes part of the budget (AuthorizeClient, native gRPC),
// and a resource server (the resource-server library) following two's revocation feed (SSE).
// Then the root mandate is revoked through replica one (its admin API): two's introspection,
// Authorize, the resource server and the refresh grant all refuse the tokens (polled, 5 s at most;
// the measured times are logged). Audit.Query by mandate id on replica two tells the whole story.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createRemoteJWKSet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import { Introspect } from "../../gen/mandate/v1/introspect_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { AuthorizeClient, type CheckInput } from "../../services/authorize/client.ts";
import { ResourceServer, ResourceServerError } from "../../services/shared/oauth/resource-server.ts";
import { RevocationFeed } from "../../services/shared/oauth/revocation-feed.ts";
import { adminClient } from "../helpers/admin.ts";
import {
  type Agent,
  agentOf,
  discover,
  type Exchanged,
  exchangeMandate,
  newAgentKey,
  presentedProof,
  refresh,
  subDelegate,
  TOKEN_EXCHANGE,
  type TokenEndpoint,
  via,
} from "../helpers/agents.ts";
import { engines } from "../helpers/engines.ts";
import { runMandate } from "../helpers/mandate-process.ts";
import { type Replicas, startReplicas } from "../helpers/replicas.ts";

const API = "https://api.example.com/";
const PAYMENTS = `${API}payments`;
const TENANT = "demo";
/** The dev user `mandate dev` seeds (alice): the human granting the mandate. */
const ALICE = "dev-alice";
const LIMIT_MS = 5000;

/** Ms from `since` until `refused()` holds, polling; fails after LIMIT_MS. */
async function refusedWithin(what: string, refused: () => Promise<boolean>, since: number): Promise<number> {
  for (;;) {
    if (await refused()) return Date.now() - since;
    if (Date.now() - since > LIMIT_MS) throw new Error(`${what}: still accepted after ${LIMIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.runIf(engines.some((e) => e.name === "postgres"))(
  "a mandate's life across two processes (`mandate dev`, `mandate serve all edge`) on one PostgreSQL database",
  () => {
    let database: { url: string; dispose(): Promise<void> };
    let replicas: Replicas;
    /** The CLI as an administrator runs it against replica one. */
    let cli: (args: string[]) => Promise<Record<string, unknown>>;

    beforeAll(async () => {
      database = await (engines.find((e) => e.name === "postgres") as (typeof engines)[number]).open();
      replicas = await startReplicas(database.url, { MANDATE_REVOCATION_FEED_HEARTBEAT: "500" });
      cli = async (args) => {
        const done = await runMandate([...args, "--address", replicas.one.grpc, "--json"], {
          MANDATE_ADMIN_FILE: replicas.one.process.adminFile,
        });
        if (done.code !== 0) throw new Error(`mandate ${args.join(" ")}: ${done.stderr}`);
        return JSON.parse(done.stdout) as Record<string, unknown>;
      };
    }, 120_000);

    afterAll(async () => {
      if (process.env.MANDATE_TEST_DEBUG) {
        console.error(replicas?.one.process.stderr(), replicas?.two.process.stderr());
      }
      await replicas?.stop();
      await database?.dispose();
    });

    /** `mandate agents create` with a fresh key's thumbprint; the agent holds the key and the secret. */
    async function cliAgent(name: string, grantTypes: string[]): Promise<Agent> {
      const key = await newAgentKey();
      const created = await cli([
        "agents",
        "create",
        "--tenant",
        TENANT,
        "--name",
        name,
        "--owner",
        ALICE,
        `--dpop-jkt=${key.jkt}`,
        "--scope",
        "orders.read payments.create",
        "--resource",
        API,
        ...grantTypes.flatMap((g) => ["--grant-type", g]),
      ]);
      return agentOf(key, created.clientId as string, created.clientSecret as string);
    }

    /** A workload's client-credentials token for Mandate's API with `scope` (a resource server's). */
    async function apiToken(scope: string): Promise<string> {
      const issue = adminClient(Issue, replicas.two.grpc, replicas.one.process.adminFile);
      const { client, clientSecret } = await issue.createClient({
        tenant: TENANT,
        metadata: { grantTypes: ["client_credentials"], scope, resources: [replicas.base] },
      });
      const response = await fetch(`${replicas.two.url}/t/${TENANT}/oauth2/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${client?.clientId}:${clientSecret}`).toString("base64")}`,
        },
        body: new URLSearchParams({ grant_type: "client_credentials", scope, resource: replicas.base }),
      });
      if (response.status !== 200) throw new Error(`token for ${scope}: ${await response.text()}`);
      return ((await response.json()) as { access_token: string }).access_token;
    }

    it("grant, exchange, sub-delegate, consume, revoke: replica two refuses within 5 s, and its audit tells it all", async () => {
      // Registered and granted with the CLI, as an administrator would.
      const agent = await cliAgent("Shopping agent", ["client_credentials", TOKEN_EXCHANGE, "refresh_token"]);
      const subAgent = await cliAgent("Payment agent", ["client_credentials", TOKEN_EXCHANGE]);
      const granted = await cli([
        "mandates",
        "create",
        "--tenant",
        TENANT,
        "--principal",
        ALICE,
        "--agent",
        agent.clientId,
        "--scope",
        "orders.read payments.create",
        "--resource",
        API,
        "--expires",
        "1d",
        "--max-token-ttl",
        "5m",
        "--budget",
        "tokens:10",
        "--budget",
        "amount:EUR:100",
        "--depth",
        "1",
        "--may-act",
        subAgent.clientId,
      ]);
      const root = granted.id as string;
      expect(root).toMatch(/^mdt_/);

      // The agent exchanges the mandate at replica one (the public URL), then sub-delegates.
      const one: TokenEndpoint = await discover(replicas.issuer);
      expect(one.as.grant_types_supported).toContain(TOKEN_EXCHANGE);
      const mine: Exchanged = await exchangeMandate(one, agent, root);
      expect(mine.claims).toMatchObject({
        iss: replicas.issuer,
        sub: ALICE,
        act: { sub: agent.clientId },
        client_id: agent.clientId,
        mandate_id: root,
        aud: API,
        cnf: { jkt: agent.jkt },
      });
      expect(mine.refreshToken).toEqual(expect.any(String));
      const theirs = await subDelegate(one, agent, mine.accessToken, subAgent, {
        actorScope: "orders.read",
        extra: { scope: "payments.create" },
      });
      const sub = theirs.mandateId;
      expect(sub).toMatch(/^mdt_/);
      expect(sub).not.toBe(root);
      expect(theirs.claims).toMatchObject({
        sub: ALICE,
        act: { sub: subAgent.clientId, act: { sub: agent.clientId } },
        client_id: subAgent.clientId,
        mandate_id: sub,
        scope: "payments.create",
        cnf: { jkt: subAgent.jkt },
      });
      const token = theirs.accessToken;

      // Replica two: Authorize (consuming 7 EUR), introspection, a resource server on its feed.
      const authorizer = new AuthorizeClient({
        address: replicas.two.grpc,
        token: await apiToken("mandate:authorize"),
        deadlineMs: 3000,
      });
      const reader = await apiToken("mandate:introspect");
      const introspect = createClient(
        Introspect,
        createGrpcTransport({
          baseUrl: `http://${replicas.two.grpc}`,
          interceptors: [
            (next) => (request) => {
              request.header.set("authorization", `Bearer ${reader}`);
              return next(request);
            },
          ],
        }),
      );
      const feed = new RevocationFeed({
        url: `${replicas.two.url}/t/${TENANT}/revocations`,
        token: async () => reader,
        maxSilenceMs: 3000,
      });
      await feed.start();
      const resourceServer = new ResourceServer({
        issuer: replicas.issuer,
        audience: API,
        keys: createRemoteJWKSet(new URL(`${replicas.two.url}/t/${TENANT}/.well-known/jwks.json`)),
        revocations: feed,
      });
      const payment = async (consume?: CheckInput["consume"]): Promise<CheckInput> => ({
        tenant: TENANT,
        accessToken: token,
        dpop: await presentedProof(subAgent, token, "POST", PAYMENTS),
        expectedAudience: API,
        action: "payments.create",
        resource: { type: "payment", id: "p-1", attributes: { audience: API, amount: 7, currency: "EUR" } },
        ...(consume ? { consume } : {}),
      });
      const resourceAccepts = async () => {
        try {
          await resourceServer.verify({
            method: "POST",
            url: PAYMENTS,
            authorization: `DPoP ${token}`,
            dpop: (await presentedProof(subAgent, token, "POST", PAYMENTS)).proof,
          });
          return true;
        } catch (error) {
          if (error instanceof ResourceServerError) return false;
          throw error;
        }
      };
      // The agent's refresh, as a load balancer would send it to replica two.
      const twoEndpoint = via(one, replicas.two.url);
      try {
        const spent = await authorizer.check(
          await payment({ meter: "amount:EUR", amount: 7, idempotencyKey: "payment-p-1" }),
        );
        expect(spent.allow, JSON.stringify(spent.reasons)).toBe(true);
        expect(spent.consumption?.counters.map((c) => [c.mandateId, c.meter, c.used])).toEqual([
          [root, "amount:EUR", 7],
          [sub, "amount:EUR", 7],
        ]);
        const seen = await introspect.introspect({ tenant: TENANT, token });
        expect(seen).toMatchObject({ active: true, mandateId: sub, clientId: subAgent.clientId });
        expect(await resourceAccepts()).toBe(true);
        // The exchanges counted against the mandate's `tokens` limit.
        const { mandate } = await adminClient(Issue, replicas.two.grpc, replicas.one.process.adminFile).getMandate({
          tenant: TENANT,
          mandateId: root,
        });
        expect(mandate?.usage.find((u) => u.meter === "tokens")?.used).toBeGreaterThanOrEqual(2);
        // The agent refreshes through replica two (the refresh token may rotate: keep the newest).
        const renewed = await refresh(twoEndpoint, agent, mine.refreshToken as string);
        expect(renewed.status, await renewed.clone().text()).toBe(200);
        const refreshToken = ((await renewed.json()) as { refresh_token?: string }).refresh_token ?? mine.refreshToken;

        // Revoked through replica one's admin API (the call the CLI makes; a CLI process's start-up
        // would swamp times measured from the call's start).
        const since = Date.now();
        const revoked = await adminClient(Issue, replicas.one.grpc, replicas.one.process.adminFile).revokeMandate({
          tenant: TENANT,
          mandateId: root,
          reason: "alice changed her mind",
        });
        const revokedAt = Date.now() - since;
        expect(revoked.revokedMandateIds).toEqual([root, sub]);
        const [introspection, authorize, resource, refreshed] = await Promise.all([
          refusedWithin(
            "introspection",
            async () => !(await introspect.introspect({ tenant: TENANT, token })).active,
            since,
          ),
          refusedWithin(
            "Authorize",
            async () => {
              const decision = await authorizer.check(await payment());
              return !decision.allow && decision.reasons.some((r) => /revoked|token_invalid/.test(r.code));
            },
            since,
          ),
          refusedWithin("resource server", async () => !(await resourceAccepts()), since),
          refusedWithin(
            "refresh grant",
            async () => {
              const response = await refresh(twoEndpoint, agent, refreshToken as string);
              if (response.status === 200) return false;
              const body = (await response.json()) as { error: string; error_description: string };
              expect(body).toMatchObject({
                error: "invalid_grant",
                error_description: expect.stringMatching(/revoked/),
              });
              return true;
            },
            since,
          ),
        ]);
        // Consuming after the revocation is refused too, and charges nothing.
        const late = await authorizer.check(
          await payment({ meter: "amount:EUR", amount: 7, idempotencyKey: "payment-p-2" }),
        );
        expect(late.allow).toBe(false);
        expect(late.consumption).toBeUndefined();
        console.log(
          `revoked on replica one (RevokeMandate answered in ${revokedAt} ms); refused on replica two after: introspection ${introspection} ms, Authorize ${authorize} ms, resource server (SSE feed) ${resource} ms, refresh ${refreshed} ms`,
        );
      } finally {
        await feed.stop();
        authorizer.close();
      }

      // The whole life, as replica two's audit log tells it (entries arrive asynchronously).
      const audit = adminClient(Audit, replicas.two.grpc, replicas.one.process.adminFile);
      const lifeOf = async (mandateId: string, expected: string[]) => {
        let events: Awaited<ReturnType<typeof audit.query>>["entries"] = [];
        const until = Date.now() + 15_000;
        for (;;) {
          events = (await audit.query({ tenant: TENANT, mandateId })).entries;
          const types = new Set(events.map((e) => e.event?.type));
          if (expected.every((t) => types.has(t)) || Date.now() > until) break;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        return events.map((e) => e.event).filter((e) => e !== undefined);
      };
      // The root: granted, exchanged by the agent, refreshed, revoked. The sub-mandate (the sub-delegation's
      // grant): granted, exchanged with the whole actor chain, consumed, revoked with its parent.
      const rootLife = await lifeOf(root, ["mandate.granted.v1", "token.exchanged.v1", "mandate.revoked.v1"]);
      const subLife = await lifeOf(sub, [
        "mandate.granted.v1",
        "token.exchanged.v1",
        "mandate.consumed.v1",
        "mandate.revoked.v1",
      ]);
      console.log(`audit of the root ${root}: ${rootLife.map((e) => e.type).join(", ")}`);
      console.log(`audit of the sub-mandate ${sub}: ${subLife.map((e) => e.type).join(", ")}`);
      const types = (life: typeof rootLife) => life.map((e) => e.type).filter((t) => t !== "authz.decision.v1");
      // (token.issued.v1: the refresh.)
      expect(types(rootLife)).toEqual([
        "mandate.granted.v1",
        "token.exchanged.v1",
        "token.issued.v1",
        "mandate.revoked.v1",
      ]);
      expect(types(subLife)).toEqual([
        "mandate.granted.v1",
        "token.exchanged.v1",
        "mandate.consumed.v1",
        "mandate.revoked.v1",
      ]);
      expect(rootLife.find((e) => e.type === "token.exchanged.v1")?.details).toMatchObject({
        mandate_id: root,
        actors: [agent.clientId],
      });
      const delegated = subLife.find((e) => e.type === "token.exchanged.v1");
      expect(delegated?.details).toMatchObject({
        mandate_id: sub,
        mandate_chain: [root, sub],
        actors: [agent.clientId, subAgent.clientId],
        sub_mandate_granted: true,
        jti: theirs.claims.jti,
        cnf_jkt: subAgent.jkt,
      });
      expect(delegated?.actors.map((a) => a.id)).toEqual([agent.clientId, subAgent.clientId]);
      expect(subLife.find((e) => e.type === "mandate.consumed.v1")?.details).toMatchObject({
        meter: "amount:EUR",
        amount: 7,
      });
    }, 120_000);
  },
);
