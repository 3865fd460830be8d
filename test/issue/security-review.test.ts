// Regression tests of the OAuth security review, each reproducing its report against a running
// `mandate dev`: SSRF through jwks_uri and metadata documents (and the IPv6 / special-name gaps of
// the block list), the open redirect through dynamically registered clients, introspection and
// revocation across clients, resources any client could target, code replay by another client,
// loopback ports of confidential clients, and unbounded anonymous registration.
import { createHash, randomBytes } from "node:crypto";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createTcpServer, type Server as TcpServer } from "node:net";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import {
  fetchTargetProblem,
  isPublicAddress,
  isSpecialUseHostname,
  safeFetch,
  UnsafeFetchError,
} from "../../services/shared/net/safe-fetch.ts";
import { Store } from "../../services/shared/store/store.ts";
import { adminClient } from "../helpers/admin.ts";
import { Browser, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import { listen, selfSignedCertificate } from "../helpers/tls.ts";

const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const GENERIC = { error: "invalid_client", error_description: "client authentication failed" };
const REDIRECT = "https://app.example.com/callback";

/** The SSRF guard is on here (the default); no test-only switch. */
let server: OAuthServer;
/** A TCP listener on loopback that must never see a connection from Mandate. */
let canary: TcpServer;
let canaryPort: number;
let canaryConnections = 0;

beforeAll(async () => {
  canary = createTcpServer((socket) => {
    canaryConnections++;
    socket.destroy();
  });
  canaryPort = await listen(canary);
  server = await startOAuthServer({ MANDATE_RATE_LIMITS_REGISTRATION: "10:500" });
}, 60_000);
afterAll(async () => {
  if (process.env.MANDATE_TEST_DEBUG) console.error(server?.process.stderr());
  await server?.stop();
  canary?.close();
});

const post = (url: string, body: Record<string, string>, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(body),
  });
const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64")}`;
const register = (body: unknown, issuer = server.issuer) =>
  fetch(`${issuer}/oauth2/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
const json = async (response: Response) => ({ status: response.status, body: await response.json() });

async function clientCredentials(
  id: string,
  secret: string,
  extra: Record<string, string> = {},
  issuer = server.issuer,
) {
  return json(
    await post(
      `${issuer}/oauth2/token`,
      { grant_type: "client_credentials", ...extra },
      { authorization: basic(id, secret) },
    ),
  );
}

async function assertion(clientId: string, key: CryptoKey, aud: string) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomBytes(16).toString("hex") })
    .setProtectedHeader({ alg: "ES256", kid: "k1" })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(aud)
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .sign(key);
}

function pkce() {
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
}

function authorizeUrl(params: Record<string, string>, issuer = server.issuer): string {
  return `${issuer}/oauth2/authorize?${new URLSearchParams(params)}`;
}

/** The code flow of a confidential client through login and consent; the browser keeps its session. */
async function codeFlow(client: { clientId: string; clientSecret: string }, browser = new Browser(), scope = "openid") {
  const { verifier, challenge } = pkce();
  const callback = await browser.authorize(
    authorizeUrl({
      client_id: client.clientId,
      redirect_uri: REDIRECT,
      response_type: "code",
      scope,
      code_challenge: challenge,
      code_challenge_method: "S256",
    }),
    REDIRECT,
  );
  const code = callback.searchParams.get("code") as string;
  const redeem = (id: string, secret: string) =>
    post(
      `${server.issuer}/oauth2/token`,
      { grant_type: "authorization_code", code, redirect_uri: REDIRECT, code_verifier: verifier },
      { authorization: basic(id, secret) },
    );
  const tokens = await json(await redeem(client.clientId, client.clientSecret));
  expect(tokens.status).toBe(200);
  return { tokens: tokens.body as Record<string, string>, redeem, browser };
}

async function introspect(id: string, secret: string, token: string) {
  return json(await post(`${server.issuer}/oauth2/introspect`, { token }, { authorization: basic(id, secret) }));
}

/** Rows as a client registered before this review could have left them (no check on jwks_uri then). */
async function insertLegacyClient(clientId: string, jwksUri: string): Promise<void> {
  const store = Store.open({ url: server.database });
  try {
    await store
      .forTenant("demo")
      .db.insertInto("oauth_clients")
      .values({
        tenant_id: "demo",
        client_id: clientId,
        metadata: JSON.stringify({
          client_name: "legacy",
          redirect_uris: [],
          token_endpoint_auth_method: "private_key_jwt",
          grant_types: ["client_credentials"],
          response_types: [],
          scope: "",
          jwks_uri: jwksUri,
          require_pushed_authorization_requests: false,
          dpop_bound_access_tokens: false,
        }),
        secret_hash: null,
        created_at: Date.now(),
      })
      .execute();
  } finally {
    await store.close();
  }
}

describe("1. SSRF through jwks_uri (High)", () => {
  const privateJwksUris = () => [
    `https://127.0.0.1:${canaryPort}/x`,
    "https://169.254.169.254/latest/meta-data/keys",
    `https://localhost:${canaryPort}/x`,
    `https://localhost.:${canaryPort}/x`,
    `https://[::7f00:1]:${canaryPort}/x`,
    `https://[::ffff:127.0.0.1]:${canaryPort}/x`,
    `https://[2002:7f00:1::1]:${canaryPort}/x`,
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://printer.local/x",
    `https://2130706433:${canaryPort}/x`,
  ];

  it("refuses private, loopback and link-local jwks_uri at registration (DCR and admin API), naming jwks_uri", async () => {
    for (const jwksUri of privateJwksUris()) {
      const response = await register({
        redirect_uris: [REDIRECT],
        token_endpoint_auth_method: "private_key_jwt",
        jwks_uri: jwksUri,
      });
      expect(response.status, jwksUri).toBe(400);
      const body = await response.json();
      expect(body.error, jwksUri).toBe("invalid_client_metadata");
      expect(body.error_description, jwksUri).toMatch(/^jwks_uri: /);
    }
    await expect(
      server.register({
        grantTypes: ["client_credentials"],
        tokenEndpointAuthMethod: "private_key_jwt",
        jwksUri: "https://169.254.169.254/keys",
      }),
    ).rejects.toThrow(/jwks_uri/);
    expect(canaryConnections).toBe(0);
  });

  it("never connects to a private jwks_uri stored earlier, and every failure reads like a wrong secret", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const answers = [];
    for (const [i, jwksUri] of privateJwksUris().entries()) {
      const clientId = `legacy-${i}-${randomBytes(4).toString("hex")}`;
      await insertLegacyClient(clientId, jwksUri);
      const response = await post(`${server.issuer}/oauth2/token`, {
        grant_type: "client_credentials",
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: await assertion(clientId, privateKey, server.issuer),
      });
      answers.push({ status: response.status, body: await response.json() });
    }
    // An unknown client answers the same.
    const unknown = await post(`${server.issuer}/oauth2/token`, {
      grant_type: "client_credentials",
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await assertion("nobody", privateKey, server.issuer),
    });
    answers.push({ status: unknown.status, body: await unknown.json() });
    for (const answer of answers) expect(answer).toEqual({ status: 401, body: GENERIC });
    expect(canaryConnections).toBe(0);
  });
});

describe("1. every way a fetch can fail looks the same (test hosts allowed: oauth.allowPrivateMetadataHosts)", () => {
  let lab: OAuthServer;
  let jwksBase: string;
  let keys: { privateKey: CryptoKey; jwk: Record<string, unknown> };
  const served = new Set<string>();

  beforeAll(async () => {
    const pair = await generateKeyPair("ES256");
    keys = { privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256" } };
    const tls = selfSignedCertificate();
    const https = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      served.add(req.url ?? "");
      switch (req.url) {
        case "/ok":
          return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [keys.jwk] }));
        case "/500":
          return res.writeHead(500).end("boom");
        case "/html":
          return res.writeHead(200, { "content-type": "text/html" }).end("<html>");
        case "/not-a-set":
          return res.writeHead(200, { "content-type": "application/json" }).end('{"a":1}');
        case "/redirect":
          return res.writeHead(302, { location: "/ok" }).end();
        case "/hang":
          return; // never answers: the fetch deadline ends it
        default:
          return res.writeHead(404).end();
      }
    });
    jwksBase = `https://127.0.0.1:${await listen(https)}`;
    lab = await startOAuthServer({
      NODE_EXTRA_CA_CERTS: tls.certFile,
      MANDATE_OAUTH_ALLOW_PRIVATE_METADATA_HOSTS: "true",
    });
    return () => {
      https.close();
    };
  }, 60_000);
  afterAll(async () => {
    await lab?.stop();
  });

  it("JWKS at a closed port, HTTP 404 / 500, not JSON, not a JWK Set, a redirect or a timeout: one invalid_client", async () => {
    const closed = createTcpServer();
    const closedPort = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));
    const uris = [
      `https://127.0.0.1:${closedPort}/keys`,
      `${jwksBase}/missing`,
      `${jwksBase}/500`,
      `${jwksBase}/html`,
      `${jwksBase}/not-a-set`,
      `${jwksBase}/redirect`,
      `${jwksBase}/hang`,
    ];
    const answers = await Promise.all(
      uris.map(async (jwksUri) => {
        const { clientId } = await lab.register({
          grantTypes: ["client_credentials"],
          tokenEndpointAuthMethod: "private_key_jwt",
          jwksUri,
        });
        const response = await post(`${lab.issuer}/oauth2/token`, {
          grant_type: "client_credentials",
          client_assertion_type: ASSERTION_TYPE,
          client_assertion: await assertion(clientId, keys.privateKey, lab.issuer),
        });
        return { status: response.status, body: await response.json() };
      }),
    );
    for (const answer of answers) expect(answer).toEqual({ status: 401, body: GENERIC });
    // The fetcher really fetches: the same path with a good JWK Set authenticates.
    const { clientId } = await lab.register({
      grantTypes: ["client_credentials"],
      tokenEndpointAuthMethod: "private_key_jwt",
      jwksUri: `${jwksBase}/ok`,
    });
    const ok = await post(`${lab.issuer}/oauth2/token`, {
      grant_type: "client_credentials",
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await assertion(clientId, keys.privateKey, lab.issuer),
    });
    expect(ok.status).toBe(200);
    expect(served.has("/ok")).toBe(true);
  }, 30_000);

  it("a metadata-document client id that cannot be fetched: the same invalid_client, the same page", async () => {
    const ids = [`${jwksBase}/missing/client.json`, `${jwksBase}/500/client.json`, `${jwksBase}/hang/client.json`];
    const tokens = await Promise.all(
      ids.map(async (clientId) =>
        json(
          await post(`${lab.issuer}/oauth2/token`, {
            grant_type: "authorization_code",
            code: "x",
            client_id: clientId,
          }),
        ),
      ),
    );
    for (const answer of tokens) expect(answer).toEqual({ status: 401, body: GENERIC });
    for (const clientId of ids) {
      const page = await fetch(
        authorizeUrl({ client_id: clientId, response_type: "code", redirect_uri: "https://a.example/cb" }, lab.issuer),
      );
      expect(page.status).toBe(400);
      expect(await page.text()).toContain("the client metadata document could not be retrieved");
    }
  }, 30_000);
});

describe("6. SSRF block-list gaps (Low)", () => {
  it("refuses every IPv4-embedding and special-purpose IPv6 form, and keeps public addresses", () => {
    for (const address of [
      "::7f00:1", // ::/96 IPv4-compatible
      "::a00:1",
      "::",
      "::1",
      "::ffff:127.0.0.1", // mapped: judged by the IPv4 address
      "::ffff:7f00:1",
      "::ffff:169.254.169.254",
      "::ffff:0:7f00:1", // IPv4-translated
      "2002:7f00:1::1", // 6to4 of 127.0.0.1
      "2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
      "2002:c0a8:101::1", // 6to4 of 192.168.1.1
      "64:ff9b::7f00:1", // NAT64 well-known prefix
      "64:ff9b::808:808",
      "64:ff9b:1::a00:1", // local-use NAT64
      "fec0::1", // site-local
      "2001::1", // Teredo
      "2001:0:4136:e378:8000:63bf:3fff:fdd2",
      "2001:db8::1",
      "2607:f8b0::200:5efe:7f00:1", // ISATAP interface id embedding 127.0.0.1
      "fd00::1",
      "fe80::1",
      "ff02::1",
      "100::1",
      "169.254.169.254",
      "100.64.0.1",
      "192.0.0.8",
      "198.18.0.1",
      "240.0.0.1",
      "255.255.255.255",
      "fe80::1%eth0",
    ]) {
      expect(isPublicAddress(address), address).toBe(false);
    }
    for (const address of [
      "93.184.215.14",
      "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
      "::ffff:93.184.215.14",
      "2002:5db8:d70e::1",
    ]) {
      expect(isPublicAddress(address), address).toBe(true);
    }
  });

  it("refuses local and special-use names without a DNS query", () => {
    for (const host of [
      "localhost",
      "localhost.",
      "api.localhost",
      "api.localhost.",
      "printer.local",
      "metadata.google.internal",
      "intranet",
      "example.com.",
      "router.home.arpa",
      "1.0.0.127.in-addr.arpa",
    ]) {
      expect(isSpecialUseHostname(host), host).toBe(true);
      expect(fetchTargetProblem(`https://${host}/x`), host).toMatch(/local or special-use name/);
    }
    expect(isSpecialUseHostname("keys.example.com")).toBe(false);
  });

  it("never connects to [::7f00:1] (it reached connect() before)", async () => {
    const error = await safeFetch(`https://[::7f00:1]:${canaryPort}/x`, { maxBytes: 1024, timeoutMs: 2000 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UnsafeFetchError);
    expect(canaryConnections).toBe(0);
  });

  it("answers 400 (no lookup, no 500) for a metadata document at localhost.", async () => {
    const response = await fetch(
      authorizeUrl({ client_id: "https://localhost./client.json", response_type: "code", redirect_uri: REDIRECT }),
    );
    expect(response.status).toBe(400);
    expect(await response.text()).toContain("could not be retrieved");
    const token = await post(`${server.issuer}/oauth2/token`, {
      grant_type: "authorization_code",
      code: "x",
      client_id: "https://localhost./client.json",
    });
    expect(await json(token)).toEqual({ status: 401, body: GENERIC });
  });
});

describe("2. open redirect through dynamically registered clients (Medium)", () => {
  it("shows a page naming the destination instead of redirecting to an unapproved client (also with prompt=none)", async () => {
    const registered = await (await register({ redirect_uris: ["https://evil.example/phish"] })).json();
    const { challenge } = pkce();
    const requests: Array<Record<string, string>> = [
      { client_id: registered.client_id, redirect_uri: "https://evil.example/phish", response_type: "x" },
      {
        client_id: registered.client_id,
        redirect_uri: "https://evil.example/phish",
        response_type: "code",
        prompt: "none",
        code_challenge: challenge,
        code_challenge_method: "S256",
      },
    ];
    for (const params of requests) {
      const response = await new Browser().get(authorizeUrl(params));
      expect(response.status).toBe(200);
      expect(response.headers.get("location")).toBeNull();
      expect(response.headers.get("x-frame-options")).toBe("DENY");
      expect(response.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
      const html = await response.text();
      expect(html).toContain("<strong>evil.example</strong>");
      expect(html).toMatch(/<a class="primary" href="https:\/\/evil\.example\/phish\?error=/);
      expect(html).not.toMatch(/http-equiv|<script/i);
    }
  });

  it("still redirects for a client an administrator registered, and for one this user approved", async () => {
    const admin = await server.register({ redirectUris: [REDIRECT], scope: "openid" });
    const adminError = await new Browser().get(
      authorizeUrl({ client_id: admin.clientId, redirect_uri: REDIRECT, response_type: "x" }),
    );
    expect(adminError.status).toBe(303);
    expect(adminError.headers.get("location")).toMatch(
      /^https:\/\/app\.example\.com\/callback\?error=unsupported_response_type/,
    );

    const dynamic = await (await register({ redirect_uris: [REDIRECT] })).json();
    const browser = new Browser();
    // The user signs in and approves the client: from now on it is theirs to be sent to.
    await codeFlow({ clientId: dynamic.client_id, clientSecret: dynamic.client_secret }, browser);
    const approved = await browser.get(
      authorizeUrl({ client_id: dynamic.client_id, redirect_uri: REDIRECT, response_type: "x" }),
    );
    expect(approved.status).toBe(303);
    // Another browser (another user, or nobody) still gets the page.
    const stranger = await new Browser().get(
      authorizeUrl({ client_id: dynamic.client_id, redirect_uri: REDIRECT, response_type: "x" }),
    );
    expect(stranger.status).toBe(200);
    // A client that changes its redirect URIs (RFC 7592) needs the user's approval again.
    const moved = await fetch(dynamic.registration_client_uri, {
      method: "PUT",
      headers: { authorization: `Bearer ${dynamic.registration_access_token}`, "content-type": "application/json" },
      body: JSON.stringify({ client_id: dynamic.client_id, redirect_uris: [REDIRECT, "https://evil.example/phish"] }),
    });
    expect(moved.status).toBe(200);
    const after = await browser.get(
      authorizeUrl({ client_id: dynamic.client_id, redirect_uri: "https://evil.example/phish", response_type: "x" }),
    );
    expect(after.status).toBe(200);
    expect(await after.text()).toContain("<strong>evil.example</strong>");
  });
});

describe("3. introspection restricted to the token's client, its audience and mandate:introspect (Low)", () => {
  it("an anonymous or unrelated client learns nothing; refresh tokens only to their own client", async () => {
    const app = await server.register({
      redirectUris: [REDIRECT],
      grantTypes: ["authorization_code", "refresh_token"],
    });
    const { tokens } = await codeFlow(app);
    const anonymous = await (
      await register({ redirect_uris: ["https://anon.example/cb"], grant_types: ["authorization_code"] })
    ).json();
    const rs = await server.register({ grantTypes: ["client_credentials"], scope: "mandate:introspect" });
    const other = await server.register({ grantTypes: ["client_credentials"], scope: "x" });

    expect((await introspect(app.clientId, app.clientSecret, tokens.access_token as string)).body.active).toBe(true);
    expect((await introspect(app.clientId, app.clientSecret, tokens.refresh_token as string)).body.active).toBe(true);
    for (const [id, secret] of [
      [anonymous.client_id, anonymous.client_secret],
      [other.clientId, other.clientSecret],
    ] as const) {
      expect(await introspect(id, secret, tokens.access_token as string)).toEqual({
        status: 200,
        body: { active: false },
      });
      expect(await introspect(id, secret, tokens.refresh_token as string)).toEqual({
        status: 200,
        body: { active: false },
      });
    }
    // A resource server with mandate:introspect sees access tokens, never another client's refresh token.
    expect((await introspect(rs.clientId, rs.clientSecret, tokens.access_token as string)).body.active).toBe(true);
    expect(await introspect(rs.clientId, rs.clientSecret, tokens.refresh_token as string)).toEqual({
      status: 200,
      body: { active: false },
    });
  });
});

describe("4. resources (RFC 8707) per client and per tenant (Low)", () => {
  it("refuses any resource a client did not register (client_credentials, authorization and token requests)", async () => {
    const plain = await server.register({ grantTypes: ["client_credentials"], scope: "a" });
    expect(
      await clientCredentials(plain.clientId, plain.clientSecret, { resource: "https://payroll.internal.example/" }),
    ).toMatchObject({
      status: 400,
      body: { error: "invalid_target" },
    });
    // No resource: a token for the issuer itself, as before.
    expect((await clientCredentials(plain.clientId, plain.clientSecret)).status).toBe(200);

    const api = await server.register({
      grantTypes: ["client_credentials"],
      scope: "a",
      resources: ["https://api.example.com/"],
    });
    expect(
      (await clientCredentials(api.clientId, api.clientSecret, { resource: "https://api.example.com/" })).status,
    ).toBe(200);
    expect(
      await clientCredentials(api.clientId, api.clientSecret, { resource: "https://payroll.internal.example/" }),
    ).toMatchObject({
      body: { error: "invalid_target" },
    });

    // At the authorization endpoint the error goes back to the (trusted) redirect URI.
    const web = await server.register({ redirectUris: [REDIRECT], resources: ["https://api.example.com/"] });
    const { challenge } = pkce();
    const response = await new Browser().get(
      authorizeUrl({
        client_id: web.clientId,
        redirect_uri: REDIRECT,
        response_type: "code",
        scope: "openid",
        code_challenge: challenge,
        code_challenge_method: "S256",
        resource: "https://payroll.internal.example/",
      }),
    );
    expect(new URL(response.headers.get("location") as string).searchParams.get("error")).toBe("invalid_target");
    // PAR too.
    const par = await post(
      `${server.issuer}/oauth2/par`,
      {
        redirect_uri: REDIRECT,
        response_type: "code",
        code_challenge: challenge,
        code_challenge_method: "S256",
        resource: "https://payroll.internal.example/",
      },
      { authorization: basic(web.clientId, web.clientSecret) },
    );
    expect(await json(par)).toMatchObject({ status: 400, body: { error: "invalid_target" } });
  });

  it("a tenant's default_resources apply to clients without their own, anonymous registrations included", async () => {
    const tenants = adminClient(Tenants, server.process.summary.grpc as string, server.process.adminFile);
    const created = await tenants.createTenant({ tenant: "acme", defaultResources: ["https://api.acme.example/"] });
    expect(created.tenant?.defaultResources).toEqual(["https://api.acme.example/"]);
    const acme = `${server.base}/t/acme`;
    const client = await server.register({ grantTypes: ["client_credentials"], scope: "a" }, "acme");
    expect(
      (await clientCredentials(client.clientId, client.clientSecret, { resource: "https://api.acme.example/" }, acme))
        .status,
    ).toBe(200);
    expect(
      await clientCredentials(client.clientId, client.clientSecret, { resource: "https://api.example.com/" }, acme),
    ).toMatchObject({ body: { error: "invalid_target" } });
    // An anonymous registration may narrow to the tenant's resources, not add others.
    expect((await register({ redirect_uris: [REDIRECT], resources: ["https://api.acme.example/"] }, acme)).status).toBe(
      201,
    );
    expect(
      await json(await register({ redirect_uris: [REDIRECT], resources: ["https://payroll.internal.example/"] }, acme)),
    ).toMatchObject({ status: 400, body: { error: "invalid_client_metadata" } });
    await expect(tenants.createTenant({ tenant: "bad", defaultResources: ["not a uri"] })).rejects.toThrow(
      /default_resources/,
    );
  });
});

describe("5. code replay by another client (Low)", () => {
  it("another client presenting a used code gets invalid_grant and the owner's grant survives", async () => {
    const owner = await server.register({
      redirectUris: [REDIRECT],
      grantTypes: ["authorization_code", "refresh_token"],
    });
    const intruder = await server.register({ redirectUris: [REDIRECT] });
    const { tokens, redeem } = await codeFlow(owner);
    const replay = await json(await redeem(intruder.clientId, intruder.clientSecret));
    expect(replay).toEqual({
      status: 400,
      body: { error: "invalid_grant", error_description: "the authorization code is invalid" },
    });
    expect((await introspect(owner.clientId, owner.clientSecret, tokens.access_token as string)).body.active).toBe(
      true,
    );
    expect((await introspect(owner.clientId, owner.clientSecret, tokens.refresh_token as string)).body.active).toBe(
      true,
    );
    // The owner replaying its own code still revokes the grant (RFC 6749 §4.1.2).
    expect((await redeem(owner.clientId, owner.clientSecret)).status).toBe(400);
    expect((await introspect(owner.clientId, owner.clientSecret, tokens.access_token as string)).body.active).toBe(
      false,
    );
  });
});

describe("8. loopback redirect ports (Low)", () => {
  it("any port for a native public client; the exact registered URI for a confidential one", async () => {
    const confidential = await server.register({ redirectUris: ["http://127.0.0.1:8080/cb"] });
    const native = await server.register({
      redirectUris: ["http://127.0.0.1:8080/cb"],
      tokenEndpointAuthMethod: "none",
    });
    const { challenge } = pkce();
    const request = (clientId: string, redirect: string) =>
      new Browser().get(
        authorizeUrl({
          client_id: clientId,
          redirect_uri: redirect,
          response_type: "code",
          code_challenge: challenge,
          code_challenge_method: "S256",
        }),
      );
    const moved = await request(confidential.clientId, "http://127.0.0.1:9999/cb");
    expect(moved.status).toBe(400);
    expect(await moved.text()).toContain("redirect_uri is not registered");
    expect((await request(confidential.clientId, "http://127.0.0.1:8080/cb")).status).toBe(303);
    expect((await request(native.clientId, "http://127.0.0.1:9999/cb")).status).toBe(303);
  });
});

describe("9. bounded anonymous registration (Low)", () => {
  it("caps sizes and counts, and refuses the reserved mandate: scopes and administrator settings", async () => {
    const cases: Array<[unknown, string, RegExp]> = [
      [{ redirect_uris: [REDIRECT], client_name: "x".repeat(201) }, "invalid_client_metadata", /client_name/],
      [
        { redirect_uris: Array.from({ length: 21 }, (_, i) => `https://app.example.com/cb${i}`) },
        "invalid_redirect_uri",
        /redirect_uris/,
      ],
      [{ redirect_uris: [`https://app.example.com/${"a".repeat(2100)}`] }, "invalid_redirect_uri", /2048/],
      [
        { redirect_uris: [REDIRECT], scope: Array.from({ length: 21 }, (_, i) => `s${i}`).join(" ") },
        "invalid_client_metadata",
        /scope/,
      ],
      [{ redirect_uris: [REDIRECT], scope: "x".repeat(101) }, "invalid_client_metadata", /scope/],
      [{ redirect_uris: [REDIRECT], scope: "openid mandate:admin" }, "invalid_client_metadata", /reserved/],
      [{ redirect_uris: [REDIRECT], scope: "mandate:introspect" }, "invalid_client_metadata", /reserved/],
      [
        { redirect_uris: [REDIRECT], rate_limit: { requests_per_second: 1000, burst: 1000 } },
        "invalid_client_metadata",
        /rate_limit/,
      ],
    ];
    for (const [body, error, description] of cases) {
      const answer = await json(await register(body));
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe(error);
      expect(answer.body.error_description).toMatch(description);
    }
    // RFC 7592 updates are held to the same rules.
    const registered = await (await register({ redirect_uris: [REDIRECT] })).json();
    const update = await fetch(registered.registration_client_uri, {
      method: "PUT",
      headers: { authorization: `Bearer ${registered.registration_access_token}`, "content-type": "application/json" },
      body: JSON.stringify({
        client_id: registered.client_id,
        redirect_uris: [REDIRECT],
        scope: "mandate:tenant-admin",
      }),
    });
    expect(await json(update)).toMatchObject({ status: 400, body: { error: "invalid_client_metadata" } });
  });
});

describe("10. revocation does not tell a live token of another client from an invalid one (Low)", () => {
  it("answers 200 and revokes nothing", async () => {
    const owner = await server.register({ grantTypes: ["client_credentials"], scope: "a" });
    const other = await server.register({ grantTypes: ["client_credentials"], scope: "a" });
    const { body } = await clientCredentials(owner.clientId, owner.clientSecret);
    const revoke = (token: string) =>
      post(`${server.issuer}/oauth2/revoke`, { token }, { authorization: basic(other.clientId, other.clientSecret) });
    const live = await revoke(body.access_token);
    const invalid = await revoke("not-a-token");
    expect([live.status, await live.text()]).toEqual([invalid.status, await invalid.text()]);
    expect(live.status).toBe(200);
    expect((await introspect(owner.clientId, owner.clientSecret, body.access_token)).body.active).toBe(true);
  });
});
