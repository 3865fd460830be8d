// Human federation through upstream OpenID Connect IdPs in headless Chromium (issue 18 item 1):
// `oidc-provider` (panva) runs in this process over HTTPS (a certificate made by openssl; the Mandate
// process trusts it through NODE_EXTRA_CA_CERTS, Chromium by its SPKI pin) as an Entra-shaped IdP
// (issuer with the directory id in its path, a `tid` claim) and a Google-shaped one (`hd` claim).
// A client's authorization request goes through Mandate's login page — the IdP's button, and
// home-realm discovery by e-mail — the IdP's login and consent, the callback, Mandate's consent,
// and the code is redeemed for tokens (oauth4webapi) whose ID token names the linked subject with
// the IdP's acr and amr.
import { createHash, randomBytes, X509Certificate } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { exportJWK, generateKeyPair } from "jose";
import * as oauth from "oauth4webapi";
import Provider from "oidc-provider";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityProviders } from "../../services/issue/identity/federation/registry.ts";
import { FederationSecrets } from "../../services/issue/identity/federation/sealing.ts";
import { Store } from "../../services/shared/store/store.ts";
import { browserAvailable, CHROMIUM_PATH } from "../helpers/browser.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import { listen, selfSignedCertificate } from "../helpers/tls.ts";

const TENANT = "demo";
const ENTRA_TID = "7d3a1f2e-4b5c-4d6e-8f90-a1b2c3d4e5f6";
const CLIENT_SECRET = randomBytes(24).toString("base64url");
const FEDERATION_KEY = randomBytes(32).toString("base64url");
const REDIRECT_URI = "https://app.example/cb";
const MFA_ACR = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";

let server: OAuthServer;
let store: Store;
let browser: Browser;
let idpServer: Server;
let idpBase = "";
let client: { clientId: string };
/** Mount path → the oidc-provider instance answering there. */
const providers = new Map<string, Provider>();

/** One IdP: oidc-provider at `mountPath`, signing in any username with MFA, `extra` claims in the ID token. */
async function upstream(mountPath: string, providerId: string, extra: Record<string, string>): Promise<Provider> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: `${providerId}-1`, alg: "RS256", use: "sig" };
  const provider = new Provider(`${idpBase}${mountPath}`, {
    clients: [
      {
        client_id: `mandate-${providerId}`,
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${server.issuer}/login/idp/${providerId}/callback`],
        token_endpoint_auth_method: "client_secret_basic",
        id_token_signed_response_alg: "RS256",
      },
    ],
    jwks: { keys: [jwk] },
    features: { devInteractions: { enabled: false } },
    acrValues: [MFA_ACR],
    // The openid scope releases acr/amr/auth_time and the tenant claims (tid, hd) in the ID token.
    claims: {
      openid: ["sub", "acr", "amr", "auth_time", ...Object.keys(extra)],
      email: ["email", "email_verified"],
      profile: ["name"],
    },
    conformIdTokenClaims: false,
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({
        sub,
        email: `${sub}@contoso.example`,
        email_verified: true,
        name: "Bob Upstream",
        ...extra,
      }),
    }),
    interactions: { url: (_ctx, interaction) => `${mountPath}/interaction/${interaction.uid}` },
    cookies: { keys: [randomBytes(32).toString("base64url")] },
  });
  provider.proxy = false;
  providers.set(mountPath, provider);
  return provider;
}

/** The IdP's own login and consent pages (what devInteractions would show), one form each. */
async function interaction(provider: Provider, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (req.method === "GET") {
    const field = details.prompt.name === "login" ? '<input id="login" name="login" required>' : "";
    res.writeHead(200, { "content-type": "text/html" });
    res.end(
      `<!doctype html><title>IdP ${details.prompt.name}</title><form method="post">${field}<button id="submit">Continue</button></form>`,
    );
    return;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const form = new URLSearchParams(Buffer.concat(chunks).toString());
  if (details.prompt.name === "login") {
    const result = { login: { accountId: form.get("login") as string, acr: MFA_ACR, amr: ["pwd", "mfa"] } };
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    return;
  }
  const grant = new provider.Grant({
    accountId: details.session?.accountId as string,
    clientId: details.params.client_id as string,
  });
  const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  await provider.interactionFinished(
    req,
    res,
    { consent: { grantId: await grant.save() } },
    { mergeWithLastSubmission: true },
  );
}

function dispatch(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? "/";
  const mount = [...providers.keys()].find((m) => url === m || url.startsWith(`${m}/`));
  const provider = mount ? providers.get(mount) : undefined;
  if (!provider || !mount) {
    res.writeHead(404);
    res.end();
    return;
  }
  if (url.slice(mount.length).startsWith("/interaction/")) {
    interaction(provider, req, res).catch((error) => {
      res.writeHead(500);
      res.end(String(error));
    });
    return;
  }
  // Mounted under its issuer's path (oidc-provider reads the mount path from originalUrl).
  Object.assign(req, { originalUrl: url, url: url.slice(mount.length) || "/" });
  provider.callback()(req, res);
}

function sealedSecret(providerId: string) {
  return new FederationSecrets(Buffer.from(FEDERATION_KEY, "base64url")).seal(
    { tenant: TENANT, provider: providerId, field: "client_secret" },
    CLIENT_SECRET,
  );
}

beforeAll(async () => {
  if (!browserAvailable()) return;
  const tls = selfSignedCertificate();
  idpServer = createServer({ key: tls.key, cert: tls.cert }, dispatch);
  idpBase = `https://127.0.0.1:${await listen(idpServer)}`;
  server = await startOAuthServer({
    NODE_EXTRA_CA_CERTS: tls.certFile,
    MANDATE_OAUTH_ALLOW_PRIVATE_METADATA_HOSTS: "true",
    MANDATE_FEDERATION_SECRET_KEY: FEDERATION_KEY,
  });
  store = Store.open({ url: server.database });
  await upstream(`/${ENTRA_TID}/v2.0`, "entra", { tid: ENTRA_TID });
  await upstream("/google", "google", { hd: "contoso.example" });
  const registry = new IdentityProviders(store, () => Date.now());
  await registry.create(TENANT, {
    id: "entra",
    kind: "oidc",
    displayName: "Contoso (Entra ID)",
    settings: {
      preset: "entra",
      entra_tenant_id: ENTRA_TID,
      issuer: `${idpBase}/${ENTRA_TID}/v2.0`,
      client_id: "mandate-entra",
      client_secret: sealedSecret("entra"),
    },
    emailDomains: [],
    claimMapping: {},
    enabled: true,
  });
  await registry.create(TENANT, {
    id: "google",
    kind: "oidc",
    displayName: "Contoso (Google Workspace)",
    settings: {
      preset: "google",
      google_hosted_domain: "contoso.example",
      issuer: `${idpBase}/google`,
      client_id: "mandate-google",
      client_secret: sealedSecret("google"),
    },
    emailDomains: ["contoso.example"],
    claimMapping: {},
    enabled: true,
  });
  client = await server.register({ redirectUris: [REDIRECT_URI], tokenEndpointAuthMethod: "none" });
  // Chromium trusts the IdP's certificate by its public key pin, nothing else.
  const spki = new X509Certificate(tls.cert).publicKey.export({ type: "spki", format: "der" });
  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      `--ignore-certificate-errors-spki-list=${createHash("sha256").update(spki).digest("base64")}`,
    ],
  });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await store?.close();
  await server?.stop();
  idpServer?.close();
});

async function linkedSubject(providerId: string, externalSubject: string): Promise<string> {
  const row = await store
    .forTenant(TENANT)
    .db.selectFrom("federated_identities")
    .select("subject")
    .where("tenant_id", "=", TENANT)
    .where("provider_id", "=", providerId)
    .where("external_subject", "=", externalSubject)
    .executeTakeFirstOrThrow();
  return row.subject;
}

/** Opens the client's authorization request in a fresh browser context; the tab and its PKCE/nonce. */
async function authorizationRequest() {
  const context = await browser.newContext();
  let callback: URL | undefined;
  await context.route("https://app.example/**", async (route) => {
    callback = new URL(route.request().url());
    await route.fulfill({ status: 200, contentType: "text/plain", body: "client callback" });
  });
  const tab = await context.newPage();
  const verifier = oauth.generateRandomCodeVerifier();
  const nonce = oauth.generateRandomNonce();
  const query = new URLSearchParams({
    client_id: client.clientId,
    redirect_uri: REDIRECT_URI,
    response_type: "code",
    scope: "openid email profile",
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    nonce,
  });
  await tab.goto(`${server.issuer}/oauth2/authorize?${query}`);
  expect(new URL(tab.url()).pathname).toBe("/t/demo/login");
  return { tab, verifier, nonce, callback: () => callback };
}

/** At the IdP: sign in as `username`, approve, then approve at Mandate's consent page. */
async function throughIdpAndConsent(tab: Page, username: string): Promise<void> {
  await tab.waitForSelector("#login");
  expect(tab.url().startsWith(idpBase)).toBe(true);
  await tab.fill("#login", username);
  await tab.click("#submit");
  await tab.waitForSelector("#submit");
  await tab.click("#submit");
  await tab.waitForURL(/\/t\/demo\/consent/);
  await tab.click('button[value="approve"]');
  await tab.waitForURL(/^https:\/\/app\.example\/cb/);
}

async function redeem(callback: URL, verifier: string, nonce: string) {
  const as = await oauth
    .discoveryRequest(new URL(server.issuer), { [oauth.allowInsecureRequests]: true })
    .then((r) => oauth.processDiscoveryResponse(new URL(server.issuer), r));
  const oauthClient: oauth.Client = { client_id: client.clientId };
  const params = oauth.validateAuthResponse(as, oauthClient, callback, oauth.expectNoState);
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    oauthClient,
    oauth.None(),
    params,
    REDIRECT_URI,
    verifier,
    { [oauth.allowInsecureRequests]: true },
  );
  const result = await oauth.processAuthorizationCodeResponse(as, oauthClient, response, {
    expectedNonce: nonce,
    requireIdToken: true,
  });
  return oauth.getValidatedIdTokenClaims(result) as oauth.IDToken;
}

describe.skipIf(!browserAvailable())("OIDC federation in Chromium", () => {
  it("signs in with the Entra-shaped IdP's button: the ID token names the linked subject with the IdP's acr and amr", async () => {
    const { tab, verifier, nonce, callback } = await authorizationRequest();
    await tab.click("text=Sign in with Contoso (Entra ID)");
    await throughIdpAndConsent(tab, "bob");
    const claims = await redeem(callback() as URL, verifier, nonce);
    expect(claims.sub).toBe(await linkedSubject("entra", "bob"));
    expect(claims.acr).toBe(MFA_ACR);
    expect(claims.amr).toEqual(["pwd", "mfa"]);
    expect(claims.email).toBe("bob@contoso.example");
    await tab.context().close();
  });

  it("finds the Google-shaped IdP by the e-mail's domain (home-realm discovery)", async () => {
    const { tab, verifier, nonce, callback } = await authorizationRequest();
    await tab.fill("#email", "carol@contoso.example");
    await tab.click('button[value="1"]');
    await throughIdpAndConsent(tab, "carol");
    const claims = await redeem(callback() as URL, verifier, nonce);
    expect(claims.sub).toBe(await linkedSubject("google", "carol"));
    expect(claims.acr).toBe(MFA_ACR);
    await tab.context().close();
  });
});
