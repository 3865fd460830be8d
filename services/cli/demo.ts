// `mandate demo mcp`: an MCP server protected by Mandate (services/mcp/demo/server.ts), prepared on a
// running Mandate (`npm start`) as its administrator — the server's own client (for Authorize and the
// revocation feed) and the demo policy, pushed and activated for the tenant — and
// `mandate demo mcp agent`: the example agent (services/mcp/demo/agent.ts) that asks the human for
// a mandate and calls the server's tools until the mandate is revoked. `--json` prints one JSON
// object per line per step, for scripts and tests.
import { fileURLToPath } from "node:url";
import { type Command, CommanderError, Option } from "commander";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { buildBundle } from "../authorize/rego/bundle.ts";
import type { DemoAgentEvent } from "../mcp/demo/agent.ts";
import { addressOption, type CommonOptions, command, configFrom, grpcClient, tokenOption } from "./common.ts";
import { bearerToken } from "./credentials.ts";

const POLICY_DIR = fileURLToPath(new URL("../../policies/examples/mcp-demo", import.meta.url));
const DEFAULT_PORT = "4470";

interface DemoOptions extends CommonOptions {
  issuer?: string;
}

interface ServerOptions extends DemoOptions {
  port: string;
}

interface AgentOptions extends DemoOptions {
  mcpUrl: string;
  owner: string;
}

export function demoCommand(): Command {
  const mcp = command("mcp", "run an MCP server protected by Mandate (policy, step-up, usage, revocation); see `agent`")
    .enablePositionalOptions()
    .addOption(issuerOption())
    .option("-p, --port <port>", "the MCP server's port (0: any free port)", DEFAULT_PORT)
    .addOption(addressOption)
    .addOption(tokenOption)
    .option("--json", "print each step as a line of JSON")
    .action(serve);
  mcp.addCommand(
    command("agent", "run the example agent: it asks alice for a mandate, then calls the demo server's tools")
      .addOption(issuerOption())
      .option("--mcp-url <url>", "the demo MCP server", `http://127.0.0.1:${DEFAULT_PORT}/mcp`)
      .option("--owner <sub>", "the human the agent works for", "dev-alice")
      .addOption(tokenOption)
      .option("--json", "print each step as a line of JSON")
      .action(agent),
  );
  return command("demo", "try Mandate end to end on a running `npm start`").enablePositionalOptions().addCommand(mcp);
}

function issuerOption(): Option {
  return new Option(
    "--issuer <url>",
    "the tenant's issuer (default: the `mandate dev` tenant's, from the configuration)",
  );
}

/** The issuer, its tenant and Mandate's API audience (the public base URL the issuer is under). */
function tenantOf(options: DemoOptions): { issuer: string; tenant: string; apiAudience: string } {
  const config = configFrom(options);
  const issuer = (options.issuer ?? `${config.publicBaseUrl}/t/${config.dev.tenant}`).replace(/\/$/, "");
  const match = /^(https?:\/\/.+)\/t\/([^/]+)$/.exec(issuer);
  if (!match) {
    throw new CommanderError(2, "mandate.usage", `--issuer ${issuer}: expected {public base URL}/t/{tenant}`);
  }
  return { issuer, tenant: match[2] as string, apiAudience: match[1] as string };
}

/** Prints a step: a JSON line with --json, else its human text. */
function say(options: DemoOptions, step: Record<string, unknown>, human: string): void {
  process.stdout.write(options.json ? `${JSON.stringify(step)}\n` : `${human}\n`);
}

async function serve(options: ServerOptions): Promise<void> {
  const { issuer, tenant, apiAudience } = tenantOf(options);
  // The server's own client: it asks Authorize (mandate:authorize) and follows revocations (mandate:introspect).
  const { client, clientSecret } = await grpcClient(Issue, options).createClient({
    tenant,
    metadata: {
      clientName: "MCP demo server",
      grantTypes: ["client_credentials"],
      scope: "mandate:authorize mandate:introspect",
      resources: [apiAudience],
    },
  });
  const clientId = client?.clientId as string;
  say(options, { step: "client", client_id: clientId }, `registered the server's client ${clientId} in ${tenant}`);

  // The tenant's policy becomes the demo's (idempotent: the same bundle is the same revision).
  const { bytes } = await buildBundle(POLICY_DIR);
  const { revision } = await grpcClient(Authorize, options).pushPolicy({ tenant, bundle: bytes, activate: true });
  say(
    options,
    { step: "policy", tenant, revision: revision?.revision },
    `activated policies/examples/mcp-demo (revision ${revision?.revision}) for ${tenant}; undo: mandate policy rollback --tenant ${tenant}`,
  );

  // Loaded here, so other commands do not pay for the MCP SDK.
  const { startDemoServer } = await import("../mcp/demo/server.ts");
  const { DEMO_TOOLS } = await import("../mcp/demo/tools.ts");
  const server = await startDemoServer({
    issuer,
    authorizeAddress: options.address as string,
    client: { clientId, clientSecret },
    apiAudience,
    port: Number(options.port),
    onError: (error) => process.stderr.write(`demo server: ${(error as Error).message}\n`),
  });
  say(
    options,
    { step: "listening", url: server.url, metadata: server.metadataUrl, issuer },
    [
      `MCP demo server  ${server.url}   (tokens of ${issuer}; metadata ${server.metadataUrl})`,
      ...DEMO_TOOLS.map((tool) => `  tool  ${tool.name.padEnd(13)} ${tool.description}`),
      "",
      "Next, in another terminal:",
      `  npx mandate demo mcp agent${agentFlags(options, server.url, issuer)}`,
      "  open the URL it prints, sign in as alice and approve; watch it call the tools; then revoke",
      `  the mandate on ${issuer}/mandates and watch it stop.`,
      "Press Ctrl+C to stop.",
    ].join("\n"),
  );
  // On Ctrl+C the server's client goes too, so runs do not pile clients up in the tenant.
  const stop = async () => {
    await server.close();
    await grpcClient(Issue, options)
      .deleteClient({ tenant, clientId })
      .catch(() => undefined);
    process.exit(0);
  };
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());
}

/** The flags `mandate demo mcp agent` needs to find this server and issuer, when not the defaults. */
function agentFlags(options: ServerOptions, url: string, issuer: string): string {
  return [
    ...(options.issuer ? [`--issuer ${issuer}`] : []),
    ...(url.endsWith(`:${DEFAULT_PORT}/mcp`) ? [] : [`--mcp-url ${url}`]),
  ]
    .map((flag) => ` ${flag}`)
    .join("");
}

async function agent(options: AgentOptions): Promise<void> {
  const { issuer } = tenantOf(options);
  const initialAccessToken =
    options.token ?? (await bearerToken(configFrom(options).admin.credentialsFile)).access_token;
  const { runDemoAgent } = await import("../mcp/demo/agent.ts");
  await runDemoAgent({
    issuer,
    mcpUrl: options.mcpUrl,
    initialAccessToken,
    owner: options.owner,
    report: (event) => say(options, event, describe(event)),
  });
}

function describe(event: DemoAgentEvent): string {
  switch (event.step) {
    case "registered":
      return `registered as agent ${event.client_id}`;
    case "consent":
      return `Open this URL, sign in as alice and approve the mandate:\n\n  ${event.url}\n`;
    case "mandate":
      return `got mandate ${event.mandate_id} (scope: ${event.scope})`;
    case "tool":
      return `  ${event.tool.padEnd(13)} ${event.outcome.padEnd(18)} ${event.detail}`;
    case "working":
      return `working: listing the orders every ${event.interval_ms} ms until you revoke the mandate at ${event.mandates_page}`;
    case "stopped":
      return `stopped: ${event.reason}`;
  }
}
