// Human federation through upstream OpenID Connect IdPs in headless Chromium (issue 18 item 1):
// `oidc-provider` (panva) runs in this process over HTTPS (helpers/federation-oidc-provider.ts; the
// Mandate process trusts its certificate through NODE_EXTRA_CA_CERTS, Chromium by its SPKI pin) as
// an Entra-shaped IdP (issuer with the directory id in its path, a `tid` claim), a Google-shaped one
// (`hd` claim) and an Okta-shaped one (a custom authorization server's issuer, /oauth2/{id}).
// A client's authorization request goes through Mandate's login page — the IdP's button, and
// home-realm discovery by e-mail — the IdP's login and consent, the callback, Mandate's consent,
// and the code is redeemed for tokens (oauth4webapi) whose ID token names the linked subject with
// the IdP's acr and amr.
import { createHash, randomBytes, X509Certificate } from "node:crypto";
import * as oauth from "oauth4webapi";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdentityProviders } from "../../services/issue/identity/federation/registry.ts";
import { FederationSecrets } from "../../services/issue/identity/federation/sealing.ts";
import { Store } from "../../services/shared/store/store.ts";
import { browserAvailable, CHROMIUM_PATH } from "../helpers/browser.ts";
import { linkedIdentity, MFA_ACR, OidcProviderIdps } from "../helpers/federation-oidc-provider.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

const TENANT = "demo";
const ENTRA_TID = "7d3a1f2e-4b5c-4d6e-8f90-a1b2c3d4e5f6";
/** An Okta custom authorization server's id (issuer https://{org}.okta.com/oauth2/{id}). */
const OKTA_SERVER = "aus7xk2q9zFabrikam1d7";
const CLIENT_SECRET = randomBytes(24).toString("base64url");
const FEDERATION_KEY = randomBytes(32).toString("base64url");
const REDIRECT_URI = "https://app.example/cb";

let server: OAuthServer;
let store: Store;
let browser: Browser;
let client: { clientId: string };
const idps = new OidcProviderIdps();

/** An IdP at `mountPath` for Mandate's provider `providerId`, `extra` claims in its ID token, registered for the tenant. */
async function upstream(
  mountPath: string,
  providerId: string,
  extra: Record<string, string>,
  registration: { displayName: string; settings: Record<string, unknown>; emailDomains: string[] },
): Promise<void> {
  await idps.mount(
    mountPath,
    {
      clientId: `mandate-${providerId}`,
      clientSecret: CLIENT_SECRET,
      redirectUri: `${server.issuer}/login/idp/${providerId}/callback`,
    },
    (sub) => ({ email: `${sub}@contoso.example`, email_verified: true, name: "Bob Upstream", ...extra }),
    Object.keys(extra),
  );
  const clientSecret = new FederationSecrets(Buffer.from(FEDERATION_KEY, "base64url")).seal(
    { tenant: TENANT, provider: providerId, field: "client_secret" },
    CLIENT_SECRET,
  );
  await new IdentityProviders(store, () => Date.now()).create(TENANT, {
    id: providerId,
    kind: "oidc",
    displayName: registration.displayName,
    settings: {
      ...registration.settings,
      issuer: idps.issuer(mountPath),
      client_id: `mandate-${providerId}`,
      client_secret: clientSecret,
    },
    emailDomains: registration.emailDomains,
    claimMapping: {},
    enabled: true,
  });
}

beforeAll(async () => {
  if (!browserAvailable()) return;
  await idps.start();
  server = await startOAuthServer({
    NODE_EXTRA_CA_CERTS: idps.tls.certFile,
    MANDATE_OAUTH_ALLOW_PRIVATE_METADATA_HOSTS: "true",
    MANDATE_FEDERATION_SECRET_KEY: FEDERATION_KEY,
  });
  store = Store.open({ url: server.database });
  await upstream(
    `/${ENTRA_TID}/v2.0`,
    "entra",
    { tid: ENTRA_TID },
    {
      displayName: "Contoso (Entra ID)",
      settings: { preset: "entra", entra_tenant_id: ENTRA_TID },
      emailDomains: [],
    },
  );
  await upstream(
    "/google",
    "google",
    { hd: "contoso.example" },
    {
      displayName: "Contoso (Google Workspace)",
      settings: { preset: "google", google_hosted_domain: "contoso.example" },
      emailDomains: ["contoso.example"],
    },
  );
  await upstream(
    `/oauth2/${OKTA_SERVER}`,
    "okta",
    {},
    {
      displayName: "Fabrikam (Okta)",
      settings: { preset: "okta" },
      emailDomains: ["fabrikam.example"],
    },
  );
  client = await server.register({ redirectUris: [REDIRECT_URI], tokenEndpointAuthMethod: "none" });
  // Chromium trusts the IdP's certificate by its public key pin, nothing else.
  const spki = new X509Certificate(idps.tls.cert).publicKey.export({ type: "spki", format: "der" });
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
  idps.close();
});

async function linkedSubject(providerId: string, externalSubject: string): Promise<string> {
  return (await linkedIdentity(store, TENANT, providerId, externalSubject)).subject;
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
  expect(tab.url().startsWith(idps.base)).toBe(true);
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

  it("signs in with the Okta-shaped IdP's button (a custom authorization server's issuer)", async () => {
    const { tab, verifier, nonce, callback } = await authorizationRequest();
    await tab.click("text=Sign in with Fabrikam (Okta)");
    await throughIdpAndConsent(tab, "dana");
    const claims = await redeem(callback() as URL, verifier, nonce);
    expect(claims.sub).toBe(await linkedSubject("okta", "dana"));
    expect(claims.acr).toBe(MFA_ACR);
    expect(claims.amr).toEqual(["pwd", "mfa"]);
    await tab.context().close();
  });
});
