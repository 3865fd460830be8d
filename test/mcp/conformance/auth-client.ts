// The MCP client the conformance suite's client scenarios run (`conformance client --command "node
// test/mcp/conformance/auth-client.ts"`): the suite starts its own MCP server and authorization
// server per scenario, appends the MCP URL to the command and names the scenario in
// MCP_CONFORMANCE_SCENARIO (credentials, when it has some for the client, in MCP_CONFORMANCE_CONTEXT).
//
// The client is the MCP SDK's, with the SDK's own OAuth (auth(): RFC 9728 discovery, RFC 8414 /
// OpenID metadata, DCR or CIMD or pre-registration, PKCE, RFC 8707 resource, scope selection and
// step-up) — the flows the issue says Mandate's authorization server serves. The kit's own client
// (services/mcp/client: a mandate exchanged for DPoP-bound tokens) cannot run here: the suite's
// authorization server knows no mandate exchange and its MCP server accepts only Bearer tokens, so
// the kit's client is exercised by the server-side run instead (conformance.test.ts). The user's
// consent is headless: the authorization URL is fetched without following the redirect, and the
// code read from its Location, as the suite's authorization server redirects at once.
import { type OAuthClientProvider, UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { ClientCredentialsProvider, PrivateKeyJwtProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from "@modelcontextprotocol/sdk/shared/auth.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const REDIRECT = "http://localhost:3000/callback";
/** The URL client id the suite's CIMD scenario expects (SEP-991). */
const CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json";
/** Authorization attempts per operation before giving up (the scope-retry-limit scenario allows 3). */
const MAX_AUTHORIZATIONS = 3;

interface Context {
  client_id?: string;
  client_secret?: string;
  private_key_pem?: string;
  signing_algorithm?: string;
}

/** A public or confidential client that authorizes with the code flow, consent given headlessly. */
class HeadlessCodeFlowProvider implements OAuthClientProvider {
  #client: OAuthClientInformationMixed | undefined;
  #tokens: OAuthTokens | undefined;
  #verifier = "";
  /** The code of the last authorization, for finishAuth. */
  code: string | undefined;
  readonly clientMetadataUrl: string | undefined;

  constructor(options: { preRegistered?: OAuthClientInformationMixed; clientMetadataUrl?: string }) {
    this.#client = options.preRegistered;
    this.clientMetadataUrl = options.clientMetadataUrl;
  }

  get redirectUrl(): string {
    return REDIRECT;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: "Mandate conformance client",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      ...(this.#client?.client_secret ? { token_endpoint_auth_method: "client_secret_basic" } : {}),
    };
  }

  clientInformation() {
    return this.#client;
  }

  saveClientInformation(information: OAuthClientInformationMixed): void {
    this.#client = information;
  }

  tokens() {
    return this.#tokens;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.#tokens = tokens;
  }

  async redirectToAuthorization(url: URL): Promise<void> {
    const response = await fetch(url, { redirect: "manual" });
    const location = response.headers.get("location");
    if (!location) throw new Error(`the authorization endpoint did not redirect (HTTP ${response.status})`);
    const code = new URL(location).searchParams.get("code");
    if (!code) throw new Error(`no code in the redirect: ${location}`);
    this.code = code;
  }

  saveCodeVerifier(verifier: string): void {
    this.#verifier = verifier;
  }

  codeVerifier(): string {
    return this.#verifier;
  }
}

function providerFor(scenario: string, context: Context): OAuthClientProvider {
  if (scenario === "auth/client-credentials-basic") {
    return new ClientCredentialsProvider({
      clientId: context.client_id as string,
      clientSecret: context.client_secret as string,
    });
  }
  if (scenario === "auth/client-credentials-jwt") {
    return new PrivateKeyJwtProvider({
      clientId: context.client_id as string,
      privateKey: context.private_key_pem as string,
      algorithm: context.signing_algorithm ?? "ES256",
    });
  }
  if (context.client_id) {
    return new HeadlessCodeFlowProvider({
      preRegistered: { client_id: context.client_id, client_secret: context.client_secret },
    });
  }
  return new HeadlessCodeFlowProvider({ clientMetadataUrl: CLIENT_METADATA_URL });
}

/** The MCP connection, with the code flow completed (at most MAX_AUTHORIZATIONS times) when asked. */
class AuthorizedSession {
  readonly client = new Client(
    { name: "mandate-conformance-client", version: "1.0.0" },
    { capabilities: { elicitation: { form: { applyDefaults: true } } } },
  );
  #transport: StreamableHTTPClientTransport;

  readonly url: URL;
  readonly provider: OAuthClientProvider;

  constructor(url: URL, provider: OAuthClientProvider) {
    this.url = url;
    this.provider = provider;
    this.#transport = this.#newTransport();
    // Accepted with nothing filled in: the SDK applies the schema's defaults (SEP-1034).
    this.client.setRequestHandler(ElicitRequestSchema, () => ({ action: "accept", content: {} }));
  }

  #newTransport(): StreamableHTTPClientTransport {
    return new StreamableHTTPClientTransport(this.url, { authProvider: this.provider });
  }

  connect(): Promise<void> {
    // A transport starts once: connecting again after the code flow takes a new one.
    return this.run(() => this.client.connect(this.#transport), true);
  }

  async run<T>(operation: () => Promise<T>, reconnect = false): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await operation();
      } catch (error) {
        const provider = this.provider instanceof HeadlessCodeFlowProvider ? this.provider : undefined;
        const code = provider?.code;
        if (!(error instanceof UnauthorizedError) || !provider || !code || attempt >= MAX_AUTHORIZATIONS) throw error;
        provider.code = undefined;
        await this.#transport.finishAuth(code);
        if (reconnect) this.#transport = this.#newTransport();
      }
    }
  }

  close(): Promise<void> {
    return this.#transport.close();
  }
}

/** What each scenario's server waits for once connected. */
async function exercise(scenario: string, session: AuthorizedSession): Promise<void> {
  const { client } = session;
  if (scenario === "initialize") return;
  if (scenario === "elicitation-sep1034-client-defaults") {
    await client.callTool({ name: "test_client_elicitation_defaults", arguments: {} });
  } else if (scenario === "tools_call") {
    await client.callTool({ name: "add_numbers", arguments: { a: 5, b: 3 } });
  } else if (scenario === "sse-retry") {
    await client.callTool({ name: "test_reconnection", arguments: {} });
  } else {
    const { tools } = await session.run(() => client.listTools());
    const tool = tools[0];
    if (tool) await session.run(() => client.callTool({ name: tool.name, arguments: {} }));
  }
}

async function main(): Promise<void> {
  const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? "";
  const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? "{}") as Context;
  const session = new AuthorizedSession(new URL(process.argv.at(-1) as string), providerFor(scenario, context));
  await session.connect();
  await exercise(scenario, session);
  await session.close();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
