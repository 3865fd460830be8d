// Groups → roles through a whole federated login (issue 18 item 1, linking), against a running
// `mandate dev`: an Okta-shaped upstream IdP (oidc-provider in this process, a custom authorization
// server's issuer) releases `groups` in its ID token; the tenant's identity provider maps one group
// to a role (claim mapping, linking.ts); the client's authorization request goes through Mandate's
// authorization endpoint, login page, the IdP and back; the access token carries that role (RFC 9068
// §2.2.3.1 `roles`); and Authorize.Check over native gRPC in access-token mode, under the library's
// RBAC policy (which reads input.subject.attributes.roles), allows the role's action and denies
// another. A user whose groups are not in the mapping gets no role, and is denied (default deny).
import { createHash, randomBytes } from "node:crypto";
import tls from "node:tls";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Authorize, type Decision } from "../../gen/mandate/v1/authorize_pb.js";
import { buildBundle } from "../../services/authorize/rego/bundle.ts";
import { IdentityProviders } from "../../services/issue/identity/federation/registry.ts";
import { FederationSecrets } from "../../services/issue/identity/federation/sealing.ts";
import { Store } from "../../services/shared/store/store.ts";
import { adminClient } from "../helpers/admin.ts";
import { linkedIdentity, OidcProviderIdps } from "../helpers/federation-oidc-provider.ts";
import { Browser, type OAuthServer, redeemPublicCode, startOAuthServer } from "../helpers/oauth-server.ts";

const TENANT = "demo";
const IDP = "okta";
const ISSUER_PATH = "/oauth2/aus9rolesFabrikam2k4";
const CLIENT_SECRET = randomBytes(24).toString("base64url");
const FEDERATION_KEY = randomBytes(32).toString("base64url");
const REDIRECT_URI = "https://app.example/cb";
const RBAC = new URL("../../policies/library/rbac", import.meta.url).pathname;
/** The upstream users' groups: "Order Clerks" is mapped to a role, the others are not. */
const GROUPS: Record<string, string[]> = {
  bob: ["Everyone", "Order Clerks"],
  mallory: ["Everyone", "Contractors"],
};

let server: OAuthServer;
let store: Store;
let client: { clientId: string };
let authorize: ReturnType<typeof createClient<typeof Authorize>>;
const idps = new OidcProviderIdps();

beforeAll(async () => {
  await idps.start();
  // This process follows the browser's redirects to the IdP: it trusts the IdP's certificate as the Mandate process does.
  tls.setDefaultCACertificates([...tls.getCACertificates("default"), idps.tls.cert]);
  server = await startOAuthServer({
    NODE_EXTRA_CA_CERTS: idps.tls.certFile,
    MANDATE_OAUTH_ALLOW_PRIVATE_METADATA_HOSTS: "true",
    MANDATE_FEDERATION_SECRET_KEY: FEDERATION_KEY,
  });
  store = Store.open({ url: server.database });
  await idps.mount(
    ISSUER_PATH,
    {
      clientId: "mandate-okta",
      clientSecret: CLIENT_SECRET,
      redirectUri: `${server.issuer}/login/idp/${IDP}/callback`,
    },
    (sub) => ({ email: `${sub}@fabrikam.example`, email_verified: true, name: sub, groups: GROUPS[sub] ?? [] }),
    ["groups"],
  );
  await new IdentityProviders(store, () => Date.now()).create(TENANT, {
    id: IDP,
    kind: "oidc",
    displayName: "Fabrikam (Okta)",
    settings: {
      preset: "okta",
      issuer: idps.issuer(ISSUER_PATH),
      client_id: "mandate-okta",
      client_secret: new FederationSecrets(Buffer.from(FEDERATION_KEY, "base64url")).seal(
        { tenant: TENANT, provider: IDP, field: "client_secret" },
        CLIENT_SECRET,
      ),
    },
    emailDomains: ["fabrikam.example"],
    claimMapping: { groups: { claim: "groups", roles: { "Order Clerks": "order_clerk" } } },
    enabled: true,
  });
  client = await server.register({ redirectUris: [REDIRECT_URI], tokenEndpointAuthMethod: "none" });

  const address = server.process.summary.grpc as string;
  const { bytes } = await buildBundle(RBAC, { revision: "federation-rbac" });
  const pushed = await adminClient(Authorize, address, server.process.adminFile).pushPolicy({
    tenant: TENANT,
    bundle: bytes,
    activate: true,
  });
  expect(pushed.revision).toMatchObject({ revision: "federation-rbac", active: true });
  const caller = await server.caller("mandate:authorize", TENANT);
  authorize = createClient(Authorize, createGrpcTransport({ baseUrl: `http://${address}`, interceptors: [caller] }));
}, 60_000);

afterAll(async () => {
  await store?.close();
  await server?.stop();
  idps.close();
});

/**
 * The whole login as `username`: the client's authorization request, Mandate's login page and its
 * IdP button, the IdP's login and consent, the callback, Mandate's consent; the tokens of the code.
 */
async function federatedLogin(username: string): Promise<{ access_token: string; id_token: string }> {
  const browser = new Browser();
  const verifier = randomBytes(32).toString("base64url");
  const query = new URLSearchParams({
    client_id: client.clientId,
    redirect_uri: REDIRECT_URI,
    response_type: "code",
    scope: "openid profile",
    code_challenge: createHash("sha256").update(verifier).digest("base64url"),
    code_challenge_method: "S256",
    nonce: randomBytes(16).toString("base64url"),
  });
  const request = await browser.get(`${server.issuer}/oauth2/authorize?${query}`);
  expect(request.status).toBe(303);
  const page = await browser.get(new URL(request.headers.get("location") as string, server.issuer).toString());
  const button = new RegExp(`href="([^"]*/login/idp/${IDP}\\?[^"]*)"`).exec(await page.text())?.[1];
  expect(button, "the IdP's button on Mandate's login page").toBeDefined();

  // At the IdP: its redirects, then its login form (the username) and its consent form.
  let url = new URL((button as string).replaceAll("&amp;", "&"), server.issuer).toString();
  let response = await browser.get(url);
  const callback = `${server.issuer}/login/idp/${IDP}/callback`;
  for (let hops = 0; hops < 12 && !url.startsWith(callback); hops++) {
    const location = response.headers.get("location");
    if (location) {
      url = new URL(location, url).toString();
      if (!url.startsWith(callback)) response = await browser.get(url);
      continue;
    }
    const html = await response.text();
    expect(html, `a form at the IdP (${response.status})`).toContain('<form method="post">');
    response = await browser.post(url, html.includes('name="login"') ? { login: username } : {});
  }
  expect(url.startsWith(callback)).toBe(true);

  // Back at Mandate: the callback, Mandate's consent, the client's redirect with its code.
  const redirect = await browser.authorize(url, REDIRECT_URI);
  const token = await redeemPublicCode(
    server.issuer,
    { clientId: client.clientId, redirectUri: REDIRECT_URI },
    redirect.searchParams.get("code") as string,
    verifier,
  );
  expect(token.status).toBe(200);
  return (await token.json()) as { access_token: string; id_token: string };
}

async function check(accessToken: string, action: string): Promise<Decision> {
  const { decision } = await authorize.check({
    tenant: TENANT,
    accessToken,
    action,
    resource: { type: "order", id: "o-7" },
  });
  if (!decision) throw new Error("no decision");
  return decision;
}

const outcome = (decision: Decision) => ({
  allow: decision.allow,
  reasons: decision.reasons.map((r) => r.code),
  revision: decision.policyRevision,
});

describe("federated groups → roles → Authorize", () => {
  it("a mapped group's role reaches the access token (RFC 9068 roles) and the RBAC policy allows its actions only", async () => {
    const tokens = await federatedLogin("bob");
    const linked = await linkedIdentity(store, TENANT, IDP, "bob");
    expect(linked.attributes.roles).toEqual(["order_clerk"]);
    const access = decodeJwt(tokens.access_token);
    expect(access.sub).toBe(linked.subject);
    expect(access.roles).toEqual(["order_clerk"]);
    // Groups are the IdP's: only the roles they map to are Mandate's.
    expect(access.groups).toBeUndefined();
    expect(decodeJwt(tokens.id_token).roles).toEqual(["order_clerk"]);

    // order_clerk grants orders.*: allowed; invoices.read is no permission of it.
    expect(outcome(await check(tokens.access_token, "orders.create"))).toEqual({
      allow: true,
      reasons: [],
      revision: "federation-rbac",
    });
    expect(outcome(await check(tokens.access_token, "invoices.read"))).toEqual({
      allow: false,
      reasons: ["permission_missing"],
      revision: "federation-rbac",
    });
  });

  it("a user whose groups are not in the mapping gets no role, and is denied", async () => {
    const tokens = await federatedLogin("mallory");
    expect((await linkedIdentity(store, TENANT, IDP, "mallory")).attributes.roles ?? []).toEqual([]);
    expect(decodeJwt(tokens.access_token).roles).toBeUndefined();
    expect(outcome(await check(tokens.access_token, "orders.read"))).toEqual({
      allow: false,
      reasons: ["role_missing"],
      revision: "federation-rbac",
    });
  });

  it("a forged token claiming the role is no subject at all", async () => {
    const tokens = await federatedLogin("mallory");
    const [header, payload] = tokens.access_token.split(".") as [string, string];
    const claims = { ...(JSON.parse(Buffer.from(payload, "base64url").toString()) as object), roles: ["order_clerk"] };
    const forged = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${tokens.access_token.split(".")[2]}`;
    const decision = await check(forged, "orders.read");
    // Refused before any policy (RFC 9068 §4: the signature no longer matches the claims).
    expect(outcome(decision)).toMatchObject({ allow: false, reasons: ["token_invalid"] });
  });
});
