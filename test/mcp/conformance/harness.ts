// What conformance.test.ts sets up around the suite: the policy (the MCP demo's, its data extended
// to the conformance server's methods and tools), an MCP server's own client of Mandate's API, an
// agent holding a mandate from alice (through the kit's MandateSession), and runs of the suite's CLI.
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Client as RpcClient } from "@connectrpc/connect";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Authorize } from "../../../gen/mandate/v1/authorize_pb.js";
import { PartyKind } from "../../../gen/mandate/v1/common_pb.js";
import type { Issue } from "../../../gen/mandate/v1/issue_pb.js";
import { buildBundle } from "../../../services/authorize/rego/bundle.ts";
import { type MandateClientAuthOptions, MandateSession } from "../../../services/mcp/index.ts";
import { adminClient } from "../../helpers/admin.ts";
import { registerAgent } from "../../helpers/agents.ts";
import type { OAuthServer } from "../../helpers/oauth-server.ts";

export const CONFORMANCE_CLI = resolve("node_modules/@modelcontextprotocol/conformance/dist/index.js");
const DEMO_POLICY = resolve("policies/examples/mcp-demo");
/** The scope the conformance server's tools need (one scope: the suite's tools are all alike). */
export const TOOLS_SCOPE = "conformance.tools";
const TOOLS = [
  "test_simple_text",
  "test_image_content",
  "test_audio_content",
  "test_embedded_resource",
  "test_multiple_content_types",
  "test_error_handling",
  "test_tool_with_logging",
  "test_tool_with_progress",
  "test_sampling",
  "test_elicitation",
  "test_elicitation_sep1034_defaults",
  "test_elicitation_sep1330_enums",
];
/** The MCP methods the suite's server scenarios send that the binding maps (ping and notifications pass). */
const SERVER_METHODS = [
  "resources/read",
  "resources/subscribe",
  "resources/unsubscribe",
  "prompts/get",
  "completion/complete",
  "logging/setLevel",
];

/**
 * The demo's policy (policies/examples/mcp-demo) with its data extended: more MCP methods allowed on
 * the server as a whole, and more default-mapped tools with the scope each needs.
 */
export async function demoPolicyBundle(
  revision: string,
  extend: { serverMethods?: string[]; tools?: Record<string, string> },
): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), "mandate-mcp-policy-"));
  copyFileSync(join(DEMO_POLICY, "mcp_demo.rego"), join(dir, "mcp_demo.rego"));
  const data = JSON.parse(readFileSync(join(DEMO_POLICY, "data.json"), "utf8")) as {
    mcp_demo: { server_methods: string[]; tools: Record<string, string> };
  };
  data.mcp_demo.server_methods.push(...(extend.serverMethods ?? []));
  Object.assign(data.mcp_demo.tools, extend.tools);
  writeFileSync(join(dir, "data.json"), JSON.stringify(data));
  return (await buildBundle(dir, { revision })).bytes;
}

/** Pushes and activates the demo's policy, its data extended to the conformance server's methods and tools. */
export async function activateConformancePolicy(server: OAuthServer, tenant = "demo"): Promise<void> {
  const bundle = await demoPolicyBundle("mcp-conformance", {
    serverMethods: SERVER_METHODS,
    tools: Object.fromEntries(TOOLS.map((tool) => [tool, TOOLS_SCOPE])),
  });
  const authorize = adminClient(Authorize, server.process.summary.grpc as string, server.process.adminFile);
  await authorize.pushPolicy({ tenant, bundle, activate: true });
}

/** An MCP server's own client of Mandate's API (Authorize and the revocation feed), as the demo's. */
export async function serviceClient(server: OAuthServer): Promise<{
  client: { clientId: string; clientSecret: string };
  token: () => Promise<string>;
}> {
  const client = await server.register({
    grantTypes: ["client_credentials"],
    scope: "mandate:authorize mandate:introspect",
    resources: [server.base],
  });
  let current: { token: string; renewAt: number } | undefined;
  const token = async () => {
    if (current && Date.now() < current.renewAt) return current.token;
    const response = await fetch(`${server.issuer}/oauth2/token`, {
      method: "POST",
      headers: { authorization: `Basic ${btoa(`${client.clientId}:${client.clientSecret}`)}` },
      body: new URLSearchParams({
        grant_type: "client_credentials",
        scope: "mandate:authorize mandate:introspect",
        resource: server.base,
      }),
    });
    if (!response.ok) throw new Error(`service token: HTTP ${response.status} ${await response.text()}`);
    const { access_token, expires_in } = (await response.json()) as { access_token: string; expires_in: number };
    current = { token: access_token, renewAt: Date.now() + (expires_in * 1000) / 2 };
    return access_token;
  };
  return { client, token };
}

/**
 * An agent (DPoP key registered) holding alice's mandate for `resource` with `scopes`, and the kit's
 * client session that exchanges it: what the forwarder presents for the suite.
 */
export async function agentSession(
  server: { issue: RpcClient<typeof Issue>; issuer: string },
  resource: string,
  scopes: string[],
  // The kit counts each tools/call against the mandate's "calls" meter where the mandate limits it.
  usageLimits: Array<{ meter: string; maximum: number }> = [{ meter: "calls", maximum: 1_000_000_000 }],
) {
  const agent = await registerAgent(server.issue, { scope: scopes.join(" "), resources: [resource] });
  const { mandate } = await server.issue.createMandate({
    tenant: "demo",
    mandate: {
      principal: { id: "alice", kind: PartyKind.HUMAN },
      agent: { id: agent.clientId, kind: PartyKind.AGENT },
      scopes,
      resources: [resource],
      expireTime: timestampFromMs(Date.now() + 3_600_000),
      usageLimits,
    },
  });
  const options: MandateClientAuthOptions = {
    issuer: server.issuer,
    clientId: agent.clientId,
    clientAuthentication: { method: "client_secret_basic", clientSecret: agent.secret },
    mandateId: mandate?.id as string,
    dpopKeys: agent.keys,
    resource,
    allowInsecureRequests: true,
  };
  const session = new MandateSession(options);
  return {
    /** For the kit's mandateTransport / mandateClientAuth. */
    options,
    session,
    credentials: async () => ({ token: (await session.accessToken()).accessToken, keys: agent.keys }),
  };
}

/**
 * One MCP session through `url` until it answers (Mandate's first decision compiles the tenant's
 * policy: on a loaded machine that can outlast a deadline), so the suite's first scenario is not the warm-up.
 */
export async function warmUp(url: string, attempts = 5): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const client = new Client({ name: "warm-up", version: "1.0.0" });
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(url)));
      await client.listTools();
      return;
    } catch (error) {
      if (attempt >= attempts) throw error;
    } finally {
      await client.close();
    }
  }
}

export interface ConformanceRun {
  code: number | null;
  output: string;
  /** Every check of every scenario run (from the -o folder's checks.json files). */
  checks: Array<{ scenario: string; id: string; status: string; description: string; errorMessage?: string }>;
}

/** Runs the suite's CLI (`args` after the command) with results in a fresh folder. */
export async function runConformance(args: string[], timeoutMs = 90_000): Promise<ConformanceRun> {
  const out = mkdtempSync(join(tmpdir(), "mandate-mcp-conformance-"));
  const child = spawn(process.execPath, [CONFORMANCE_CLI, ...args, "-o", out], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  const chunks: Buffer[] = [];
  child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => chunks.push(chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((done) => child.on("close", done));
  clearTimeout(timer);
  const output = Buffer.concat(chunks).toString();
  const checks: ConformanceRun["checks"] = [];
  for (const file of readdirSync(out, { recursive: true, encoding: "utf8" })) {
    if (!file.endsWith("checks.json")) continue;
    const scenario = file.split("/").slice(0, -1).join("/");
    for (const check of JSON.parse(readFileSync(join(out, file), "utf8")) as ConformanceRun["checks"]) {
      checks.push({ ...check, scenario });
    }
  }
  return { code, output, checks };
}

/** The failed checks of a run, one line each, for an assertion message. */
export function failures(run: ConformanceRun): string[] {
  return run.checks
    .filter((c) => c.status === "FAILURE")
    .map((c) => `${c.scenario} ${c.id}: ${c.errorMessage ?? c.description}`);
}
