// SAML 2.0 SP-initiated login against a running `mandate dev` (issue 18 item 1): the OAuth
// authorization request → the tenant's SAML IdP (HTTP-Redirect AuthnRequest) → the test IdP's
// signed answer POSTed to the ACS → a Mandate session → the authorization request resumes and the
// code becomes tokens. Refused answers (unknown RelayState, another browser, wrong InResponseTo,
// replay) end on an access_denied page with nobody signed in. The SP metadata is public.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Browser, type OAuthServer } from "../helpers/oauth-server.ts";
import {
  codeFlow,
  readAuthnRequest,
  type SamlLoginServer,
  type SamlTestIdp,
  signedResponse,
  startSamlLoginServer,
} from "../helpers/saml-idp.ts";

const REDIRECT = "https://app.example.test/callback";

let setup: SamlLoginServer;
let server: OAuthServer;
let idp: SamlTestIdp;
let clientId: string;

beforeAll(async () => {
  setup = await startSamlLoginServer(REDIRECT);
  ({ server, idp, clientId } = setup);
}, 120_000);

afterAll(async () => {
  await setup?.stop();
});

const spEntityId = () => `${server.issuer}/saml/corp`;
const acsUrl = () => `${server.issuer}/login/idp/corp/acs`;

/** Starts an authorization request in `browser` and follows it to the IdP: the AuthnRequest it sends. */
async function toIdp(browser: Browser) {
  const flow = codeFlow(server.issuer, clientId, REDIRECT);
  const toLogin = await browser.get(flow.url);
  const loginUrl = new URL(toLogin.headers.get("location") ?? "", server.issuer);
  const interaction = loginUrl.searchParams.get("interaction");
  expect(interaction).toBeTruthy();
  const start = await browser.get(`${server.issuer}/login/idp/corp?interaction=${interaction}`);
  expect([302, 303]).toContain(start.status);
  const redirectUrl = start.headers.get("location") ?? "";
  expect(redirectUrl.startsWith(`${idp.ssoUrl}?`)).toBe(true);
  return { request: readAuthnRequest(redirectUrl), flow, interaction: interaction as string };
}

function answer(request: ReturnType<typeof readAuthnRequest>, extra: { inResponseTo?: string; nameId?: string } = {}) {
  return signedResponse(idp, {
    audience: spEntityId(),
    recipient: request.acsUrl,
    destination: request.acsUrl,
    inResponseTo: request.id,
    nameId: "alice@corp.example",
    attributes: { email: "alice@corp.example" },
    signResponse: true,
    ...extra,
  });
}

async function refusedWithoutSession(response: Response): Promise<void> {
  expect(response.status).toBe(403);
  expect(await response.text()).toContain("access_denied");
  expect(response.headers.getSetCookie().filter((c) => !c.startsWith("mandate_federation="))).toEqual([]);
}

describe("SAML SP-initiated login", () => {
  it("publishes the SP metadata at /saml/{id}/metadata", async () => {
    const response = await fetch(`${server.issuer}/saml/corp/metadata`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/samlmetadata+xml");
    const xml = await response.text();
    expect(xml).toContain(`entityID="${spEntityId()}"`);
    expect(xml).toContain(`Location="${acsUrl()}"`);
    expect((await fetch(`${server.issuer}/saml/nope/metadata`)).status).toBe(404);
  });

  it("signs in through the IdP and resumes the authorization request to a code and tokens", async () => {
    const browser = new Browser();
    const { request, flow } = await toIdp(browser);
    expect(request.acsUrl).toBe(acsUrl());
    expect(request.issuer).toBe(spEntityId());
    const back = await browser.post(request.acsUrl, {
      SAMLResponse: answer(request),
      RelayState: request.relayState ?? "",
    });
    expect([302, 303]).toContain(back.status);
    const resume = new URL(back.headers.get("location") ?? "", server.issuer);
    expect(resume.pathname).toBe(new URL(`${server.issuer}/oauth2/resume`).pathname);
    const callback = await browser.authorize(resume.toString(), REDIRECT);
    const code = callback.searchParams.get("code");
    expect(code).toBeTruthy();
    const claims = await flow.redeem(code as string);
    // Not a dev user: the subject linked to the SAML NameID.
    expect(claims.sub).not.toBe("dev-alice");
    expect(typeof claims.sub).toBe("string");
  });

  it("refuses a replayed answer (the login is single use) without a session", async () => {
    const browser = new Browser();
    const { request } = await toIdp(browser);
    const form = { SAMLResponse: answer(request), RelayState: request.relayState ?? "" };
    expect([302, 303]).toContain((await browser.post(request.acsUrl, form)).status);
    await refusedWithoutSession(await browser.post(request.acsUrl, form));
  });

  it("refuses an unknown or missing RelayState, and an answer in another browser", async () => {
    const browser = new Browser();
    const { request } = await toIdp(browser);
    const samlResponse = answer(request);
    await refusedWithoutSession(
      await browser.post(request.acsUrl, { SAMLResponse: samlResponse, RelayState: "forged" }),
    );
    await refusedWithoutSession(await browser.post(request.acsUrl, { SAMLResponse: samlResponse }));
    await refusedWithoutSession(
      await new Browser().post(request.acsUrl, { SAMLResponse: samlResponse, RelayState: request.relayState ?? "" }),
    );
  });

  it("refuses an answer to another AuthnRequest (wrong InResponseTo) without a session", async () => {
    const browser = new Browser();
    const { request } = await toIdp(browser);
    await refusedWithoutSession(
      await browser.post(request.acsUrl, {
        SAMLResponse: answer(request, { inResponseTo: "_not-our-request" }),
        RelayState: request.relayState ?? "",
      }),
    );
  });
});
