// Client registration without an administrator: Dynamic Client Registration (RFC 7591) with its
// management protocol (RFC 7592), Client ID Metadata Documents fetched SSRF-safely, and the MCP
// TypeScript SDK completing its auth() flow both ways (DCR, and a URL-based client id) against a
// running `mandate dev`.
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { auth, type OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { isPublicAddress, safeFetch, UnsafeFetchError } from "../../services/shared/net/safe-fetch.ts";
import { ResourceServer } from "../../services/shared/oauth/resource-server.ts";
import { adminClient } from "../helpers/admin.ts";
import { Browser, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import { selfSignedCertificate } from "../helpers/tls.ts";

const insecure = { [oauth.allowInsecureRequests]: true };
let server: OAuthServer;
let as: oauth.AuthorizationServer;
let documents: Server;
let documentsBase: string;
const published = new Map<string, { body: unknown; type?: string }>();
let mcp: Server;
let mcpUrl: string;
/** The MCP server's authorization server: a tenant whose default resources name the MCP server (RFC 8707). */
let mcpIssuer: string;

const listen = (s: Server) =>
  new Promise<number>((resolve) => s.listen(0, "127.0.0.1", () => resolve((s.address() as AddressInfo).port)));

beforeAll(async () => {
  const tls = selfSignedCertificate();
  documents = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const doc = published.get(req.url ?? "");
    if (!doc) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": doc.type ?? "application/json", "cache-control": "max-age=60" });
    res.end(typeof doc.body === "string" ? doc.body : JSON.stringify(doc.body));
  });
  documentsBase = `https://127.0.0.1:${await listen(documents)}`;
  server = await startOAuthServer({
    NODE_EXTRA_CA_CERTS: tls.certFile,
    MANDATE_OAUTH_ALLOW_PRIVATE_METADATA_HOSTS: "true",
  });
  as = await oauth.processDiscoveryResponse(
    new URL(server.issuer),
    await oauth.discoveryRequest(new URL(server.issuer), { algorithm: "oauth2", ...insecure }),
  );
  // An MCP server's protected resource metadata (RFC 9728) naming Mandate as its authorization server.
  mcp = createHttpServer((req, res) => {
    if (req.url === "/.well-known/oauth-protected-resource/mcp") {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(
        JSON.stringify({ resource: mcpUrl, authorization_servers: [mcpIssuer], scopes_supported: ["mcp:tools"] }),
      );
    }
    res.writeHead(404).end();
  });
  mcpUrl = `http://127.0.0.1:${await listen(mcp)}/mcp`;
  // Clients registered dynamically (or by metadata document) may target only the tenant's default
  // resources: the tenant protecting the MCP server lists it.
  const tenants = adminClient(Tenants, server.process.summary.grpc as string, server.process.adminFile);
  await tenants.createTenant({ tenant: "mcp", defaultResources: [mcpUrl] });
  mcpIssuer = `${server.base}/t/mcp`;
}, 30_000);
afterAll(async () => {
  if (process.env.MANDATE_TEST_DEBUG) console.error(server?.process.stderr());
  await server?.stop();
  documents?.close();
  mcp?.close();
});

describe("Dynamic Client Registration (RFC 7591) and management (RFC 7592)", () => {
  it("registers a client that oauth4webapi accepts, then reads, updates and deletes it with the registration token", async () => {
    const response = await oauth.dynamicClientRegistrationRequest(
      as,
      {
        client_name: "Notes app",
        redirect_uris: ["https://notes.example/cb"],
        grant_types: ["authorization_code", "refresh_token"],
        scope: "notes.read",
      },
      insecure,
    );
    const registered = await oauth.processDynamicClientRegistrationResponse(response);
    expect(registered).toMatchObject({
      client_name: "Notes app",
      token_endpoint_auth_method: "client_secret_basic",
      client_secret_expires_at: 0,
    });
    expect(registered.client_secret).toBeTruthy();
    const token = registered.registration_access_token as string;
    const uri = registered.registration_client_uri as string;
    expect(uri).toBe(`${server.issuer}/oauth2/register/${registered.client_id}`);

    const read = await fetch(uri, { headers: { authorization: `Bearer ${token}` } });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({
      client_id: registered.client_id,
      redirect_uris: ["https://notes.example/cb"],
    });

    const put = (body: Record<string, unknown>, bearer = token) =>
      fetch(uri, {
        method: "PUT",
        headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const updated = await put({
      client_id: registered.client_id,
      client_name: "Notes",
      redirect_uris: ["https://notes.example/cb2"],
      scope: "notes.read",
    });
    expect(updated.status).toBe(200);
    expect(await updated.json()).toMatchObject({ client_name: "Notes", redirect_uris: ["https://notes.example/cb2"] });
    expect(await (await put({ client_id: "other", redirect_uris: ["https://notes.example/cb"] })).json()).toMatchObject(
      { error: "invalid_request" },
    );
    expect(
      await (
        await put({
          client_id: registered.client_id,
          redirect_uris: ["https://n.example/cb"],
          grant_types: ["client_credentials"],
        })
      ).json(),
    ).toMatchObject({ error: "invalid_client_metadata" });
    expect((await put({ client_id: registered.client_id }, "mrat_wrong")).status).toBe(401);

    const removed = await fetch(uri, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
    expect(removed.status).toBe(204);
    expect((await fetch(uri, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  it("refuses what open registration must not allow, and malformed metadata, with RFC 7591 §3.2.2 errors", async () => {
    const register = (body: unknown) =>
      fetch(as.registration_endpoint as string, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const machine = await register({ grant_types: ["client_credentials"] });
    expect(machine.status).toBe(400);
    expect(await machine.json()).toMatchObject({ error: "invalid_client_metadata" });
    expect(await (await register({ redirect_uris: ["http://evil.example/cb"] })).json()).toMatchObject({
      error: "invalid_redirect_uri",
    });
    expect(await (await register({ redirect_uris: "https://x.example/cb" })).json()).toMatchObject({
      error: "invalid_redirect_uri",
    });
    expect(await (await register([1, 2])).json()).toMatchObject({ error: "invalid_client_metadata" });
    const notJson = await fetch(as.registration_endpoint as string, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "x",
    });
    expect(await notJson.json()).toMatchObject({ error: "invalid_request" });
    // A public native client may use localhost (MCP), a confidential one may not (RFC 8252 §8.3).
    const native = await register({
      redirect_uris: ["http://localhost:33418/callback"],
      token_endpoint_auth_method: "none",
    });
    expect(native.status).toBe(201);
    expect((await register({ redirect_uris: ["http://localhost:33418/callback"] })).status).toBe(400);
  });
});

describe("Client ID Metadata Documents", () => {
  it("completes the code flow for a client identified by its https metadata URL", async () => {
    const clientId = `${documentsBase}/clients/tool.json`;
    published.set("/clients/tool.json", {
      body: {
        client_id: clientId,
        client_name: "Doc tool",
        redirect_uris: ["http://127.0.0.1:7777/cb"],
        token_endpoint_auth_method: "none",
      },
    });
    const client = { client_id: clientId, token_endpoint_auth_method: "none" };
    const verifier = oauth.generateRandomCodeVerifier();
    const url = `${as.authorization_endpoint}?${new URLSearchParams({
      client_id: clientId,
      redirect_uri: "http://127.0.0.1:7777/cb",
      response_type: "code",
      scope: "openid",
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
    })}`;
    const browser = new Browser();
    const callback = await browser.authorize(url, "http://127.0.0.1:7777/cb");
    expect(browser.pages.some((p) => p.includes("Doc tool"))).toBe(true);
    const params = oauth.validateAuthResponse(as, client, callback, oauth.skipStateCheck);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(
        as,
        client,
        oauth.None(),
        params,
        "http://127.0.0.1:7777/cb",
        verifier,
        insecure,
      ),
    );
    expect(tokens.access_token).toBeTruthy();
  });

  it("refuses documents that do not name themselves, carry secrets, or are not JSON", async () => {
    const cases: Array<[string, { body: unknown; type?: string }, RegExp]> = [
      [
        "/clients/liar.json",
        { body: { client_id: "https://elsewhere.example/c.json", redirect_uris: ["https://a.example/cb"] } },
        /client_id differs from the document URL/,
      ],
      [
        "/clients/secret.json",
        { body: { redirect_uris: ["https://a.example/cb"], client_secret: "x" } },
        /client secret/,
      ],
      ["/clients/html.json", { body: "<html>", type: "text/html" }, /application\/json/],
    ];
    for (const [path, doc, message] of cases) {
      const clientId = `${documentsBase}${path}`;
      if (path !== "/clients/liar.json" && typeof doc.body === "object")
        (doc.body as Record<string, unknown>).client_id = clientId;
      published.set(path, doc);
      const response = await new Browser().get(
        `${as.authorization_endpoint}?${new URLSearchParams({ client_id: clientId, response_type: "code", redirect_uri: "https://a.example/cb" })}`,
      );
      expect(response.status).toBe(400);
      expect(response.headers.get("location")).toBeNull();
      expect(await response.text()).toMatch(message);
    }
  });

  it("fetches only public https addresses, without redirects (SSRF)", async () => {
    expect(isPublicAddress("93.184.216.34")).toBe(true);
    expect(isPublicAddress("2606:2800:220:1:248:1893:25c8:1946")).toBe(true);
    for (const address of [
      "127.0.0.1",
      "10.1.2.3",
      "172.16.0.1",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "::1",
      "fe80::1",
      "fd00::1",
      "::ffff:127.0.0.1",
      "::ffff:10.0.0.1",
    ]) {
      expect(isPublicAddress(address), address).toBe(false);
    }
    const refuse = async (url: string) => {
      await expect(safeFetch(url, { maxBytes: 1024, timeoutMs: 2000 })).rejects.toBeInstanceOf(UnsafeFetchError);
    };
    await refuse("http://example.com/doc.json");
    await refuse(`${documentsBase}/clients/tool.json`); // loopback, and the guard is on
    await refuse("https://169.254.169.254/latest/meta-data");
    await refuse("https://user:pw@example.com/x");
  });
});

/** An MCP client's OAuth state, in memory, as a desktop app would keep it. */
class McpClientState implements OAuthClientProvider {
  client: Record<string, unknown> | undefined;
  saved: Record<string, unknown> | undefined;
  verifier = "";
  authorizationUrl: URL | undefined;
  readonly clientMetadataUrl: string | undefined;
  constructor(clientMetadataUrl?: string) {
    this.clientMetadataUrl = clientMetadataUrl;
  }
  get redirectUrl() {
    return "http://127.0.0.1:8765/callback";
  }
  get clientMetadata() {
    return {
      client_name: "MCP test client",
      redirect_uris: ["http://127.0.0.1:8765/callback"],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this.client as never;
  }
  saveClientInformation(info: Record<string, unknown>) {
    this.client = info;
  }
  tokens() {
    return this.saved as never;
  }
  saveTokens(tokens: Record<string, unknown>) {
    this.saved = tokens;
  }
  redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

describe("MCP TypeScript SDK auth()", () => {
  async function mcpLogin(provider: McpClientState) {
    expect(await auth(provider, { serverUrl: mcpUrl })).toBe("REDIRECT");
    const url = provider.authorizationUrl as URL;
    expect(url.searchParams.get("resource")).toBe(mcpUrl); // RFC 8707, from the resource metadata
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
    const callback = await new Browser().authorize(url.toString(), provider.redirectUrl);
    expect(callback.searchParams.get("iss")).toBe(mcpIssuer);
    expect(
      await auth(provider, { serverUrl: mcpUrl, authorizationCode: callback.searchParams.get("code") as string }),
    ).toBe("AUTHORIZED");
    const tokens = provider.saved as { access_token: string; refresh_token?: string };
    // The MCP server can verify the token locally: audience is the MCP server (RFC 8707).
    const claims = await new ResourceServer({ issuer: mcpIssuer, audience: mcpUrl }).verify({
      method: "POST",
      url: mcpUrl,
      authorization: `Bearer ${tokens.access_token}`,
      dpop: undefined,
    });
    expect(claims.sub).toBe("dev-alice");
    return { tokens, claims };
  }

  it("discovers, registers dynamically, runs PKCE with resource, and gets a token for the MCP server", async () => {
    const provider = new McpClientState();
    const { tokens } = await mcpLogin(provider);
    expect(provider.client?.client_id).toBeTruthy();
    expect(tokens.refresh_token).toBeTruthy();
  });

  it("uses a client ID metadata document when the server advertises support", async () => {
    const clientId = `${documentsBase}/clients/mcp.json`;
    const provider = new McpClientState(clientId);
    // The document declares the scope the MCP server asks for, as a registration would.
    published.set("/clients/mcp.json", {
      body: { client_id: clientId, ...provider.clientMetadata, scope: "mcp:tools" },
    });
    const { claims } = await mcpLogin(provider);
    expect(claims.client_id).toBe(clientId);
  });
});
