// The authorization server end to end, driven by oauth4webapi (an OpenID-certified client) against
// a running `mandate dev`: discovery, client credentials with every auth method, the code flow with
// PKCE through the dev login and consent pages, PAR, refresh rotation and reuse detection, DPoP with
// nonce retry, introspection (JSON and RFC 9701 JWT), revocation and userinfo.
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Browser, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

const insecure = { [oauth.allowInsecureRequests]: true };
const REDIRECT = "https://app.example.com/callback";

let server: OAuthServer;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  server = await startOAuthServer();
  const response = await oauth.discoveryRequest(new URL(server.issuer), { algorithm: "oidc", ...insecure });
  as = await oauth.processDiscoveryResponse(new URL(server.issuer), response);
}, 30_000);
afterAll(async () => {
  if (process.env.MANDATE_TEST_DEBUG) console.error(server?.process.stderr());
  await server?.stop();
});

async function codeFlow(
  client: oauth.Client,
  auth: oauth.ClientAuth,
  options: { scope?: string; resource?: string[]; dpop?: oauth.DPoPHandle; par?: boolean; browser?: Browser } = {},
) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const params = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: REDIRECT,
    response_type: "code",
    scope: options.scope ?? "openid profile email",
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  });
  for (const resource of options.resource ?? []) params.append("resource", resource);
  const url = new URL(as.authorization_endpoint as string);
  if (options.par) {
    const pushed = await oauth.pushedAuthorizationRequest(as, client, auth, params, {
      ...insecure,
      DPoP: options.dpop,
    });
    const result = await oauth.processPushedAuthorizationResponse(as, client, pushed);
    url.search = new URLSearchParams({ client_id: client.client_id, request_uri: result.request_uri }).toString();
  } else {
    url.search = params.toString();
  }
  const browser = options.browser ?? new Browser();
  const callback = await browser.authorize(url.toString(), REDIRECT);
  const validated = oauth.validateAuthResponse(as, client, callback, state);
  const tokenRequest = () =>
    oauth.authorizationCodeGrantRequest(as, client, auth, validated, REDIRECT, verifier, {
      ...insecure,
      DPoP: options.dpop,
    });
  const openid = params.get("scope")?.split(" ").includes("openid");
  const expectations = openid ? { expectedNonce: nonce, requireIdToken: true } : {};
  let response = await tokenRequest();
  let tokens: oauth.TokenEndpointResponse;
  try {
    tokens = await oauth.processAuthorizationCodeResponse(as, client, response, expectations);
  } catch (error) {
    // RFC 9449 §8: retry once with the server's nonce (oauth4webapi remembers it from the error).
    if (!(options.dpop && oauth.isDPoPNonceError(error))) throw error;
    response = await tokenRequest();
    tokens = await oauth.processAuthorizationCodeResponse(as, client, response, expectations);
  }
  return { tokens, callback, verifier, validated, browser };
}

describe("discovery (RFC 8414, OpenID Connect Discovery)", () => {
  it("serves identical metadata at both RFC 8414 locations and the OIDC location, issuer byte-identical", async () => {
    const inserted = await fetch(`${server.base}/.well-known/oauth-authorization-server/t/demo`);
    const appended = await fetch(`${server.issuer}/.well-known/oauth-authorization-server`);
    const oidc = await fetch(`${server.issuer}/.well-known/openid-configuration`);
    const [a, b, c] = await Promise.all([inserted.json(), appended.json(), oidc.json()]);
    expect(a).toEqual(b);
    expect(c).toEqual(a);
    expect(a.issuer).toBe(server.issuer);
    expect(a).toMatchObject({
      code_challenge_methods_supported: ["S256"],
      authorization_response_iss_parameter_supported: true,
      response_types_supported: ["code"],
      token_endpoint: `${server.issuer}/oauth2/token`,
      jwks_uri: `${server.issuer}/.well-known/jwks.json`,
    });
    const rfc8414 = await oauth.processDiscoveryResponse(
      new URL(server.issuer),
      await oauth.discoveryRequest(new URL(server.issuer), { algorithm: "oauth2", ...insecure }),
    );
    expect(rfc8414.issuer).toBe(server.issuer);
  });

  it("answers 404 for an unknown tenant", async () => {
    const response = await fetch(`${server.base}/t/nope/.well-known/openid-configuration`);
    expect(response.status).toBe(404);
  });
});

describe("client credentials (RFC 6749 §4.4) with each client authentication method", () => {
  async function obtain(client: oauth.Client, auth: oauth.ClientAuth, parameters: Record<string, string> = {}) {
    const response = await oauth.clientCredentialsGrantRequest(as, client, auth, parameters, insecure);
    return oauth.processClientCredentialsResponse(as, client, response);
  }

  it("client_secret_basic: an at+jwt that an independent RFC 9068 validator accepts", async () => {
    const { clientId, clientSecret } = await server.register({
      clientName: "basic",
      grantTypes: ["client_credentials"],
      scope: "orders.read orders.write",
      resources: ["https://api.example.com/"],
    });
    const client = { client_id: clientId, token_endpoint_auth_method: "client_secret_basic" };
    const tokens = await obtain(client, oauth.ClientSecretBasic(clientSecret), {
      scope: "orders.read",
      resource: "https://api.example.com/",
    });
    expect(tokens.token_type).toBe("bearer");
    expect(tokens.expires_in).toBe(300);
    const request = new Request("https://api.example.com/orders", {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    const claims = await oauth.validateJwtAccessToken(as, request, "https://api.example.com/", insecure);
    expect(claims).toMatchObject({ client_id: clientId, sub: clientId, scope: "orders.read", iss: server.issuer });
  });

  it("honours a client's own access-token lifetime", async () => {
    const { clientId, clientSecret } = await server.register({
      grantTypes: ["client_credentials"],
      scope: "a",
      accessTokenLifetimeSeconds: 60,
    });
    const tokens = await obtain({ client_id: clientId }, oauth.ClientSecretBasic(clientSecret));
    expect(tokens.expires_in).toBe(60);
    await expect(
      server.register({ grantTypes: ["client_credentials"], accessTokenLifetimeSeconds: 5 }),
    ).rejects.toThrow(/access_token_lifetime/);
  });

  it("client_secret_post", async () => {
    const { clientId, clientSecret } = await server.register({
      grantTypes: ["client_credentials"],
      tokenEndpointAuthMethod: "client_secret_post",
      scope: "a",
    });
    const tokens = await obtain({ client_id: clientId }, oauth.ClientSecretPost(clientSecret));
    expect(tokens.scope).toBe("a");
  });

  it("private_key_jwt, and the same assertion cannot be replayed", async () => {
    const keys = await oauth.generateKeyPair("ES256", { extractable: true });
    const jwk = await crypto.subtle.exportKey("jwk", keys.publicKey);
    const { clientId } = await server.register({
      grantTypes: ["client_credentials"],
      tokenEndpointAuthMethod: "private_key_jwt",
      jwks: { keys: [{ ...jwk, kid: "k1", alg: "ES256", use: "sig" }] } as never,
    });
    const client = { client_id: clientId };
    const tokens = await obtain(client, oauth.PrivateKeyJwt({ key: keys.privateKey, kid: "k1" }));
    expect(tokens.access_token).toBeTruthy();
    // Capture one assertion and send it twice: the second use is refused (RFC 7523 §3 item 7).
    let body = "";
    await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.PrivateKeyJwt({ key: keys.privateKey }),
      {},
      {
        ...insecure,
        [oauth.customFetch]: async (url, init) => {
          body = String(init.body);
          return fetch(url, init as RequestInit);
        },
      },
    );
    const replay = await fetch(as.token_endpoint as string, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body,
    });
    expect(replay.status).toBe(401);
    expect(await replay.json()).toMatchObject({ error: "invalid_client" });

    // Assertions for another audience, without jti, or MACed with a guessable key are refused.
    const { SignJWT } = await import("jose");
    const now = Math.floor(Date.now() / 1000);
    const base = {
      iss: clientId,
      sub: clientId,
      aud: server.issuer,
      exp: now + 60,
      iat: now,
      jti: crypto.randomUUID(),
    };
    const send = async (assertion: string) =>
      fetch(as.token_endpoint as string, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          client_assertion: assertion,
        }),
      }).then(async (r) => ({ status: r.status, body: await r.json() }));
    const signed = (claims: Record<string, unknown>) =>
      new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: "k1" }).sign(keys.privateKey);
    expect((await send(await signed({ ...base, aud: "https://other.example/token" }))).status).toBe(401);
    const { jti: _jti, ...withoutJti } = base;
    expect((await send(await signed(withoutJti))).status).toBe(401);
    expect((await send(await signed({ ...base, exp: now + 3600 }))).body.error_description).toMatch(/10 minutes/);
    const hs = await new SignJWT({ ...base, jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(JSON.stringify(jwk)));
    expect(await send(hs)).toMatchObject({ status: 401, body: { error: "invalid_client" } });
    expect((await send(await signed({ ...base, jti: crypto.randomUUID() }))).status).toBe(200);
  });

  it("refuses wrong secrets, unknown clients, mixed methods and unregistered grants", async () => {
    const { clientId, clientSecret } = await server.register({ grantTypes: ["client_credentials"], scope: "a" });
    const post = (body: Record<string, string>, headers: Record<string, string> = {}) =>
      fetch(as.token_endpoint as string, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
        body: new URLSearchParams(body),
      });
    const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
    const wrong = await post({ grant_type: "client_credentials" }, { authorization: basic(clientId, "nope") });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("www-authenticate")).toMatch(/^Basic /);
    expect(await wrong.json()).toMatchObject({ error: "invalid_client" });
    const unknown = await post({ grant_type: "client_credentials" }, { authorization: basic("ghost", clientSecret) });
    expect(unknown.status).toBe(401);
    // Registered for basic; presenting the secret in the body is another method (RFC 6749 §2.3).
    const method = await post({ grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret });
    expect(await method.json()).toMatchObject({ error: "invalid_client" });
    const mixed = await post(
      { grant_type: "client_credentials", client_secret: clientSecret },
      { authorization: basic(clientId, clientSecret) },
    );
    expect(await mixed.json()).toMatchObject({ error: "invalid_request" });
    const grant = await post(
      { grant_type: "authorization_code", code: "x" },
      { authorization: basic(clientId, clientSecret) },
    );
    expect(await grant.json()).toMatchObject({ error: "unauthorized_client" });
    const unsupported = await post({ grant_type: "password" }, { authorization: basic(clientId, clientSecret) });
    expect(await unsupported.json()).toMatchObject({ error: "unsupported_grant_type" });
    const scope = await post(
      { grant_type: "client_credentials", scope: "admin" },
      { authorization: basic(clientId, clientSecret) },
    );
    expect(await scope.json()).toMatchObject({ error: "invalid_scope" });
    const target = await post(
      { grant_type: "client_credentials", resource: "https://api.example.com/#frag" },
      { authorization: basic(clientId, clientSecret) },
    );
    expect(await target.json()).toMatchObject({ error: "invalid_target" });
    const repeated = await fetch(as.token_endpoint as string, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic(clientId, clientSecret) },
      body: "grant_type=client_credentials&scope=a&scope=a",
    });
    expect(await repeated.json()).toMatchObject({ error: "invalid_request" });
    const json = await post({}, { "content-type": "application/json" });
    expect(json.status).toBe(400);
    for (const response of [wrong, unknown, method, mixed, grant, unsupported, scope, target, repeated, json]) {
      expect(response.headers.get("cache-control")).toBe("no-store");
    }
  });
});

describe("authorization code flow (OAuth 2.1 §4.1, OIDC Core §3.1)", () => {
  let client: oauth.Client;
  let auth: oauth.ClientAuth;
  beforeAll(async () => {
    const registered = await server.register({
      clientName: "Orders web app",
      redirectUris: [REDIRECT],
      grantTypes: ["authorization_code", "refresh_token"],
      scope: "orders.read",
      resources: ["https://api.example.com/"],
    });
    client = { client_id: registered.clientId };
    auth = oauth.ClientSecretBasic(registered.clientSecret);
  });

  it("logs in, asks consent, returns code + iss, and issues access, refresh and ID tokens; userinfo answers", async () => {
    const { tokens, callback, browser } = await codeFlow(client, auth, {
      scope: "openid profile email orders.read",
      resource: ["https://api.example.com/"],
    });
    expect(callback.searchParams.get("iss")).toBe(server.issuer);
    expect(browser.pages.some((p) => p.includes("Allow Orders web app?"))).toBe(true);
    expect(tokens.refresh_token).toMatch(/^mrt_/);
    const idToken = oauth.getValidatedIdTokenClaims(tokens);
    expect(idToken).toMatchObject({ sub: "dev-alice", iss: server.issuer, aud: client.client_id, amr: ["pwd"] });
    expect(idToken?.email).toBe("alice@example.com");
    const claims = await oauth.validateJwtAccessToken(
      as,
      new Request("https://api.example.com/x", { headers: { authorization: `Bearer ${tokens.access_token}` } }),
      "https://api.example.com/",
      insecure,
    );
    expect(claims).toMatchObject({ sub: "dev-alice", scope: "openid profile email orders.read" });

    // A second authorization remembers consent and skips the page.
    const again = await codeFlow(client, auth, { scope: "openid orders.read", browser });
    expect(again.browser.pages.filter((p) => p.includes("Allow Orders web app?")).length).toBe(1);

    // userinfo needs a token whose audience is the issuer (no resource requested).
    const userinfo = await oauth.userInfoRequest(as, client, again.tokens.access_token, insecure);
    const info = await oauth.processUserInfoResponse(as, client, "dev-alice", userinfo);
    expect(info).toMatchObject({ sub: "dev-alice" });
    expect(info.email).toBeUndefined(); // no email scope this time
  });

  it("records token events in the audit log with the human only as a salted reference", async () => {
    await codeFlow(client, auth, { scope: "openid orders.read" });
    const { Store } = await import("../../services/shared/store/store.ts");
    const store = Store.open({ url: server.database });
    try {
      const issued = async () =>
        store.db
          .selectFrom("audit_log")
          .select(["body", "subject", "client_id", "type"])
          .where("tenant_id", "=", "demo")
          .where("type", "=", "token.issued.v1")
          .execute();
      await expect
        .poll(async () => (await issued()).some((e) => e.client_id === client.client_id), { timeout: 10_000 })
        .toBe(true);
      const entries = await issued();
      const mine = entries.filter((e) => e.client_id === client.client_id);
      expect(mine.every((e) => e.subject?.startsWith("h:"))).toBe(true);
      const all = await store.db.selectFrom("audit_log").select("body").where("tenant_id", "=", "demo").execute();
      expect(all.some((e) => e.body.includes("dev-alice"))).toBe(false);
    } finally {
      await store.close();
    }
  });

  it("refresh rotates on every use; reusing a spent token revokes the family", async () => {
    const { tokens } = await codeFlow(client, auth, { scope: "openid orders.read" });
    const refresh = async (token: string) =>
      oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, auth, token, insecure),
      );
    const second = await refresh(tokens.refresh_token as string);
    expect(second.refresh_token).not.toBe(tokens.refresh_token);
    const third = await refresh(second.refresh_token as string);
    await expect(refresh(tokens.refresh_token as string)).rejects.toMatchObject({ error: "invalid_grant" });
    // The family is dead: the newest refresh token and the access tokens minted from it too.
    await expect(refresh(third.refresh_token as string)).rejects.toMatchObject({ error: "invalid_grant" });
    const introspected = await oauth.processIntrospectionResponse(
      as,
      client,
      await oauth.introspectionRequest(as, client, auth, third.access_token, insecure),
    );
    expect(introspected.active).toBe(false);
  });

  it("refuses code replay (and revokes what the code produced), a wrong verifier, and a redirect mismatch", async () => {
    const { tokens, validated, verifier } = await codeFlow(client, auth, { scope: "orders.read" });
    const replay = await oauth.authorizationCodeGrantRequest(as, client, auth, validated, REDIRECT, verifier, insecure);
    await expect(oauth.processAuthorizationCodeResponse(as, client, replay)).rejects.toMatchObject({
      error: "invalid_grant",
    });
    const after = await oauth.processIntrospectionResponse(
      as,
      client,
      await oauth.introspectionRequest(as, client, auth, tokens.access_token, insecure),
    );
    expect(after.active).toBe(false);

    const verifierMismatch = await authorizeOnly(client, auth);
    const wrong = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      auth,
      verifierMismatch.validated,
      REDIRECT,
      oauth.generateRandomCodeVerifier(),
      insecure,
    );
    await expect(oauth.processAuthorizationCodeResponse(as, client, wrong)).rejects.toMatchObject({
      error: "invalid_grant",
    });

    const redirectMismatch = await authorizeOnly(client, auth);
    const mismatch = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      auth,
      redirectMismatch.validated,
      "https://app.example.com/other",
      redirectMismatch.verifier,
      insecure,
    );
    await expect(oauth.processAuthorizationCodeResponse(as, client, mismatch)).rejects.toMatchObject({
      error: "invalid_grant",
    });
  });

  it("refuses missing or plain PKCE and unregistered redirect URIs; errors carry state and iss", async () => {
    const base = {
      client_id: client.client_id,
      redirect_uri: REDIRECT,
      response_type: "code",
      scope: "orders.read",
      state: "s1",
    };
    const browser = new Browser();
    const noPkce = await browser.get(`${as.authorization_endpoint}?${new URLSearchParams(base)}`);
    const location = new URL(noPkce.headers.get("location") as string);
    expect(location.searchParams.get("error")).toBe("invalid_request");
    expect(location.searchParams.get("state")).toBe("s1");
    expect(location.searchParams.get("iss")).toBe(server.issuer);
    const plain = await browser.get(
      `${as.authorization_endpoint}?${new URLSearchParams({ ...base, code_challenge: "a".repeat(43), code_challenge_method: "plain" })}`,
    );
    expect(new URL(plain.headers.get("location") as string).searchParams.get("error_description")).toMatch(/S256/);
    // An unregistered redirect URI is never redirected to: the error is a page.
    const evil = await browser.get(
      `${as.authorization_endpoint}?${new URLSearchParams({ ...base, redirect_uri: "https://evil.example/cb" })}`,
    );
    expect(evil.status).toBe(400);
    expect(evil.headers.get("location")).toBeNull();
    expect(await evil.text()).toContain("redirect_uri is not registered");
    // Resources at the token endpoint may only narrow the authorization (RFC 8707 §2.2).
    const { validated, verifier } = await authorizeOnly(client, auth, ["https://api.example.com/"]);
    const widened = await oauth.authorizationCodeGrantRequest(as, client, auth, validated, REDIRECT, verifier, {
      ...insecure,
      additionalParameters: { resource: "https://other.example.com/" },
    });
    await expect(oauth.processAuthorizationCodeResponse(as, client, widened)).rejects.toMatchObject({
      error: "invalid_target",
    });
  });

  it("PAR (RFC 9126): the pushed request_uri works once", async () => {
    const { tokens } = await codeFlow(client, auth, { scope: "orders.read", par: true });
    expect(tokens.access_token).toBeTruthy();
  });

  it("prompt=none without a session answers login_required to the redirect URI", async () => {
    const verifier = oauth.generateRandomCodeVerifier();
    const url = `${as.authorization_endpoint}?${new URLSearchParams({
      client_id: client.client_id,
      redirect_uri: REDIRECT,
      response_type: "code",
      scope: "openid",
      prompt: "none",
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
    })}`;
    const response = await new Browser().get(url);
    expect(new URL(response.headers.get("location") as string).searchParams.get("error")).toBe("login_required");
  });
});

async function authorizeOnly(client: oauth.Client, _auth: oauth.ClientAuth, resource: string[] = []) {
  const verifier = oauth.generateRandomCodeVerifier();
  const params = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: REDIRECT,
    response_type: "code",
    scope: "orders.read",
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  });
  for (const r of resource) params.append("resource", r);
  const callback = await new Browser().authorize(`${as.authorization_endpoint}?${params}`, REDIRECT);
  return { validated: oauth.validateAuthResponse(as, client, callback, oauth.skipStateCheck), verifier };
}

describe("DPoP (RFC 9449)", () => {
  it("binds a public client's tokens to its key through the nonce retry, and refresh needs the same key", async () => {
    const registered = await server.register({
      redirectUris: [REDIRECT],
      grantTypes: ["authorization_code", "refresh_token"],
      tokenEndpointAuthMethod: "none",
      scope: "orders.read",
    });
    const client = { client_id: registered.clientId, token_endpoint_auth_method: "none" };
    const keyPair = await oauth.generateKeyPair("ES256");
    const dpop = oauth.DPoP({}, keyPair);
    const { tokens } = await codeFlow(client, oauth.None(), { scope: "openid orders.read", dpop });
    expect(tokens.token_type).toBe("dpop");
    const claims = JSON.parse(Buffer.from(tokens.access_token.split(".")[1] as string, "base64url").toString());
    expect(claims.cnf.jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // userinfo as a DPoP-protected resource: DPoP scheme with ath works, Bearer is refused (§7.2).
    const info = await oauth.userInfoRequest(as, client, tokens.access_token, { ...insecure, DPoP: dpop });
    expect((await oauth.processUserInfoResponse(as, client, "dev-alice", info)).sub).toBe("dev-alice");
    const bearer = await fetch(as.userinfo_endpoint as string, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    expect(bearer.status).toBe(401);
    expect(bearer.headers.get("www-authenticate")).toMatch(/invalid_token/);

    // The refresh token is bound to the key: another key's proof is refused.
    const otherDpop = oauth.DPoP({}, await oauth.generateKeyPair("ES256"));
    const refreshWith = (handle: oauth.DPoPHandle) =>
      oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token as string, {
        ...insecure,
        DPoP: handle,
      });
    let response = await refreshWith(otherDpop);
    if (response.status === 400 && (await response.clone().json()).error === "use_dpop_nonce")
      response = await refreshWith(otherDpop);
    expect(await response.json()).toMatchObject({ error: "invalid_dpop_proof" });
    const refreshed = await oauth.processRefreshTokenResponse(as, client, await refreshWith(dpop));
    expect(refreshed.token_type).toBe("dpop");
  });

  it("client credentials with DPoP; replayed proofs, wrong htu and private jwk are refused", async () => {
    const { clientId, clientSecret } = await server.register({ grantTypes: ["client_credentials"], scope: "a" });
    const client = { client_id: clientId };
    const keyPair = await oauth.generateKeyPair("ES256", { extractable: true });
    const dpop = oauth.DPoP({}, keyPair);
    const request = () =>
      oauth.clientCredentialsGrantRequest(
        as,
        client,
        oauth.ClientSecretBasic(clientSecret),
        {},
        { ...insecure, DPoP: dpop },
      );
    let response = await request();
    const first = await response.clone().json();
    expect(first.error).toBe("use_dpop_nonce");
    const nonce = response.headers.get("dpop-nonce") as string;
    expect(nonce).toBeTruthy();
    response = await request();
    const tokens = await oauth.processClientCredentialsResponse(as, client, response);
    expect(tokens.token_type).toBe("dpop");

    const { SignJWT, exportJWK } = await import("jose");
    const publicJwk = await exportJWK(keyPair.publicKey);
    const proof = async (claims: Record<string, unknown>, jwk: Record<string, unknown> = publicJwk) =>
      new SignJWT({
        jti: crypto.randomUUID(),
        htm: "POST",
        htu: as.token_endpoint,
        iat: Math.floor(Date.now() / 1000),
        nonce,
        ...claims,
      })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
        .sign(keyPair.privateKey);
    const send = (dpopHeader: string) =>
      fetch(as.token_endpoint as string, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
          dpop: dpopHeader,
        },
        body: "grant_type=client_credentials",
      });
    const once = await proof({});
    expect((await send(once)).status).toBe(200);
    expect(await (await send(once)).json()).toMatchObject({ error: "invalid_dpop_proof" }); // replay (§11.1)
    expect(await (await send(await proof({ htu: `${server.issuer}/oauth2/other` }))).json()).toMatchObject({
      error: "invalid_dpop_proof",
    });
    expect(await (await send(await proof({ htm: "GET" }))).json()).toMatchObject({ error: "invalid_dpop_proof" });
    const privateJwk = await exportJWK(keyPair.privateKey);
    expect(await (await send(await proof({}, privateJwk))).json()).toMatchObject({ error: "invalid_dpop_proof" });
    expect(await (await send(await proof({ iat: Math.floor(Date.now() / 1000) - 3600 }))).json()).toMatchObject({
      error: "invalid_dpop_proof",
    });
    const none = `${Buffer.from(JSON.stringify({ alg: "none", typ: "dpop+jwt", jwk: publicJwk })).toString("base64url")}.${Buffer.from(
      JSON.stringify({ jti: "x".repeat(16), htm: "POST", htu: as.token_endpoint, iat: Math.floor(Date.now() / 1000) }),
    ).toString("base64url")}.`;
    expect(await (await send(none)).json()).toMatchObject({ error: "invalid_dpop_proof" });
  });
});

describe("introspection (RFC 7662, RFC 9701) and revocation (RFC 7009)", () => {
  it("reports active tokens as JSON and as a signed JWT, and revocation takes effect at once", async () => {
    // A resource server introspects tokens it is not an audience of through mandate:introspect (RFC 7662 §4).
    const rs = await server.register({ grantTypes: ["client_credentials"], scope: "x mandate:introspect" });
    const rsClient = { client_id: rs.clientId };
    const rsAuth = oauth.ClientSecretBasic(rs.clientSecret);
    const app = await server.register({
      grantTypes: ["client_credentials"],
      scope: "orders.read",
      resources: ["https://api.example.com/"],
    });
    const appClient = { client_id: app.clientId };
    const appAuth = oauth.ClientSecretBasic(app.clientSecret);
    const tokens = await oauth.processClientCredentialsResponse(
      as,
      appClient,
      await oauth.clientCredentialsGrantRequest(
        as,
        appClient,
        appAuth,
        { resource: "https://api.example.com/" },
        insecure,
      ),
    );
    const introspect = async (requestJwt = false) =>
      oauth.processIntrospectionResponse(
        as,
        rsClient,
        await oauth.introspectionRequest(as, rsClient, rsAuth, tokens.access_token, {
          ...insecure,
          requestJwtResponse: requestJwt,
        }),
      );
    expect(await introspect()).toMatchObject({
      active: true,
      client_id: app.clientId,
      scope: "orders.read",
      aud: "https://api.example.com/",
      iss: server.issuer,
      token_type: "Bearer",
    });
    // RFC 9701: oauth4webapi verifies the JWT response's signature, typ, iss and aud.
    expect(await introspect(true)).toMatchObject({ active: true, client_id: app.clientId });

    // Only the client the token was issued to may revoke it; another client gets the same 200 as for
    // an invalid token (RFC 7009 §2.2) and nothing is revoked.
    const foreign = await oauth.revocationRequest(as, rsClient, rsAuth, tokens.access_token, insecure);
    expect(foreign.status).toBe(200);
    expect((await introspect()).active).toBe(true);
    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, appClient, appAuth, tokens.access_token, insecure),
    );
    expect((await introspect()).active).toBe(false);
    // Unknown tokens: 200 (RFC 7009 §2.2), inactive at introspection.
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, appClient, appAuth, "garbage", insecure));
  });

  it("tokens are inactive in another tenant, and forged tokens (alg none, HS256 with the public key) are inactive", async () => {
    await server.issue.createClient; // tenants are created over gRPC below
    const { Tenants } = await import("../../gen/mandate/v1/tenants_pb.js");
    const { adminClient } = await import("../helpers/admin.ts");
    const tenants = adminClient(Tenants, server.process.summary.grpc as string, server.process.adminFile);
    await tenants.createTenant({ tenant: "other", displayName: "Other" });
    const app = await server.register({ grantTypes: ["client_credentials"], scope: "a" });
    const tokens = await oauth.processClientCredentialsResponse(
      as,
      { client_id: app.clientId },
      await oauth.clientCredentialsGrantRequest(
        as,
        { client_id: app.clientId },
        oauth.ClientSecretBasic(app.clientSecret),
        {},
        insecure,
      ),
    );
    const otherRs = await server.register({ grantTypes: ["client_credentials"], scope: "a" }, "other");
    const otherIntrospect = (token: string) =>
      fetch(`${server.base}/t/other/oauth2/introspect`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${otherRs.clientId}:${otherRs.clientSecret}`).toString("base64")}`,
        },
        body: new URLSearchParams({ token }),
      }).then((r) => r.json());
    expect(await otherIntrospect(tokens.access_token)).toEqual({ active: false });
    // demo's client cannot even authenticate at the other tenant.
    const crossAuth = await fetch(`${server.base}/t/other/oauth2/token`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`${app.clientId}:${app.clientSecret}`).toString("base64")}`,
      },
      body: "grant_type=client_credentials",
    });
    expect(crossAuth.status).toBe(401);

    const [header, payload] = tokens.access_token.split(".") as [string, string];
    const decodedHeader = JSON.parse(Buffer.from(header, "base64url").toString());
    const none = `${Buffer.from(JSON.stringify({ ...decodedHeader, alg: "none" })).toString("base64url")}.${payload}.`;
    const jwks = await (await fetch(as.jwks_uri as string)).json();
    const { createHmac } = await import("node:crypto");
    const hsHeader = Buffer.from(JSON.stringify({ ...decodedHeader, alg: "HS256" })).toString("base64url");
    const hs = `${hsHeader}.${payload}.${createHmac("sha256", JSON.stringify(jwks.keys[0])).update(`${hsHeader}.${payload}`).digest("base64url")}`;
    const demoIntrospect = (token: string) =>
      fetch(as.introspection_endpoint as string, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${app.clientId}:${app.clientSecret}`).toString("base64")}`,
        },
        body: new URLSearchParams({ token }),
      }).then((r) => r.json());
    expect((await demoIntrospect(tokens.access_token)).active).toBe(true);
    expect(await demoIntrospect(none)).toEqual({ active: false });
    expect(await demoIntrospect(hs)).toEqual({ active: false });
  });
});
