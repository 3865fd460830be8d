// The example agent of `mandate demo mcp agent`, step by step as an agent author writes one:
//   1. register at the tenant (RFC 7591 dynamic registration) as an agent owned by its human, with
//      its own DPoP key (RFC 9449) and a loopback redirect URI (RFC 8252 §7.3);
//   2. ask the human for a mandate: the authorization endpoint with PKCE and a `mandate` parameter;
//      the human signs in and approves on Mandate's consent page; the code comes back to the loopback
//      listener and is redeemed (with DPoP) for the mandate's id;
//   3. call the MCP server with the MCP SDK's client, its tokens from the mandate (the MCP kit's
//      mandateTransport: token exchange, DPoP proofs, renewal, typed refusals);
//   4. keep working until the human revokes the mandate on their "my mandates" page.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { calculateJwkThumbprint, exportJWK } from "jose";
import * as oauth from "oauth4webapi";
import { InsufficientScope, MandateClientError, MandateUnusable, mandateTransport, StepUpRequired } from "../index.ts";

/** What the agent asks its human for: the scopes, for this MCP server, an hour, at most 1000 calls. */
const SCOPE = "orders.read payments.send";
const MANDATE = { expires_in: 3600, usage_limits: [{ meter: "calls", maximum: 1000 }] };
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";

/** What the agent reports, one event per step (the CLI prints them, or `--json` lines). */
export type DemoAgentEvent =
  | { step: "registered"; client_id: string }
  | { step: "consent"; url: string }
  | { step: "mandate"; mandate_id: string; scope: string }
  | { step: "tool"; tool: string; outcome: ToolOutcome; detail: string }
  | { step: "working"; mandates_page: string; interval_ms: number }
  | { step: "stopped"; reason: string; condition?: string };

export type ToolOutcome = "allowed" | "denied" | "step_up" | "insufficient_scope" | "refused";

export interface DemoAgentOptions {
  /** The tenant's issuer, e.g. http://127.0.0.1:4460/t/demo. */
  issuer: string;
  /** The MCP server (its canonical URI: the audience of the agent's tokens). */
  mcpUrl: string;
  /**
   * An access token of an administrator of the tenant: registering an agent names its owner, whom an
   * administrator vouches for (RFC 7591 §3 initial access token).
   */
  initialAccessToken: string;
  /** The human the agent works for (its owner), as the tenant knows them. Default: the dev user alice. */
  owner?: string;
  /** How often the agent works once it has tried its tools. Default 500 ms. */
  intervalMs?: number;
  report: (event: DemoAgentEvent) => void;
}

/** A registered agent: its credentials, its DPoP key and the listener its redirect URI names. */
export interface RegisteredAgent {
  clientId: string;
  clientSecret: string;
  keys: CryptoKeyPair;
  redirectUri: string;
  /** Resolves with the first request the listener receives: the authorization response. */
  callback: Promise<URL>;
  close(): Promise<void>;
}

/** Steps 1 to 4. */
export async function runDemoAgent(options: DemoAgentOptions): Promise<void> {
  const agent = await registerAgent(options);
  try {
    const mandateId = await askForMandate(agent, options);
    const client = await connect(agent, mandateId, options);
    await tryTools(client, options.report);
    await workUntilStopped(client, options);
    await client.close();
  } finally {
    await agent.close();
  }
}

/** Step 1: a DPoP key, a loopback listener, and the registration as an agent of `owner`. */
export async function registerAgent(options: DemoAgentOptions): Promise<RegisteredAgent> {
  const keys = await oauth.generateKeyPair("ES256", { extractable: true });
  const { listener, redirectUri, callback } = await loopback();
  const response = await fetch(`${options.issuer}/oauth2/register`, {
    method: "POST",
    headers: { authorization: `Bearer ${options.initialAccessToken}`, "content-type": "application/json" },
    body: JSON.stringify({
      client_name: "Demo MCP agent",
      description: "Reads your orders and pays them, through the MCP demo server",
      kind: "agent",
      owner: options.owner ?? "dev-alice",
      dpop_jkt: await calculateJwkThumbprint(await exportJWK(keys.publicKey), "sha256"),
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code", TOKEN_EXCHANGE],
      token_endpoint_auth_method: "client_secret_basic",
      scope: SCOPE,
      resources: [options.mcpUrl],
    }),
  });
  const body = (await response.json()) as Record<string, string>;
  if (response.status !== 201) {
    listener.close();
    throw new Error(`registration refused: ${body.error} (${body.error_description ?? response.status})`);
  }
  options.report({ step: "registered", client_id: body.client_id as string });
  return {
    clientId: body.client_id as string,
    clientSecret: body.client_secret as string,
    keys,
    redirectUri,
    callback,
    close: () => new Promise((resolve) => listener.close(() => resolve())),
  };
}

/** A listener on a free loopback port answering the one redirect it waits for. */
async function loopback(): Promise<{ listener: Server; redirectUri: string; callback: Promise<URL> }> {
  let received: (url: URL) => void = () => {};
  const callback = new Promise<URL>((resolve) => {
    received = resolve;
  });
  const listener = createServer((req, res) => {
    const url = new URL(req.url ?? "/", redirectUri);
    if (url.pathname !== "/callback") return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    res.end("The agent got your answer. You can close this tab.");
    received(url);
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const redirectUri = `http://127.0.0.1:${(listener.address() as AddressInfo).port}/callback`;
  return { listener, redirectUri, callback };
}

/** Step 2: the human approves on the consent page; the code is redeemed for the mandate's id. */
export async function askForMandate(agent: RegisteredAgent, options: DemoAgentOptions): Promise<string> {
  const http = { [oauth.allowInsecureRequests]: new URL(options.issuer).protocol === "http:" };
  const issuer = new URL(options.issuer);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...http }),
  );
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint as string);
  url.search = new URLSearchParams({
    client_id: agent.clientId,
    response_type: "code",
    redirect_uri: agent.redirectUri,
    scope: SCOPE,
    resource: options.mcpUrl,
    mandate: JSON.stringify(MANDATE),
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
  }).toString();
  options.report({ step: "consent", url: url.href });

  const client = { client_id: agent.clientId };
  const params = oauth.validateAuthResponse(as, client, await agent.callback, state);
  const dpop = oauth.DPoP({}, agent.keys);
  const redeem = async () =>
    oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(
        as,
        client,
        oauth.ClientSecretBasic(agent.clientSecret),
        params,
        agent.redirectUri,
        verifier,
        { DPoP: dpop, ...http },
      ),
    );
  // RFC 9449 §8: the first request learns the server's DPoP nonce; the handle sends it the second time.
  const tokens = await redeem().catch((error: unknown) => {
    if (oauth.isDPoPNonceError(error)) return redeem();
    throw error;
  });
  const mandateId = tokens.mandate_id as string;
  options.report({ step: "mandate", mandate_id: mandateId, scope: tokens.scope ?? "" });
  return mandateId;
}

/** Step 3: the MCP SDK client, its tokens exchanged from the mandate and bound to the agent's key. */
export async function connect(agent: RegisteredAgent, mandateId: string, options: DemoAgentOptions): Promise<Client> {
  const transport = mandateTransport(options.mcpUrl, {
    issuer: options.issuer,
    clientId: agent.clientId,
    clientAuthentication: { method: "client_secret_basic", clientSecret: agent.clientSecret },
    dpopKeys: agent.keys,
    mandateId,
    resource: options.mcpUrl,
    allowInsecureRequests: new URL(options.mcpUrl).protocol === "http:",
  });
  const client = new Client({ name: "mandate-demo-agent", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

/** One tool call, and how it went: a result, a policy's deny (-32001), or a challenge the agent cannot answer. */
export async function callTool(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<{ tool: string; outcome: ToolOutcome; detail: string }> {
  try {
    const result = await client.callTool({ name, arguments: args });
    const text = (result.content as Array<{ text?: string }>).map((c) => c.text ?? "").join(" ");
    return { tool: name, outcome: result.isError ? "refused" : "allowed", detail: text };
  } catch (error) {
    return { tool: name, ...refusal(error) };
  }
}

function refusal(error: unknown): { outcome: ToolOutcome; detail: string } {
  // COAZ-MCP "Authorization Denial": the policy said no.
  if (error instanceof McpError) return { outcome: "denied", detail: error.message };
  // RFC 9470: only the human can authenticate more strongly; the agent cannot.
  if (error instanceof StepUpRequired) {
    return { outcome: "step_up", detail: `insufficient_user_authentication, acr_values=${error.acrValues}` };
  }
  // MCP "Step-Up Authorization Flow": the mandate would have to grant more.
  if (error instanceof InsufficientScope)
    return { outcome: "insufficient_scope", detail: `needs scope ${error.scope}` };
  if (error instanceof MandateClientError) return { outcome: "refused", detail: error.message };
  throw error;
}

/** The tools the demo shows: allowed, counted, denied by policy, step-up, insufficient scope. */
export async function tryTools(client: Client, report: DemoAgentOptions["report"]): Promise<void> {
  for (const [name, args] of [
    ["orders_list", {}],
    ["order_get", { order_id: "ord_1002" }],
    ["order_cancel", { order_id: "ord_1002" }],
    ["payment_send", { order_id: "ord_1002", amount: 24 }],
    ["order_refund", { order_id: "ord_1001" }],
  ] as const) {
    report({ step: "tool", ...(await callTool(client, name, args)) });
  }
}

/** Step 4: list the orders every `intervalMs` until the mandate stops working. */
export async function workUntilStopped(client: Client, options: DemoAgentOptions): Promise<void> {
  const intervalMs = options.intervalMs ?? 500;
  options.report({ step: "working", mandates_page: `${options.issuer}/mandates`, interval_ms: intervalMs });
  for (;;) {
    try {
      await client.callTool({ name: "orders_list", arguments: {} });
    } catch (error) {
      return options.report({ step: "stopped", ...whyStopped(error) });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Why the mandate stopped working, and its condition (revoked, expired...) when Mandate said. */
function whyStopped(error: unknown): { reason: string; condition?: string } {
  // Mandate will not exchange the mandate any more (the token was refused, its renewal too)...
  if (error instanceof MandateUnusable) return { reason: error.message, condition: error.condition };
  // ...or the policy decision refused the call first: Authorize checks the mandate on every call.
  if (error instanceof McpError) {
    // The deny's reason codes: mandate_revoked, token_revoked, mandate_expired...
    const reasons = (error.data as { reasons?: string[] } | undefined)?.reasons ?? [];
    const condition = reasons.find((code) => /^(mandate|token)_/.test(code))?.replace(/^(mandate|token)_/, "");
    return { reason: error.message, ...(condition ? { condition } : {}) };
  }
  if (error instanceof MandateClientError) return { reason: error.message };
  throw error;
}
