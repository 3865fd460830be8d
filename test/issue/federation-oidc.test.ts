// Human login through a tenant's upstream OpenID Connect IdPs (issue 18 item 1) against a running
// `mandate dev` over real HTTP: the IdP is a small node:https peer (a certificate made by openssl,
// trusted by the Mandate process through NODE_EXTRA_CA_CERTS) publishing discovery and a JWK Set,
// checking PKCE and the client secret at its token endpoint, and signing ID tokens with jose. Each
// test decides what the IdP answers, so every refusal of openid-client's validation and of the
// presets is driven by a real protocol exchange: wrong nonce, aud, issuer, expired, alg none, HS256
// keyed with the public key, wrong Entra `tid`, missing or wrong Google `hd`, state replay and
// mismatch. Refusals end on a page, with no session and the authorization request not resumed.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import {
  base64url,
  createRemoteJWKSet,
  decodeJwt,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { checkPreset, oidcSettingsProblem } from "../../services/issue/identity/federation/oidc.ts";
import { IdentityProviders, type NewIdentityProvider } from "../../services/issue/identity/federation/registry.ts";
import { FederationSecrets } from "../../services/issue/identity/federation/sealing.ts";
import { Store } from "../../services/shared/store/store.ts";
import { Browser, type OAuthServer, redeemPublicCode, startOAuthServer } from "../helpers/oauth-server.ts";
import { listen, selfSignedCertificate } from "../helpers/tls.ts";

const TENANT = "demo";
const ENTRA_TID = "3f1c2b6e-8a4d-4c1e-9b7a-5d2e6f8a9c01";
const OTHER_TID = "0b9e8d7c-6a5b-4c3d-8e2f-1a0b9c8d7e6f";
const CLIENT_SECRET = "upstream-client-secret";
const FEDERATION_KEY = randomBytes(32).toString("base64url");
const REDIRECT_URI = "https://app.example/cb";
const MFA_ACR = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";

/** How the IdP's next ID token differs from a correct one. */
interface Tamper {
  claims?: JWTPayload;
  /** "none": unsigned; "hs256-public-key": HMAC keyed with the IdP's public key (alg confusion). */
  sign?: "none" | "hs256-public-key";
  drop?: string[];
}

/** A minimal OpenID provider hosting several issuers (Entra-, Okta- and Google-shaped) on one port. */
class UpstreamIdp {
  server!: Server;
  base = "";
  #key!: CryptoKey;
  #publicJwk!: JWK;
  #publicPem = "";
  #codes = new Map<
    string,
    {
      issuer: string;
      clientId: string;
      nonce: string;
      challenge: string;
      redirectUri: string;
      reauthenticated: boolean;
    }
  >();
  tamper: Tamper = {};
  /** Extra claims per issuer path (tid, hd). */
  claims = new Map<string, JWTPayload>();

  async start(): Promise<void> {
    const pair = await generateKeyPair("RS256");
    this.#key = pair.privateKey;
    this.#publicJwk = { ...(await exportJWK(pair.publicKey)), kid: "idp-1", alg: "RS256", use: "sig" };
    this.#publicPem = await exportSPKI(pair.publicKey);
    const tls = selfSignedCertificate();
    this.server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      this.#handle(req, res).catch((error) => {
        res.writeHead(500);
        res.end(String(error));
      });
    });
    this.base = `https://127.0.0.1:${await listen(this.server)}`;
    process.env.TEST_IDP_CA = tls.certFile;
  }

  issuer(path: string): string {
    return `${this.base}${path}`;
  }

  /** The browser at the IdP's authorization endpoint: the user signs in and is sent back with a code. */
  authorize(url: URL): URL {
    const p = url.searchParams;
    expect(p.get("response_type")).toBe("code");
    expect(p.get("code_challenge_method")).toBe("S256");
    expect(p.get("state")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const issuer = `${url.origin}${url.pathname.replace(/\/authorize$/, "")}`;
    const code = randomUUID();
    this.#codes.set(code, {
      issuer,
      clientId: p.get("client_id") as string,
      nonce: p.get("nonce") as string,
      challenge: p.get("code_challenge") as string,
      redirectUri: p.get("redirect_uri") as string,
      // prompt=login: the user authenticates again now (OIDC Core §3.1.2.1).
      reauthenticated: p.get("prompt") === "login",
    });
    const back = new URL(p.get("redirect_uri") as string);
    back.searchParams.set("code", code);
    back.searchParams.set("state", p.get("state") as string);
    return back;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0] as string;
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (path.endsWith("/.well-known/openid-configuration")) {
      const mount = path.slice(0, -"/.well-known/openid-configuration".length);
      // "/impostor" publishes another issuer's name (OIDC Discovery §4.3: the client must refuse it).
      const issuer = this.issuer(mount === "/impostor" ? "/okta" : mount);
      return json(200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ["code"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256"],
        code_challenge_methods_supported: ["S256"],
        token_endpoint_auth_methods_supported: ["client_secret_basic", "private_key_jwt"],
      });
    }
    if (path.endsWith("/jwks")) return json(200, { keys: [this.#publicJwk] });
    if (path.endsWith("/token") && req.method === "POST") return json(...(await this.#token(req)));
    json(404, { error: "not_found" });
  }

  async #token(req: IncomingMessage): Promise<[number, unknown]> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const form = new URLSearchParams(Buffer.concat(chunks).toString());
    const grant = this.#codes.get(form.get("code") ?? "");
    this.#codes.delete(form.get("code") ?? "");
    if (!grant) return [400, { error: "invalid_grant" }];
    if (!(await this.#clientAuthenticated(req, form, grant))) return [401, { error: "invalid_client" }];
    const verifier = form.get("code_verifier") ?? "";
    if (createHash("sha256").update(verifier).digest("base64url") !== grant.challenge) {
      return [400, { error: "invalid_grant", error_description: "PKCE" }];
    }
    if (form.get("redirect_uri") !== grant.redirectUri) return [400, { error: "invalid_grant" }];
    return [
      200,
      { access_token: randomUUID(), token_type: "Bearer", expires_in: 300, id_token: await this.#idToken(grant) },
    ];
  }

  /** The client's public key for private_key_jwt (RFC 7523 §2.2), by client id. */
  clientKeys = new Map<string, CryptoKey>();

  /** client_secret_basic (RFC 6749 §2.3.1), or a private_key_jwt assertion signed by the client's key. */
  async #clientAuthenticated(
    req: IncomingMessage,
    form: URLSearchParams,
    grant: { issuer: string; clientId: string },
  ): Promise<boolean> {
    const assertion = form.get("client_assertion");
    if (assertion) {
      const key = this.clientKeys.get(grant.clientId);
      if (!key || form.get("client_assertion_type") !== "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return false;
      }
      const verified = await jwtVerify(assertion, key, {
        issuer: grant.clientId,
        subject: grant.clientId,
        audience: [grant.issuer, `${grant.issuer}/token`],
      }).catch(() => undefined);
      return verified !== undefined && typeof verified.payload.jti === "string";
    }
    const [id, secret] = Buffer.from((req.headers.authorization ?? "").replace(/^Basic /, ""), "base64")
      .toString()
      .split(":")
      .map(decodeURIComponent);
    return id === grant.clientId && secret === CLIENT_SECRET;
  }

  async #idToken(grant: {
    issuer: string;
    clientId: string;
    nonce: string;
    reauthenticated: boolean;
  }): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const claims: JWTPayload = {
      iss: grant.issuer,
      sub: "u-1234",
      aud: grant.clientId,
      iat: now,
      exp: now + 300,
      auth_time: grant.reauthenticated ? now : now - 5,
      nonce: grant.nonce,
      acr: MFA_ACR,
      amr: ["pwd", "mfa"],
      email: "bob@contoso.example",
      name: "Bob Upstream",
      ...this.claims.get(new URL(grant.issuer).pathname),
      ...this.tamper.claims,
    };
    for (const name of this.tamper.drop ?? []) delete claims[name];
    if (this.tamper.sign === "none") {
      const header = base64url.encode(JSON.stringify({ alg: "none", typ: "JWT" }));
      return `${header}.${base64url.encode(JSON.stringify(claims))}.`;
    }
    if (this.tamper.sign === "hs256-public-key") {
      return new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256", kid: "idp-1" })
        .sign(new TextEncoder().encode(this.#publicPem));
    }
    return new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "idp-1" }).sign(this.#key);
  }
}

const idp = new UpstreamIdp();
let server: OAuthServer;
let store: Store;
let client: { clientId: string };

function provider(id: string, displayName: string, settings: Record<string, unknown>, emailDomains: string[] = []) {
  const secrets = new FederationSecrets(Buffer.from(FEDERATION_KEY, "base64url"));
  const row: NewIdentityProvider = {
    id,
    kind: "oidc",
    displayName,
    settings: {
      client_id: `mandate-${id}`,
      client_secret: secrets.seal({ tenant: TENANT, provider: id, field: "client_secret" }, CLIENT_SECRET),
      ...settings,
    },
    emailDomains,
    claimMapping: {},
    enabled: true,
  };
  return new IdentityProviders(store, () => Date.now()).create(TENANT, row);
}

beforeAll(async () => {
  await idp.start();
  server = await startOAuthServer({
    NODE_EXTRA_CA_CERTS: process.env.TEST_IDP_CA as string,
    MANDATE_OAUTH_ALLOW_PRIVATE_METADATA_HOSTS: "true",
    MANDATE_FEDERATION_SECRET_KEY: FEDERATION_KEY,
  });
  store = Store.open({ url: server.database });
  idp.claims.set(`/${ENTRA_TID}/v2.0`, { tid: ENTRA_TID });
  idp.claims.set("/google", { hd: "contoso.example" });
  await provider(
    "entra",
    "Contoso (Entra ID)",
    { preset: "entra", entra_tenant_id: ENTRA_TID, issuer: idp.issuer(`/${ENTRA_TID}/v2.0`) },
    ["contoso.example"],
  );
  await provider("okta", "Fabrikam (Okta)", { preset: "okta", issuer: idp.issuer("/okta") }, ["fabrikam.example"]);
  await provider("google", "Northwind (Google)", {
    preset: "google",
    google_hosted_domain: "contoso.example",
    issuer: idp.issuer("/google"),
  });
  await provider("impostor", "Impostor", { issuer: idp.issuer("/impostor") });
  // private_key_jwt: the IdP knows the client's public key; the private JWK is sealed in the settings.
  const clientKey = await generateKeyPair("ES256", { extractable: true });
  idp.clientKeys.set("mandate-okta-keyed", clientKey.publicKey);
  const privateJwk = { ...(await exportJWK(clientKey.privateKey)), kid: "mandate-1", alg: "ES256" };
  const secrets = new FederationSecrets(Buffer.from(FEDERATION_KEY, "base64url"));
  await provider("okta-keyed", "Fabrikam (Okta, key)", {
    preset: "okta",
    issuer: idp.issuer("/okta"),
    client_auth: "private_key_jwt",
    client_secret: undefined,
    private_key: secrets.seal(
      { tenant: TENANT, provider: "okta-keyed", field: "private_key" },
      JSON.stringify(privateJwk),
    ),
  });
  client = await server.register({ redirectUris: [REDIRECT_URI], tokenEndpointAuthMethod: "none" });
}, 60_000);

afterAll(async () => {
  await store?.close();
  await server?.stop();
  idp.server?.close();
});

beforeEach(() => {
  idp.tamper = {};
});

function pkce() {
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
}

/** The authorization request up to Mandate's login page: the browser, the page and its interaction. */
async function openLoginPage(browser: Browser, challenge: string, nonce: string, extra: Record<string, string> = {}) {
  const query = new URLSearchParams({
    ...extra,
    client_id: client.clientId,
    redirect_uri: REDIRECT_URI,
    response_type: "code",
    scope: "openid email profile",
    code_challenge: challenge,
    code_challenge_method: "S256",
    nonce,
    state: "client-state",
  });
  const authorize = await browser.get(`${server.issuer}/oauth2/authorize?${query}`);
  expect(authorize.status).toBe(303);
  const page = await browser.get(new URL(authorize.headers.get("location") as string, server.issuer).toString());
  expect(page.status).toBe(200);
  const html = await page.text();
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? "";
  return { html, interaction: field("interaction"), csrf: field("csrf") };
}

/** Clicks the IdP's button, signs in there, and comes back to Mandate's callback (its response). */
async function viaButton(
  browser: Browser,
  providerId: string,
  challenge: string,
  nonce = randomUUID(),
  extra: Record<string, string> = {},
) {
  const { html } = await openLoginPage(browser, challenge, nonce, extra);
  const href = new RegExp(`href="([^"]*/login/idp/${providerId}\\?[^"]*)"`).exec(html)?.[1];
  expect(href, `a button for ${providerId}`).toBeDefined();
  return atIdp(browser, await browser.get((href as string).replaceAll("&amp;", "&")));
}

async function atIdp(browser: Browser, start: Response) {
  expect(start.status).toBe(303);
  const back = idp.authorize(new URL(start.headers.get("location") as string));
  return { callbackUrl: back, response: await browser.get(back.toString()) };
}

async function tokensFor(browser: Browser, callback: Response, verifier: string) {
  expect(callback.status).toBe(303);
  const redirect = await browser.authorize(
    new URL(callback.headers.get("location") as string).toString(),
    REDIRECT_URI,
  );
  const code = redirect.searchParams.get("code");
  expect(code).toBeTruthy();
  const token = await redeemPublicCode(
    server.issuer,
    { clientId: client.clientId, redirectUri: REDIRECT_URI },
    code as string,
    verifier,
  );
  expect(token.status).toBe(200);
  return (await token.json()) as { id_token: string; access_token: string };
}

/** The Mandate subject the IdP's user u-1234 is linked to (linking.ts). */
async function linkedSubject(providerId: string): Promise<string> {
  const row = await store
    .forTenant(TENANT)
    .db.selectFrom("federated_identities")
    .select("subject")
    .where("tenant_id", "=", TENANT)
    .where("provider_id", "=", providerId)
    .where("external_subject", "=", "u-1234")
    .executeTakeFirstOrThrow();
  return row.subject;
}

async function federatedSessions(): Promise<number> {
  const rows = await store
    .forTenant(TENANT)
    .db.selectFrom("federated_sessions")
    .select("id_hash")
    .where("tenant_id", "=", TENANT)
    .execute();
  return rows.length;
}

/** A refused callback: an error page, no session cookie, no new session row. */
async function expectRefused(response: Response, before: number, message: RegExp) {
  expect(response.status).toBe(403);
  expect(response.headers.getSetCookie().some((c) => c.startsWith("mandate_federated_session="))).toBe(false);
  const page = await response.text();
  expect(page).toContain("access_denied");
  expect(page).toMatch(message);
  expect(await federatedSessions()).toBe(before);
}

describe("OIDC upstream login", () => {
  it("signs in through an Entra-shaped IdP (tenant issuer, tid) and passes acr/amr/auth_time through to Mandate's tokens", async () => {
    const browser = new Browser();
    const { verifier, challenge } = pkce();
    const nonce = randomUUID();
    const { response } = await viaButton(browser, "entra", challenge, nonce);
    const tokens = await tokensFor(browser, response, verifier);
    const jwks = createRemoteJWKSet(new URL(`${server.issuer}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(tokens.id_token, jwks, { issuer: server.issuer, audience: client.clientId });
    const subject = await linkedSubject("entra");
    expect(subject).toMatch(/^fed_entra_/);
    expect(payload.sub).toBe(subject);
    expect(payload.nonce).toBe(nonce);
    expect(payload.acr).toBe(MFA_ACR);
    expect(payload.amr).toEqual(["pwd", "mfa"]);
    expect(Math.abs((payload.auth_time as number) - (Math.floor(Date.now() / 1000) - 5))).toBeLessThan(60);
    expect(payload.email).toBe("bob@contoso.example");
    if (tokens.access_token.split(".").length === 3) {
      const access = decodeJwt(tokens.access_token);
      expect(access.sub).toBe(subject);
      expect(access.acr).toBe(MFA_ACR);
    }
  });

  it("signs in through Okta- and Google-shaped IdPs, the same upstream sub linked to a different subject per IdP", async () => {
    for (const id of ["okta", "google"]) {
      const browser = new Browser();
      const { verifier, challenge } = pkce();
      const { response } = await viaButton(browser, id, challenge);
      const tokens = await tokensFor(browser, response, verifier);
      expect(decodeJwt(tokens.id_token).sub).toBe(await linkedSubject(id));
    }
    expect(await linkedSubject("okta")).not.toBe(await linkedSubject("google"));
  });

  it("passes the client's prompt=login and max_age on to the IdP, and refuses an upstream login older than max_age", async () => {
    const browser = new Browser();
    const { verifier, challenge } = pkce();
    const extra = { prompt: "login", max_age: "60" };
    const { html } = await openLoginPage(browser, challenge, randomUUID(), extra);
    const href = (/href="([^"]*\/login\/idp\/okta\?[^"]*)"/.exec(html)?.[1] ?? "").replaceAll("&amp;", "&");
    const start = await browser.get(href);
    const atIdp = new URL(start.headers.get("location") as string);
    expect(atIdp.searchParams.get("prompt")).toBe("login");
    expect(atIdp.searchParams.get("max_age")).toBe("60");
    const ok = await browser.get(idp.authorize(atIdp).toString());
    await tokensFor(browser, ok, verifier);

    const before = await federatedSessions();
    idp.tamper = { claims: { auth_time: Math.floor(Date.now() / 1000) - 3600 } };
    const { response } = await viaButton(new Browser(), "okta", challenge, randomUUID(), extra);
    await expectRefused(response, before, /elapsed since the last End-User authentication/);
  });

  it("authenticates to the IdP's token endpoint with private_key_jwt (RFC 7523) when so configured", async () => {
    const browser = new Browser();
    const { verifier, challenge } = pkce();
    const { response } = await viaButton(browser, "okta-keyed", challenge);
    const tokens = await tokensFor(browser, response, verifier);
    expect(decodeJwt(tokens.id_token).sub).toMatch(/^fed_okta-keyed_/);
  });

  it("home-realm discovery: the e-mail's domain picks the IdP; an unknown domain stays on the password login", async () => {
    const browser = new Browser();
    const { verifier, challenge } = pkce();
    const page = await openLoginPage(browser, challenge, randomUUID());
    expect(page.html).toContain('name="email"');
    const unknown = await browser.post(`${server.issuer}/login`, {
      interaction: page.interaction,
      csrf: page.csrf,
      email: "carol@elsewhere.example",
      discover: "1",
    });
    expect(unknown.status).toBe(200);
    expect(await unknown.text()).toContain('name="password"');
    const known = await browser.post(`${server.issuer}/login`, {
      interaction: page.interaction,
      csrf: page.csrf,
      email: "bob@Fabrikam.example",
      discover: "1",
    });
    expect(known.status).toBe(303);
    const start = new URL(known.headers.get("location") as string);
    expect(start.pathname).toBe("/t/demo/login/idp/okta");
    const atOkta = await browser.get(start.toString());
    expect(new URL(atOkta.headers.get("location") as string).searchParams.get("login_hint")).toBe(
      "bob@Fabrikam.example",
    );
    const { response } = await atIdp(browser, atOkta);
    const tokens = await tokensFor(browser, response, verifier);
    expect(decodeJwt(tokens.id_token).sub).toBe(await linkedSubject("okta"));
  });
});

describe("OIDC upstream refusals at the callback", () => {
  const cases: Array<[string, string, Tamper, RegExp]> = [
    ["a wrong nonce", "okta", { claims: { nonce: "not-the-nonce" } }, /nonce/],
    ["a wrong audience", "okta", { claims: { aud: "someone-else" } }, /aud/],
    ["an expired ID token", "okta", { claims: { iat: 1_700_000_000, exp: 1_700_000_300 } }, /exp/],
    ["an unsigned ID token (alg none)", "okta", { sign: "none" }, /alg|none|JWS/i],
    ["HS256 keyed with the IdP's public key (alg confusion)", "okta", { sign: "hs256-public-key" }, /alg|HS256/],
    ["a wrong issuer", "okta", { claims: { iss: "https://evil.example" } }, /iss/],
    ["another Entra directory's tid", "entra", { claims: { tid: OTHER_TID } }, /tid/],
    ["a Google account without hd", "google", { drop: ["hd"] }, /no hd claim/],
    ["a Google account of another hosted domain", "google", { claims: { hd: "evil.example" } }, /hd/],
  ];
  it.each(cases)("refuses %s", async (_name, id, tamper, message) => {
    const before = await federatedSessions();
    const browser = new Browser();
    const { challenge } = pkce();
    idp.tamper = tamper;
    const { response } = await viaButton(browser, id, challenge);
    await expectRefused(response, before, message);
  });

  it("refuses a replayed callback (state is single use) and a state this browser did not start", async () => {
    const browser = new Browser();
    const { verifier, challenge } = pkce();
    const { callbackUrl, response } = await viaButton(browser, "okta", challenge);
    await tokensFor(browser, response, verifier);
    const before = await federatedSessions();
    await expectRefused(await browser.get(callbackUrl.toString()), before, /already used|not belong/);
    // Another browser presenting the same answer (login CSRF): no handle cookie of its own.
    await expectRefused(await new Browser().get(callbackUrl.toString()), before, /not belong/);
    // This browser with a state it never started.
    const forged = new URL(callbackUrl);
    forged.searchParams.set("state", randomBytes(32).toString("base64url"));
    await expectRefused(await browser.get(forged.toString()), before, /not belong|unknown/);
  });
});

describe("OIDC discovery", () => {
  it("refuses an IdP whose discovery document names another issuer: no login starts", async () => {
    const browser = new Browser();
    const { challenge } = pkce();
    const { html } = await openLoginPage(browser, challenge, randomUUID());
    const href = /href="([^"]*\/login\/idp\/impostor\?[^"]*)"/.exec(html)?.[1] as string;
    const start = await browser.get(href.replaceAll("&amp;", "&"));
    expect(start.status).toBe(502);
    expect(start.headers.get("location")).toBeNull();
    const rows = await store
      .forTenant(TENANT)
      .db.selectFrom("federation_logins")
      .select("id")
      .where("tenant_id", "=", TENANT)
      .where("provider_id", "=", "impostor")
      .execute();
    expect(rows).toHaveLength(0);
  });
});

describe("OIDC settings and presets", () => {
  const base = { client_id: "mandate" };
  it.each([
    [{ ...base, issuer: "http://idp.example" }, /https/],
    [{ ...base, issuer: "https://idp.example?x=1" }, /query/],
    [{ ...base }, /issuer is required/],
    [{ issuer: "https://idp.example", client_id: "" }, /client_id/],
    [{ ...base, issuer: "https://idp.example", id_token_signed_response_alg: "HS256" }, /asymmetric/],
    [{ ...base, issuer: "https://idp.example", id_token_signed_response_alg: "none" }, /asymmetric/],
    [{ ...base, preset: "entra", entra_tenant_id: "common" }, /any directory/],
    [{ ...base, preset: "entra", entra_tenant_id: "organizations" }, /any directory/],
    [{ ...base, preset: "entra", entra_tenant_id: "contoso" }, /GUID/],
    [{ ...base, issuer: "https://idp.example", client_auth: "client_secret_post" }, /not supported/],
  ] as const)("refuses %j", (settings, message) => {
    expect(oidcSettingsProblem(settings as never)).toMatch(message);
  });

  it("fills the presets' issuers: Entra's tenant-specific one, Okta's org, Google's", () => {
    expect(oidcSettingsProblem({ ...base, preset: "entra", entra_tenant_id: ENTRA_TID })).toBeUndefined();
    expect(oidcSettingsProblem({ ...base, preset: "okta", okta_domain: "fabrikam.okta.com" })).toBeUndefined();
    expect(oidcSettingsProblem({ ...base, preset: "google" })).toBeUndefined();
  });

  it("Google without a configured hosted domain accepts any account; with one, only that hd", () => {
    expect(() => checkPreset({ ...base, preset: "google" }, { sub: "x" })).not.toThrow();
    expect(() =>
      checkPreset({ ...base, preset: "google", google_hosted_domain: "contoso.example" }, { hd: "contoso.example" }),
    ).not.toThrow();
    expect(() =>
      checkPreset({ ...base, preset: "google", google_hosted_domain: "contoso.example" }, { hd: "CONTOSO.example " }),
    ).toThrow(/hd/);
  });
});

describe("with Kratos as the primary identity provider", () => {
  let kratosServer: OAuthServer;
  let kratosStore: Store;
  const KRATOS = "http://127.0.0.1:9/kratos";

  beforeAll(async () => {
    // No Kratos answers here: a federated login never needs it, and the test would fail if it asked.
    kratosServer = await startOAuthServer({
      NODE_EXTRA_CA_CERTS: process.env.TEST_IDP_CA as string,
      MANDATE_OAUTH_ALLOW_PRIVATE_METADATA_HOSTS: "true",
      MANDATE_FEDERATION_SECRET_KEY: FEDERATION_KEY,
      MANDATE_IDENTITY_PROVIDER: "kratos",
      MANDATE_KRATOS_PUBLIC_URL: KRATOS,
    });
    kratosStore = Store.open({ url: kratosServer.database });
    const secrets = new FederationSecrets(Buffer.from(FEDERATION_KEY, "base64url"));
    await new IdentityProviders(kratosStore, () => Date.now()).create(TENANT, {
      id: "okta",
      kind: "oidc",
      displayName: "Fabrikam (Okta)",
      settings: {
        preset: "okta",
        issuer: idp.issuer("/okta"),
        client_id: "mandate-okta",
        client_secret: secrets.seal({ tenant: TENANT, provider: "okta", field: "client_secret" }, CLIENT_SECRET),
      },
      emailDomains: ["fabrikam.example"],
      claimMapping: {},
      enabled: true,
    });
  }, 60_000);

  afterAll(async () => {
    await kratosStore?.close();
    await kratosServer?.stop();
  });

  it("shows Mandate's page with the IdPs and e-mail discovery before Kratos, and a federated login needs no Kratos session", async () => {
    const kratosClient = await kratosServer.register({ redirectUris: [REDIRECT_URI], tokenEndpointAuthMethod: "none" });
    const browser = new Browser();
    const { verifier, challenge } = pkce();
    const query = new URLSearchParams({
      client_id: kratosClient.clientId,
      redirect_uri: REDIRECT_URI,
      response_type: "code",
      scope: "openid",
      code_challenge: challenge,
      code_challenge_method: "S256",
    });
    const authorize = await browser.get(`${kratosServer.issuer}/oauth2/authorize?${query}`);
    expect(authorize.status).toBe(303);
    const login = new URL(authorize.headers.get("location") as string);
    expect(login.pathname).toBe("/t/demo/login");
    const page = await (await browser.get(login.toString())).text();
    expect(page).not.toContain('name="password"');
    expect(page).toContain('name="email"');
    // "Continue" leads to Kratos's own login flow, returning to our resume URL.
    const onward = new URL(
      (/href="([^"]*self-service\/login[^"]*)"/.exec(page)?.[1] ?? "about:missing").replaceAll("&amp;", "&"),
    );
    expect(`${onward.origin}${onward.pathname}`).toBe(`${KRATOS}/self-service/login/browser`);
    expect(onward.searchParams.get("return_to")).toMatch(/\/t\/demo\/oauth2\/resume\?interaction=/);
    // An unknown e-mail domain goes on to Kratos too.
    const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(page)?.[1] ?? "";
    const common = { interaction: field("interaction"), csrf: field("csrf") };
    const unknown = await browser.post(`${kratosServer.issuer}/login`, {
      ...common,
      email: "x@elsewhere.example",
      discover: "1",
    });
    expect(unknown.headers.get("location")).toContain("/self-service/login/browser");
    const known = await browser.post(`${kratosServer.issuer}/login`, {
      ...common,
      email: "bob@fabrikam.example",
      discover: "1",
    });
    const { response } = await atIdp(browser, await browser.get(known.headers.get("location") as string));
    expect(response.status).toBe(303);
    const redirect = await browser.authorize(
      new URL(response.headers.get("location") as string).toString(),
      REDIRECT_URI,
    );
    const token = await redeemPublicCode(
      kratosServer.issuer,
      { clientId: kratosClient.clientId, redirectUri: REDIRECT_URI },
      redirect.searchParams.get("code") as string,
      verifier,
    );
    expect(token.status).toBe(200);
    const claims = decodeJwt(((await token.json()) as { id_token: string }).id_token);
    expect(claims.sub).toMatch(/^fed_okta_/);
    expect(claims.acr).toBe(MFA_ACR);
  });
});
