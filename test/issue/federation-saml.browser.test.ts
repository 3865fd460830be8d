// SAML 2.0 login in headless Chromium against a running `mandate dev`: the login page's "Sign in
// with Corp SSO" button → the SP's HTTP-Redirect AuthnRequest → a test IdP (an HTTP server here,
// signing with the saml-idp helper) → its HTTP-POST form to the ACS → consent → the client's
// redirect with a code, which yields tokens. The browser carries the cookies itself (the login
// handle's cookie must come back with the IdP's POST).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserAvailable, launchChromium } from "../helpers/browser.ts";
import type { OAuthServer } from "../helpers/oauth-server.ts";
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
let idpServer: Server;
let clientId: string;

const escapeHtml = (s: string) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");

/** The IdP's SSO endpoint: reads the AuthnRequest, answers with a signed Response in a POST form. */
function startIdpServer(): Promise<string> {
  idpServer = createServer((req, res) => {
    const url = `http://${req.headers.host}${req.url}`;
    const request = readAuthnRequest(url);
    const samlResponse = signedResponse(idp, {
      audience: request.issuer,
      recipient: request.acsUrl,
      destination: request.acsUrl,
      inResponseTo: request.id,
      nameId: "carol@corp.example",
      attributes: { email: "carol@corp.example" },
      signResponse: true,
    });
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(
      `<!doctype html><html lang="en"><head><title>Corp IdP</title></head><body>` +
        `<form method="post" action="${escapeHtml(request.acsUrl)}">` +
        `<input type="hidden" name="SAMLResponse" value="${escapeHtml(samlResponse)}">` +
        `<input type="hidden" name="RelayState" value="${escapeHtml(request.relayState ?? "")}">` +
        `<button type="submit">Continue to Mandate</button></form></body></html>`,
    );
  });
  return new Promise((resolve) =>
    idpServer.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(idpServer.address() as AddressInfo).port}`)),
  );
}

beforeAll(async () => {
  setup = await startSamlLoginServer(REDIRECT, await startIdpServer());
  ({ server, idp, clientId } = setup);
}, 120_000);

afterAll(async () => {
  idpServer?.close();
  await setup?.stop();
});

describe.skipIf(!browserAvailable())("SAML login in headless Chromium", () => {
  it("signs in at the SAML IdP from the login page and the code yields tokens", async () => {
    const flow = codeFlow(server.issuer, clientId, REDIRECT);
    const browser = await launchChromium();
    let callback: string | undefined;
    let signedInAs: string | undefined;
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(10_000);
      await page.route(`${REDIRECT}**`, (route) => {
        callback = route.request().url();
        return route.fulfill({ status: 200, body: "done" });
      });
      await page.goto(flow.url);
      await page.getByRole("link", { name: "Sign in with Corp SSO" }).click();
      await page.getByRole("button", { name: "Continue to Mandate" }).click();
      await page.waitForURL((url) => url.href.startsWith(REDIRECT) || url.pathname.endsWith("/consent"));
      // The consent page names the subject the SAML NameID was linked to.
      signedInAs = /Signed in as ([^\s.]+)/.exec((await page.locator("body").textContent()) ?? "")?.[1];
      if (!callback) await page.getByRole("button", { name: "Allow" }).click();
      await page.waitForURL((url) => url.href.startsWith(REDIRECT));
    } finally {
      await browser.close();
    }
    const code = new URL(callback as string).searchParams.get("code");
    expect(code).toBeTruthy();
    const claims = await flow.redeem(code as string);
    expect(signedInAs).toMatch(/^fed_corp_/);
    expect(claims.sub).toBe(signedInAs);
  }, 60_000);
});
