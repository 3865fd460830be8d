// The same server through openid-client (panva, OpenID Certified relying party) and through a real
// browser: headless Chromium signs in on the login page and approves on the consent page, which
// are checked for accessibility basics (labels, headings, lang, focusable controls) and security
// headers (CSP, no framing).
import * as client from "openid-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserAvailable, launchChromium } from "../helpers/browser.ts";
import { DEV_PASSWORD, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

let server: OAuthServer;
const REDIRECT = "http://127.0.0.1:9/callback"; // never contacted: we stop at the redirect

beforeAll(async () => {
  server = await startOAuthServer();
}, 30_000);
afterAll(async () => {
  await server?.stop();
});

const insecure = { execute: [client.allowInsecureRequests] };

describe("openid-client", () => {
  it("discovers, gets client credentials tokens, introspects and revokes them", async () => {
    const { clientId, clientSecret } = await server.register({
      grantTypes: ["client_credentials"],
      scope: "reports.read",
      resources: ["https://reports.example/"],
    });
    const config = await client.discovery(
      new URL(server.issuer),
      clientId,
      clientSecret,
      client.ClientSecretBasic(clientSecret),
      insecure,
    );
    expect(config.serverMetadata().issuer).toBe(server.issuer);
    const tokens = await client.clientCredentialsGrant(config, {
      scope: "reports.read",
      resource: "https://reports.example/",
    });
    expect(tokens.token_type).toBe("bearer");
    const introspection = await client.tokenIntrospection(config, tokens.access_token);
    expect(introspection).toMatchObject({ active: true, scope: "reports.read", aud: "https://reports.example/" });
    await client.tokenRevocation(config, tokens.access_token);
    expect((await client.tokenIntrospection(config, tokens.access_token)).active).toBe(false);
  });

  it.skipIf(!browserAvailable())(
    "runs the code flow with PKCE in headless Chromium, then refresh and userinfo",
    async () => {
      const { clientId, clientSecret } = await server.register({
        clientName: "Expense reports",
        redirectUris: [REDIRECT],
        grantTypes: ["authorization_code", "refresh_token"],
        tokenEndpointAuthMethod: "client_secret_post",
        scope: "reports.read",
        resources: ["https://reports.example/"],
      });
      // openid-client's default client authentication is client_secret_post.
      const config = await client.discovery(new URL(server.issuer), clientId, clientSecret, undefined, insecure);
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: "openid profile reports.read",
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: "S256",
        state,
        nonce,
        resource: "https://reports.example/",
      });

      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        let callback: string | undefined;
        await page.route(`${REDIRECT}**`, (route) => {
          callback = route.request().url();
          return route.fulfill({ status: 200, body: "done" });
        });
        const login = await page.goto(url.href);
        expect(login?.headers()["content-security-policy"]).toContain("frame-ancestors 'none'");
        expect(await page.getAttribute("html", "lang")).toBe("en");
        expect(await page.locator("h1").textContent()).toBe("Sign in");
        // Every input has a label the browser associates with it.
        await page.getByLabel("Username").fill("alice");
        await page.getByLabel("Password").fill("wrong password");
        await page.getByRole("button", { name: "Sign in" }).click();
        expect(await page.getByRole("alert").textContent()).toContain("not correct");
        await page.getByLabel("Password").fill(DEV_PASSWORD);
        await page.getByRole("button", { name: "Sign in" }).click();
        await page.getByRole("heading", { name: "Allow Expense reports?" }).waitFor();
        const permissions = await page.getByRole("list", { name: "Requested permissions" }).textContent();
        expect(permissions).toContain("See your name and username");
        expect(permissions).toContain("reports.read");
        expect(await page.getByRole("list", { name: "Services" }).textContent()).toContain("https://reports.example/");
        await page.screenshot({ path: "test-results/consent.png", fullPage: true });
        // Keyboard only: the Allow button is reachable and activates with Enter.
        await page.getByRole("button", { name: "Allow" }).focus();
        await page.keyboard.press("Enter");
        await expect.poll(() => callback, { timeout: 10_000 }).toBeTruthy();

        const tokens = await client.authorizationCodeGrant(config, new URL(callback as string), {
          pkceCodeVerifier: verifier,
          expectedState: state,
          expectedNonce: nonce,
        });
        expect(tokens.claims()).toMatchObject({ sub: "dev-alice", name: "Alice Example", iss: server.issuer });
        const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token as string);
        expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
        // The access token's audience is the resource; userinfo needs one for the issuer.
        const userinfoTokens = await client
          .refreshTokenGrant(config, refreshed.refresh_token as string, { resource: server.issuer })
          .catch((e) => e);
        expect(userinfoTokens).toMatchObject({ error: "invalid_target" }); // only granted resources (RFC 8707 §2.2)
      } finally {
        await browser.close();
      }
    },
  );
});
