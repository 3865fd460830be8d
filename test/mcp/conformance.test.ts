// The MCP conformance suite (@modelcontextprotocol/conformance 0.1.16) in CI, loopback only.
//
// Server side: the suite has no authorization scenarios for servers (its auth/* scenarios all test
// clients). What it can show of the kit is that a protected server still speaks MCP: every active
// server scenario runs against the conformance server behind the kit (the demo's protection stack:
// McpResourceServer, COAZ-MCP mappings, Authorize in access-token mode under the demo's policy), and
// the applicable ones against the demo server itself. The suite's client knows no OAuth, so a
// loopback forwarder adds the agent's real Mandate token — alice's mandate exchanged by the kit's
// MandateSession, DPoP-bound — and a fresh DPoP proof to each request. Without it, the same run fails.
//
// Client side: the auth/* scenarios (the suite plays MCP server and authorization server) run the
// MCP SDK's OAuth client (conformance/auth-client.ts); expected-failures.yml says which cannot apply.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDemoServer } from "../../services/mcp/demo/server.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import { type Forwarder, startForwarder } from "./conformance/forwarder.ts";
import {
  activateConformancePolicy,
  agentSession,
  failures,
  runConformance,
  serviceClient,
  TOOLS_SCOPE,
  warmUp,
} from "./conformance/harness.ts";
import { type ProtectedServer, startProtectedServer } from "./conformance/protected-server.ts";

const AUTH_CLIENT = new URL("./conformance/auth-client.ts", import.meta.url).pathname;
const EXPECTED_CLIENT_FAILURES = new URL("./conformance/expected-failures.yml", import.meta.url).pathname;

let mandate: OAuthServer;
let service: Awaited<ReturnType<typeof serviceClient>>;
const errors: unknown[] = [];
const onError = (error: unknown) => void errors.push(error);

describe("server side", () => {
  beforeAll(async () => {
    mandate = await startOAuthServer();
    await activateConformancePolicy(mandate);
    service = await serviceClient(mandate);
  }, 60_000);

  afterAll(async () => {
    await mandate?.stop();
  });

  describe("server scenarios through the kit", () => {
    let server: ProtectedServer;
    let forwarder: Forwarder;

    beforeAll(async () => {
      server = await startProtectedServer({
        issuer: mandate.issuer,
        authorizeAddress: mandate.process.summary.grpc as string,
        serviceToken: service.token,
        onError,
      });
      const agent = await agentSession(mandate, server.url, [TOOLS_SCOPE]);
      forwarder = await startForwarder({ upstream: server.url, credentials: agent.credentials });
      await warmUp(forwarder.url);
      errors.length = 0;
    }, 60_000);

    afterAll(async () => {
      await forwarder?.close();
      await server?.close();
    });

    it("passes every active server scenario of the suite, the agent's token on each request", async () => {
      const run = await runConformance(["server", "--url", forwarder.url, "--suite", "active"]);
      expect(failures(run), run.output).toEqual([]);
      expect(run.code, run.output).toBe(0);
      // All 30 active scenarios ran (json-schema-2020-12 and server-sse-polling are the suite's "pending").
      expect(new Set(run.checks.map((c) => c.scenario)).size).toBe(30);
      expect(forwarder.stats.forwarded).toBeGreaterThan(100);
      expect(errors).toEqual([]);
    }, 100_000);

    it("fails the same scenarios without the token: the kit is on", async () => {
      const run = await runConformance(["server", "--url", server.url, "--scenario", "tools-call-simple-text"]);
      expect(run.code).toBe(1);
      expect(failures(run)).toHaveLength(1);
      // What the suite's client was told: RFC 6750 §3 / RFC 9728 §5.1, the kit's challenge.
      const refused = await fetch(server.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
      });
      expect(refused.status).toBe(401);
      expect(refused.headers.get("www-authenticate")).toMatch(/resource_metadata="/);
    }, 30_000);
  });

  describe("server scenarios against the demo server", () => {
    let demo: Awaited<ReturnType<typeof startDemoServer>>;
    let forwarder: Forwarder;

    beforeAll(async () => {
      demo = await startDemoServer({
        issuer: mandate.issuer,
        authorizeAddress: mandate.process.summary.grpc as string,
        client: service.client,
        apiAudience: mandate.base,
        onError,
      });
      const agent = await agentSession(mandate, demo.url, ["orders.read"]);
      forwarder = await startForwarder({ upstream: demo.url, credentials: agent.credentials });
      await warmUp(forwarder.url);
      errors.length = 0;
    }, 60_000);

    afterAll(async () => {
      await forwarder?.close();
      await demo?.close();
    });

    // The demo serves tools only, statelessly: the scenarios about resources, prompts, logging,
    // completion, sessions and server-to-client requests are not its to pass.
    it.each(["server-initialize", "ping", "tools-list", "dns-rebinding-protection"])(
      "passes %s",
      async (scenario) => {
        const run = await runConformance(["server", "--url", forwarder.url, "--scenario", scenario]);
        expect(failures(run), run.output).toEqual([]);
        expect(run.code, run.output).toBe(0);
      },
      30_000,
    );
  });
});

describe("client scenarios: the MCP SDK's OAuth client", () => {
  const client = ["client", "--command", `${process.execPath} ${AUTH_CLIENT}`, "--timeout", "20000"];

  // Suites run their scenarios in parallel; expected-failures.yml lists the one that cannot apply.
  it.each(["auth", "backcompat", "extensions", "draft"])(
    "passes the %s suite",
    async (suite) => {
      const run = await runConformance([...client, "--suite", suite, "--expected-failures", EXPECTED_CLIENT_FAILURES]);
      expect(run.code, run.output).toBe(0);
    },
    60_000,
  );

  // One at a time: sse-retry times the client's reconnection (the retry field, ±200 ms).
  it.each(["initialize", "tools_call", "elicitation-sep1034-client-defaults", "sse-retry"])(
    "passes %s",
    async (scenario) => {
      const run = await runConformance([...client, "--scenario", scenario]);
      expect(failures(run), run.output).toEqual([]);
      expect(run.code, run.output).toBe(0);
    },
    30_000,
  );
});
