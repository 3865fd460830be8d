// The Ory Kratos identity provider: how a Kratos session becomes an Authentication (acr, RFC 8176
// amr, OIDC claims), the login redirect, and the real @ory/client calls against Kratos's official
// OpenAPI contract (v26.2.0) served by Prism in mock mode with request validation.
import type { IncomingMessage } from "node:http";
import type { Identity, Session } from "@ory/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authenticationFromSession, KratosIdentity } from "../../services/issue/identity/kratos.ts";
import type { LoginRequest } from "../../services/issue/identity/provider.ts";
import { ManualClock } from "../../services/shared/clock.ts";
import { type KratosContract, startKratosContract } from "../helpers/kratos-prism.ts";
import { freePort } from "../helpers/oauth-server.ts";

const NOW = Date.UTC(2026, 0, 1, 12);
const iso = (ms: number) => new Date(ms).toISOString();

function session(overrides: Partial<Session> = {}, identity: Partial<Identity> = {}): Session {
  return {
    id: "5f6f2d0e-7d8c-4a57-9b3e-1f2a3b4c5d6e",
    active: true,
    authenticated_at: iso(NOW - 60_000),
    expires_at: iso(NOW + 3_600_000),
    authenticator_assurance_level: "aal1",
    authentication_methods: [{ method: "password", aal: "aal1", completed_at: iso(NOW - 60_000) }],
    identity: {
      id: "0b7c6a55-1d2e-4f30-8a91-b2c3d4e5f607",
      schema_id: "default",
      schema_url: "https://kratos.example/schemas/default",
      state: "active",
      traits: { email: "Ada@Example.com", name: { first: "Ada", last: "Lovelace" } },
      verifiable_addresses: [{ value: "ada@example.com", verified: true, via: "email", status: "completed" }],
      ...identity,
    },
    ...overrides,
  };
}

describe("Kratos session → Authentication (acr, RFC 8176 amr, OIDC claims)", () => {
  it("maps subject, auth time, acr and claims of a password session", () => {
    expect(authenticationFromSession(session(), NOW)).toEqual({
      subject: "0b7c6a55-1d2e-4f30-8a91-b2c3d4e5f607",
      authTime: NOW - 60_000,
      acr: "aal1",
      amr: ["pwd"],
      claims: {
        name: "Ada Lovelace",
        given_name: "Ada",
        family_name: "Lovelace",
        email: "Ada@Example.com",
        email_verified: true,
      },
      // The session's id: a mandate granted in it may end with it (revoke_on_session_end).
      sessionId: "5f6f2d0e-7d8c-4a57-9b3e-1f2a3b4c5d6e",
    });
  });

  it("dedupes amr values and adds mfa at aal2", () => {
    const auth = authenticationFromSession(
      session({
        authenticator_assurance_level: "aal2",
        authentication_methods: [
          { method: "password" },
          { method: "totp" },
          { method: "lookup_secret" },
          { method: "password" },
        ],
      }),
      NOW,
    );
    expect(auth).toMatchObject({ acr: "aal2", amr: ["pwd", "otp", "mfa"] });
  });

  it.each<[string, Session["authentication_methods"], string[]]>([
    ["webauthn (security key)", [{ method: "webauthn" }], ["hwk"]],
    ["passkey (may be synced)", [{ method: "passkey" }], ["pop"]],
    ["one-time code", [{ method: "code" }], ["otp"]],
    ["recovery link and code", [{ method: "link_recovery" }, { method: "code_recovery" }], ["otp"]],
    ["profile (no factor)", [{ method: "profile" }], []],
    [
      "oidc: registered upstream values only",
      [{ method: "oidc", upstream_amr: ["pwd", "x-corp", "hwk"] }],
      ["pwd", "hwk"],
    ],
    ["password's upstream_amr is not trusted", [{ method: "password", upstream_amr: ["hwk"] }], ["pwd"]],
  ])("maps %s to its amr", (_, methods, amr) => {
    expect(authenticationFromSession(session({ authentication_methods: methods }), NOW)?.amr).toEqual(amr);
  });

  it.each<[string | undefined, string]>([
    [undefined, "aal1"],
    ["aal1", "aal1"],
    ["aal2", "aal2"],
    ["aal3", "aal2"],
  ])("maps the assurance level %s to acr %s", (aal, acr) => {
    const s = session({ authenticator_assurance_level: aal as Session["authenticator_assurance_level"] });
    expect(authenticationFromSession(s, NOW)?.acr).toBe(acr);
  });

  it("takes a plain-string name and username; email_verified only for that verified address", () => {
    const claims = (traits: unknown, addresses: Identity["verifiable_addresses"]) =>
      authenticationFromSession(session({}, { traits, verifiable_addresses: addresses }), NOW)?.claims;
    expect(claims({ email: "ada@example.com", name: "Ada L.", username: "ada" }, [])).toEqual({
      name: "Ada L.",
      preferred_username: "ada",
      email: "ada@example.com",
      email_verified: false,
    });
    const other = [{ value: "other@example.com", verified: true, via: "email" as const, status: "completed" }];
    expect(claims({ email: "ada@example.com" }, other)).toEqual({ email: "ada@example.com", email_verified: false });
    const unverified = [{ value: "ada@example.com", verified: false, via: "email" as const, status: "sent" }];
    expect(claims({ email: "ada@example.com" }, unverified)).toEqual({
      email: "ada@example.com",
      email_verified: false,
    });
    expect(claims({ name: { first: "Ada" } }, [])).toEqual({ name: "Ada", given_name: "Ada" });
    expect(claims(null, [])).toEqual({});
  });

  it.each<[string, Session]>([
    ["inactive", session({ active: false })],
    ["without active", session({ active: undefined })],
    ["expired", session({ expires_at: iso(NOW) })],
    ["without expires_at", session({ expires_at: undefined })],
    ["without authenticated_at", session({ authenticated_at: "not a date" })],
    ["at aal0", session({ authenticator_assurance_level: "aal0" })],
    ["without identity", session({ identity: undefined })],
    ["of a deactivated identity", session({}, { state: "inactive" })],
  ])("proves no login when the session is %s", (_, s) => {
    expect(authenticationFromSession(s, NOW)).toBeUndefined();
  });
});

describe("Kratos login redirect", () => {
  const request: LoginRequest = {
    tenant: "acme",
    returnTo: "https://id.example.com/t/acme/oauth2/resume?interaction=a b&x=1",
    interaction: "a b",
    loginHint: "ada@example.com",
    fresh: false,
  };

  it("starts the browser login flow at the browser URL with return_to encoded, no login_hint", () => {
    const kratos = new KratosIdentity({ publicUrl: "http://kratos:4433", browserUrl: "https://auth.example.com/" });
    const url = kratos.loginUrl(request);
    expect(url).toBe(
      "https://auth.example.com/self-service/login/browser?return_to=https%3A%2F%2Fid.example.com%2Ft%2Facme%2Foauth2%2Fresume%3Finteraction%3Da+b%26x%3D1",
    );
    expect(new URL(url).searchParams.get("return_to")).toBe(request.returnTo);
  });

  it("falls back to the public URL", () => {
    const kratos = new KratosIdentity({ publicUrl: "https://auth.example.com" });
    expect(kratos.loginUrl(request)).toMatch(/^https:\/\/auth\.example\.com\/self-service\/login\/browser\?/);
  });

  it.each<[Partial<LoginRequest>, Record<string, string>]>([
    [{ fresh: true }, { refresh: "true" }],
    [{ acr: "aal2" }, { aal: "aal2" }],
    [{ acr: "aal1" }, {}],
    [
      { fresh: true, acr: "aal2" },
      { refresh: "true", aal: "aal2" },
    ],
  ])("asks Kratos for %o with %o", (change, params) => {
    const kratos = new KratosIdentity({ publicUrl: "https://auth.example.com" });
    const query = Object.fromEntries(new URL(kratos.loginUrl({ ...request, ...change })).searchParams);
    expect(query).toEqual({ return_to: request.returnTo, ...params });
  });
});

/** A fetch that can ask Prism for a given response (`Prefer`) and records what went over the wire. */
function recordingFetch(prefer?: string) {
  const calls: Array<{ request: Request; status: number; body: unknown }> = [];
  const wrapped: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    if (prefer) request.headers.set("Prefer", prefer);
    const response = await fetch(request.clone());
    const text = await response.clone().text();
    calls.push({ request, status: response.status, body: text ? JSON.parse(text) : undefined });
    return response;
  };
  return { fetch: wrapped, calls };
}

const browser = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe("Kratos adapter against the Kratos v26.2.0 OpenAPI contract (Prism mock, request validation)", () => {
  let contract: KratosContract;
  let base: string;

  beforeAll(async () => {
    contract = await startKratosContract();
    base = contract.url;
  });

  afterAll(async () => {
    await contract?.stop();
  });

  it("drives the authorization endpoint: unauthenticated browsers go to the Kratos login flow, and an aal0 session issues no code", async () => {
    const { startOAuthServer } = await import("../helpers/oauth-server.ts");
    const server = await startOAuthServer({ MANDATE_IDENTITY_PROVIDER: "kratos", MANDATE_KRATOS_PUBLIC_URL: base });
    try {
      const { clientId } = await server.register({
        redirectUris: ["https://app.example/cb"],
        tokenEndpointAuthMethod: "none",
      });
      const query = new URLSearchParams({
        client_id: clientId,
        redirect_uri: "https://app.example/cb",
        response_type: "code",
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method: "S256",
      });
      // No Kratos cookie: the contract mock still answers toSession (with its aal0 example), which the
      // adapter refuses, so the browser is sent to Kratos's login flow with return_to = our resume URL.
      const first = await fetch(`${server.issuer}/oauth2/authorize?${query}`, {
        redirect: "manual",
        headers: { cookie: "ory_kratos_session=abc" },
      });
      expect(first.status).toBe(303);
      const login = new URL(first.headers.get("location") as string);
      expect(`${login.origin}${login.pathname}`).toBe(`${base}/self-service/login/browser`);
      const returnTo = new URL(login.searchParams.get("return_to") as string);
      expect(`${returnTo.origin}${returnTo.pathname}`).toBe(`${server.issuer}/oauth2/resume`);
      // The login URL is one Kratos's contract accepts.
      expect((await fetch(login)).status).toBe(200);
      // Coming back still with an aal0 session: no code, back to login (fail closed).
      const interaction = (first.headers.getSetCookie().find((c) => c.startsWith("mandate_interaction=")) ?? "").split(
        ";",
      )[0] as string;
      const resumed = await fetch(returnTo, {
        redirect: "manual",
        headers: { cookie: `${interaction}; ory_kratos_session=abc` },
      });
      expect(resumed.status).toBe(303);
      expect(resumed.headers.get("location")).toContain("/self-service/login/browser");
      expect(resumed.headers.get("location")).not.toContain("code=");
    } finally {
      await server.stop();
    }
  });

  it("completes the code flow through Kratos: the session's identity becomes sub, its AAL and methods acr and amr", async () => {
    // A pass-through in front of the contract mock: every request is validated by Prism; the one
    // session it returns is made a live aal1 password session (values the Session schema allows),
    // since the contract's generated example is an inactive aal0 session.
    const { createServer } = await import("node:http");
    const proxy = createServer(async (req, res) => {
      const upstream = await fetch(`${base}${req.url}`, { headers: { cookie: req.headers.cookie ?? "" } });
      let body = await upstream.text();
      if (req.url?.startsWith("/sessions/whoami") && upstream.status === 200) {
        const session = JSON.parse(body) as Session;
        const now = Date.now();
        Object.assign(session, {
          active: true,
          authenticator_assurance_level: "aal1",
          authenticated_at: new Date(now - 60_000).toISOString(),
          expires_at: new Date(now + 3_600_000).toISOString(),
          authentication_methods: [
            { method: "password", aal: "aal1", completed_at: new Date(now - 60_000).toISOString() },
          ],
        });
        if (session.identity) session.identity.state = "active";
        body = JSON.stringify(session);
      }
      res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "application/json" });
      res.end(body);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const kratos = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    const { startOAuthServer } = await import("../helpers/oauth-server.ts");
    const server = await startOAuthServer({ MANDATE_IDENTITY_PROVIDER: "kratos", MANDATE_KRATOS_PUBLIC_URL: kratos });
    try {
      const { clientId } = await server.register({
        clientName: "Kratos app",
        redirectUris: ["https://app.example/cb"],
        tokenEndpointAuthMethod: "none",
      });
      const verifier = "k".repeat(64);
      const { createHash } = await import("node:crypto");
      const query = new URLSearchParams({
        client_id: clientId,
        redirect_uri: "https://app.example/cb",
        response_type: "code",
        scope: "openid",
        code_challenge: createHash("sha256").update(verifier).digest("base64url"),
        code_challenge_method: "S256",
      });
      const kratosCookie = "ory_kratos_session=contract-session";
      const start = await fetch(`${server.issuer}/oauth2/authorize?${query}`, {
        redirect: "manual",
        headers: { cookie: kratosCookie },
      });
      const interaction = (start.headers.getSetCookie().find((c) => c.startsWith("mandate_interaction=")) ?? "").split(
        ";",
      )[0];
      const cookie = `${interaction}; ${kratosCookie}`;
      expect(start.headers.get("location")).toContain("/consent?");
      const consent = await fetch(start.headers.get("location") as string, { headers: { cookie } });
      const html = await consent.text();
      const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? "";
      const approved = await fetch(`${server.issuer}/consent`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ interaction: field("interaction"), csrf: field("csrf"), decision: "approve" }),
      });
      const callback = new URL(approved.headers.get("location") as string);
      expect(callback.searchParams.get("iss")).toBe(server.issuer);
      const token = await fetch(`${server.issuer}/oauth2/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "authorization_code",
          code: callback.searchParams.get("code") as string,
          redirect_uri: "https://app.example/cb",
          code_verifier: verifier,
          client_id: clientId,
        }),
      }).then((r) => r.json());
      const claims = JSON.parse(Buffer.from(String(token.id_token).split(".")[1] as string, "base64url").toString());
      const whoami = (await (
        await fetch(`${base}/sessions/whoami`, { headers: { cookie: kratosCookie } })
      ).json()) as Session;
      expect(claims).toMatchObject({ sub: whoami.identity?.id, acr: "aal1", amr: ["pwd"], iss: server.issuer });
    } finally {
      await server.stop();
      proxy.close();
    }
  });

  it("refuses requests that violate the contract (so the checks below can fail)", async () => {
    expect((await fetch(`${base}/self-service/login/browser?refresh=maybe`)).status).toBe(400);
    expect((await fetch(`${base}/self-service/login/browser?refresh=true`)).status).toBe(200);
  });

  it("builds a login URL whose query createBrowserLoginFlow accepts", async () => {
    const kratos = new KratosIdentity({ publicUrl: "http://unused.invalid", browserUrl: base });
    const url = kratos.loginUrl({
      tenant: "acme",
      returnTo: "https://id.example.com/t/acme/oauth2/resume?interaction=x",
      interaction: "x",
      fresh: true,
      acr: "aal2",
    });
    const response = await fetch(url, { redirect: "manual" });
    expect(response.status).toBe(200);
    expect(await response.json()).toHaveProperty("id");
  });

  it("forwards the browser's cookie to toSession and maps the contract's session", async () => {
    // Before the placeholder timestamps Prism derives from the schema (2019-08-24T14:15:22Z).
    const clock = new ManualClock(Date.UTC(2019, 0, 1));
    const wire = recordingFetch();
    const kratos = new KratosIdentity({ publicUrl: base, fetch: wire.fetch, clock });
    const cookie = "ory_kratos_session=MTY5; other=1";
    const result = await kratos.session(browser({ cookie }), "acme");

    expect(wire.calls).toHaveLength(1);
    const [call] = wire.calls;
    expect(new URL(call?.request.url ?? "").pathname).toBe("/sessions/whoami");
    expect(call?.request.headers.get("cookie")).toBe(cookie);
    expect(call?.status).toBe(200);
    const body = call?.body as Session;
    expect(result).toEqual(authenticationFromSession(body, clock.now()));
    // The contract's placeholder session is at aal0 (first value of its enum): no factor
    // completed, so no login. The same session at aal1 maps field by field.
    expect(body.authenticator_assurance_level).toBe("aal0");
    expect(result).toBeUndefined();
    const auth = authenticationFromSession({ ...body, authenticator_assurance_level: "aal1" }, clock.now());
    expect(auth?.subject).toBe(body.identity?.id);
    expect(auth?.acr).toBe("aal1");
    expect(auth?.authTime).toBe(Date.parse(body.authenticated_at ?? ""));
    expect(auth?.amr).toEqual(["pwd"]);
  });

  it.each([
    ["X-Session-Token", { "x-session-token": "MP2YWEMeM8MxjkGKpH4dqOQ4Q4DlSPaj" }],
    ["Authorization: Bearer", { authorization: "Bearer MP2YWEMeM8MxjkGKpH4dqOQ4Q4DlSPaj" }],
  ])("sends a session token from %s as X-Session-Token", async (_, headers) => {
    const wire = recordingFetch();
    const kratos = new KratosIdentity({ publicUrl: base, fetch: wire.fetch });
    await kratos.session(browser(headers), "acme");
    expect(wire.calls[0]?.request.headers.get("x-session-token")).toBe("MP2YWEMeM8MxjkGKpH4dqOQ4Q4DlSPaj");
    expect(wire.calls[0]?.status).toBe(200);
  });

  it.each(["401", "403"])("takes Kratos's %s as logged out", async (code) => {
    const wire = recordingFetch(`code=${code}`);
    const kratos = new KratosIdentity({ publicUrl: base, fetch: wire.fetch });
    expect(await kratos.session(browser({ cookie: "ory_kratos_session=expired" }), "acme")).toBeUndefined();
    expect(wire.calls[0]?.status).toBe(Number(code));
  });

  it("fails closed on a Kratos 5xx", async () => {
    const wire = recordingFetch("code=500");
    const kratos = new KratosIdentity({ publicUrl: base, fetch: wire.fetch });
    await expect(kratos.session(browser({ cookie: "ory_kratos_session=x" }), "acme")).rejects.toThrow(/HTTP 500/);
  });

  it("fails closed when Kratos is unreachable", async () => {
    const kratos = new KratosIdentity({ publicUrl: `http://127.0.0.1:${await freePort()}` });
    await expect(kratos.session(browser({ cookie: "ory_kratos_session=x" }), "acme")).rejects.toThrow();
  });

  it("does not ask Kratos when the browser carries neither cookie nor token", async () => {
    const wire = recordingFetch();
    const kratos = new KratosIdentity({ publicUrl: base, fetch: wire.fetch });
    expect(await kratos.session(browser({}), "acme")).toBeUndefined();
    expect(wire.calls).toHaveLength(0);
  });
  // --- the admin API (identity.kratos.adminUrl): account status, login_hint lookup; sign-out ---

  const ADA = "0b7c6a55-1d2e-4f30-8a91-b2c3d4e5f607";

  it("has no account status or user lookup without the admin URL", () => {
    const kratos = new KratosIdentity({ publicUrl: base });
    expect(kratos.accountStatus).toBeUndefined();
    expect(kratos.findUser).toBeUndefined();
  });

  it("asks getIdentity for an account's status: the contract's identity maps by its state", async () => {
    const wire = recordingFetch();
    const kratos = new KratosIdentity({ publicUrl: "http://unused.invalid", adminUrl: base, fetch: wire.fetch });
    const status = await kratos.accountStatus?.("acme", ADA).catch((error: Error) => error);
    expect(wire.calls).toHaveLength(1);
    const [call] = wire.calls;
    expect(new URL(call?.request.url ?? "").pathname).toBe(`/admin/identities/${ADA}`);
    expect(call?.request.method).toBe("GET");
    expect(call?.status).toBe(200);
    const body = call?.body as Identity;
    // Prism answers with the schema's example, whose id is not the one asked for: an answer about
    // another identity is no answer (fails closed); the same identity maps by its state.
    if (body.id !== ADA) expect(String(status)).toMatch(/another identity/);
    else expect(status).toBe(body.state === "inactive" ? "disabled" : "active");
  });

  it("maps the identity's state: active, inactive (disabled); 404 is deleted; a subject that is no UUID is deleted unasked", async () => {
    const fixed = (identity: Partial<Identity>, status = 200): typeof fetch =>
      (async (input: RequestInfo | URL, init?: RequestInit) => {
        // The request is the contract's (Prism validates it); the answer is this identity's.
        const checked = await fetch(new Request(input, init));
        expect(checked.status).toBe(200);
        return new Response(status === 200 ? JSON.stringify({ ...(await checked.json()), ...identity }) : "{}", {
          status,
          headers: { "content-type": "application/json" },
        });
      }) as typeof fetch;
    const status = (f: typeof fetch, subject = ADA) =>
      new KratosIdentity({ publicUrl: "http://unused.invalid", adminUrl: base, fetch: f }).accountStatus?.(
        "acme",
        subject,
      );
    expect(await status(fixed({ id: ADA, state: "active" }))).toBe("active");
    expect(await status(fixed({ id: ADA, state: "inactive" }))).toBe("disabled");
    expect(await status(recordingFetch("code=404").fetch)).toBe("deleted");
    const wire = recordingFetch();
    expect(await status(wire.fetch, "dev-alice")).toBe("deleted");
    expect(wire.calls).toHaveLength(0);
  });

  it("fails closed when the admin API fails or is unreachable", async () => {
    const failing = new KratosIdentity({
      publicUrl: "http://unused.invalid",
      adminUrl: base,
      fetch: recordingFetch("code=500").fetch,
    });
    await expect(failing.accountStatus?.("acme", ADA)).rejects.toThrow(/HTTP 500/);
    await expect(failing.findUser?.("acme", "ada@example.com")).rejects.toThrow(/HTTP 500/);
    const gone = new KratosIdentity({ publicUrl: base, adminUrl: `http://127.0.0.1:${await freePort()}` });
    await expect(gone.accountStatus?.("acme", ADA)).rejects.toThrow();
  });

  it("resolves a login_hint by credentials identifier (listIdentities, exact match) or by id (getIdentity)", async () => {
    const wire = recordingFetch();
    const kratos = new KratosIdentity({ publicUrl: "http://unused.invalid", adminUrl: base, fetch: wire.fetch });
    const found = await kratos.findUser?.("acme", "ada@example.com");
    const [list] = wire.calls;
    const url = new URL(list?.request.url ?? "");
    expect(url.pathname).toBe("/admin/identities");
    expect(url.searchParams.get("credentials_identifier")).toBe("ada@example.com");
    expect(list?.status).toBe(200);
    const identities = list?.body as Identity[];
    const active = identities.filter((i) => i.state !== "inactive");
    expect(found).toBe(active.length === 1 ? active[0]?.id : undefined);

    const byId = await kratos.findUser?.("acme", ADA);
    const [, get] = wire.calls;
    expect(new URL(get?.request.url ?? "").pathname).toBe(`/admin/identities/${ADA}`);
    expect(byId).toBe((get?.body as Identity | undefined)?.id === ADA ? ADA : undefined);
    // An id Kratos does not know names nobody.
    const missing = new KratosIdentity({
      publicUrl: "http://unused.invalid",
      adminUrl: base,
      fetch: recordingFetch("code=404").fetch,
    });
    expect(await missing.findUser?.("acme", ADA)).toBeUndefined();
  });

  it("names nobody when the identifier matches none, several, or only an inactive identity", async () => {
    const answering =
      (identities: Array<Partial<Identity>>): typeof fetch =>
      async (input, init) => {
        const checked = await fetch(new Request(input, init));
        expect(checked.status).toBe(200);
        return new Response(JSON.stringify(identities), { headers: { "content-type": "application/json" } });
      };
    const find = (identities: Array<Partial<Identity>>) =>
      new KratosIdentity({
        publicUrl: "http://unused.invalid",
        adminUrl: base,
        fetch: answering(identities),
      }).findUser?.("acme", "ada");
    expect(await find([])).toBeUndefined();
    expect(
      await find([
        { id: ADA, state: "active" },
        { id: "other", state: "active" },
      ]),
    ).toBeUndefined();
    expect(await find([{ id: ADA, state: "inactive" }])).toBeUndefined();
    expect(await find([{ id: ADA, state: "active" }])).toBe(ADA);
  });

  it("signs out through the browser logout flow: createBrowserLogoutFlow with the cookie, then updateLogoutFlow with its token", async () => {
    const wire = recordingFetch();
    const kratos = new KratosIdentity({ publicUrl: base, fetch: wire.fetch });
    const cookie = "ory_kratos_session=MTY5";
    const auth = { subject: ADA, authTime: 0, acr: "aal1", amr: ["pwd"], claims: {} };
    expect(await kratos.endSession(browser({ cookie }), "acme", auth)).toEqual({ clearCookies: [] });
    expect(wire.calls.map((c) => [new URL(c.request.url).pathname, c.status])).toEqual([
      ["/self-service/logout/browser", 200],
      ["/self-service/logout", 204],
    ]);
    expect(wire.calls[0]?.request.headers.get("cookie")).toBe(cookie);
    const token = (wire.calls[0]?.body as { logout_token?: string } | undefined)?.logout_token;
    expect(new URL(wire.calls[1]?.request.url ?? "").searchParams.get("token")).toBe(token);
  });

  it("signs a session-token client out with performNativeLogout; a 401 flow is a session already ended; a 500 fails", async () => {
    const wire = recordingFetch();
    const kratos = new KratosIdentity({ publicUrl: base, fetch: wire.fetch });
    const auth = { subject: ADA, authTime: 0, acr: "aal1", amr: ["pwd"], claims: {} };
    await kratos.endSession(browser({ "x-session-token": "MP2YWEMeM8MxjkGKpH4dqOQ4Q4DlSPaj" }), "acme", auth);
    expect(wire.calls[0]?.request.method).toBe("DELETE");
    expect(new URL(wire.calls[0]?.request.url ?? "").pathname).toBe("/self-service/logout/api");
    expect(await wire.calls[0]?.request.clone().json()).toEqual({ session_token: "MP2YWEMeM8MxjkGKpH4dqOQ4Q4DlSPaj" });
    expect(wire.calls[0]?.status).toBe(204);

    const ended = new KratosIdentity({ publicUrl: base, fetch: recordingFetch("code=401").fetch });
    expect(await ended.endSession(browser({ cookie: "ory_kratos_session=x" }), "acme", auth)).toEqual({
      clearCookies: [],
    });
    const failing = new KratosIdentity({ publicUrl: base, fetch: recordingFetch("code=500").fetch });
    await expect(failing.endSession(browser({ cookie: "ory_kratos_session=x" }), "acme", auth)).rejects.toThrow(
      /HTTP 500/,
    );
  });

  it("offers CIBA with Kratos only when the admin URL is set, and resolves its login_hint through Kratos", async () => {
    const { startOAuthServer } = await import("../helpers/oauth-server.ts");
    const without = await startOAuthServer({ MANDATE_IDENTITY_PROVIDER: "kratos", MANDATE_KRATOS_PUBLIC_URL: base });
    try {
      const metadata = await (await fetch(`${without.issuer}/.well-known/openid-configuration`)).json();
      expect(metadata.backchannel_authentication_endpoint).toBeUndefined();
    } finally {
      await without.stop();
    }
    const server = await startOAuthServer({
      MANDATE_IDENTITY_PROVIDER: "kratos",
      MANDATE_KRATOS_PUBLIC_URL: base,
      MANDATE_KRATOS_ADMIN_URL: base,
    });
    try {
      const metadata = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json();
      expect(metadata.backchannel_authentication_endpoint).toBe(`${server.issuer}/oauth2/bc-authorize`);
      expect(metadata.grant_types_supported).toContain("urn:openid:params:grant-type:ciba");
      const { ClientKind } = await import("../../gen/mandate/v1/clients_pb.js");
      const { clientId, clientSecret } = await server.register({
        kind: ClientKind.AGENT,
        clientName: "Kratos bot",
        owner: "ops",
        dpopJkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
        grantTypes: ["urn:openid:params:grant-type:ciba"],
        tokenEndpointAuthMethod: "client_secret_basic",
        scope: "orders.read",
        resources: ["https://api.example.com/"],
      });
      const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`;
      const ask = (hint: string) =>
        fetch(`${server.issuer}/oauth2/bc-authorize`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic },
          body: new URLSearchParams({
            scope: "orders.read",
            resource: "https://api.example.com/",
            login_hint: hint,
            mandate: JSON.stringify({ expires_in: 3600 }),
          }),
        });
      // The contract's listIdentities example names one identity: the request is addressed to it.
      const listed = (await (
        await fetch(`${base}/admin/identities?credentials_identifier=ada%40example.com`)
      ).json()) as Identity[];
      const response = await ask("ada@example.com");
      if (listed.filter((i) => i.state !== "inactive").length === 1) {
        expect(response.status).toBe(200);
        expect(await response.json()).toMatchObject({ auth_req_id: expect.any(String), interval: 5 });
      } else {
        expect(response.status).toBe(400);
        expect((await response.json()).error).toBe("unknown_user_id");
      }
    } finally {
      await server.stop();
    }
  }, 60_000);
});
