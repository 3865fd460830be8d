// Fuzzing every OAuth / OpenID Connect endpoint of a real `mandate dev` child process: token,
// authorize (GET and POST), PAR, introspection, revocation, registration and RFC 7592 management,
// userinfo, login, consent, discovery, JWKS — with malformed, oversized, deeply nested, ill-encoded
// (lone surrogates, invalid UTF-8, NUL), boundary and wrong-typed inputs, wrong content types,
// repeated parameters and garbage Authorization / DPoP headers, next to plausible ones (registered
// clients, their secrets, a live interaction) so the checks behind the first ones run too.
// Every answer must come within the deadline and never be a 5xx; at the end the process is alive,
// /healthz answers and the audit pipeline still drains (fuzz.ts).
import { createHash, randomBytes } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Browser, DEV_PASSWORD, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import {
  authorizationHeader,
  BAD_JWKS,
  contentType,
  count,
  DEADLINE_MS,
  dpopHeader,
  expectServerSound,
  fcParams,
  formBody,
  GOOD_JWK,
  type HttpCase,
  headerValue,
  jsonBody,
  nastyBytes,
  nastyString,
  type Pairs,
  pathSafe,
  send,
  sendRaw,
  signJwt,
  summary,
  timeoutFor,
} from "./fuzz.ts";

const FORM = "application/x-www-form-urlencoded";
const REDIRECT = "https://app.example.com/callback";
const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

let server: OAuthServer;
const started = performance.now();
/** Credentials and handles the fuzzer mixes in, so requests get past the first checks. */
const known = {
  clientIds: [] as string[],
  secrets: [] as string[],
  basics: [] as string[],
  bearers: [] as string[],
  refreshTokens: [] as string[],
  assertions: [] as string[],
  interaction: "",
  csrf: "",
  cookie: "",
  registration: { clientId: "", token: "" },
  /** Another one, which DELETE may remove. */
  doomed: { clientId: "", token: "" },
  /** A user's access token whose grant nothing revokes (for userinfo). */
  userBearer: "",
  /** A caller token of Mandate's API with mandate:authorize (for the AuthZEN endpoints). */
  authzenBearer: "",
  /** A server DPoP nonce (RFC 9449 §8), so proofs get past the nonce check. */
  nonce: undefined as string | undefined,
};

beforeAll(async () => {
  // Abuse limits off: the fuzzer is one address sending thousands of bad requests, and must reach
  // the checks behind the limits (the limits have their own tests).
  server = await startOAuthServer({ MANDATE_RATE_LIMITS_ENABLED: "false" });
  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
  const service = await server.register({
    grantTypes: ["client_credentials"],
    scope: "orders.read mandate:introspect",
    resources: ["https://api.example.com/"],
  });
  const web = await server.register({
    grantTypes: ["authorization_code", "refresh_token"],
    redirectUris: [REDIRECT],
    scope: "openid profile email",
  });
  const native = await server.register({
    grantTypes: ["authorization_code"],
    redirectUris: ["http://127.0.0.1/cb"],
    tokenEndpointAuthMethod: "none",
  });
  const signed = await server.register({
    grantTypes: ["client_credentials"],
    tokenEndpointAuthMethod: "private_key_jwt",
    jwks: { keys: [GOOD_JWK] },
    resources: ["https://api.example.com/"],
  });
  known.clientIds.push(service.clientId, web.clientId, native.clientId, signed.clientId);
  known.secrets.push(service.clientSecret, web.clientSecret);
  known.basics.push(basic(service.clientId, service.clientSecret), basic(web.clientId, web.clientSecret));
  for (const audience of [`${server.issuer}/oauth2/token`, server.issuer]) {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: signed.clientId, sub: signed.clientId, aud: audience, exp: now + 300, iat: now };
    known.assertions.push(signJwt({ alg: "ES256", kid: "fuzz" }, { ...claims, jti: randomBytes(8).toString("hex") }));
  }
  // A token to introspect, revoke and present.
  const token = await send(server.base, {
    method: "POST",
    path: "/t/demo/oauth2/token",
    headers: { "content-type": FORM, authorization: known.basics[0] },
    body: Buffer.from("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com%2F"),
  });
  known.bearers.push(`Bearer ${JSON.parse(token.body.toString()).access_token}`);
  // A PEP's caller token for the AuthZEN API (scope mandate:authorize, audience Mandate's API).
  const pep = await server.register({
    grantTypes: ["client_credentials"],
    scope: "mandate:authorize",
    resources: [server.base],
  });
  const pepToken = await send(server.base, {
    method: "POST",
    path: "/t/demo/oauth2/token",
    headers: { "content-type": FORM, authorization: basic(pep.clientId, pep.clientSecret) },
    body: Buffer.from(new URLSearchParams({ grant_type: "client_credentials", resource: server.base }).toString()),
  });
  known.authzenBearer = `Bearer ${JSON.parse(pepToken.body.toString()).access_token}`;
  // The server's DPoP nonce, from the use_dpop_nonce answer to a proof without one.
  const unnonced = await send(server.base, {
    method: "POST",
    path: "/t/demo/oauth2/token",
    headers: {
      "content-type": FORM,
      authorization: known.basics[0],
      dpop: signJwt(
        { typ: "dpop+jwt", alg: "ES256", jwk: GOOD_JWK },
        {
          jti: randomBytes(8).toString("hex"),
          htm: "POST",
          htu: `${server.issuer}/oauth2/token`,
          iat: Math.floor(Date.now() / 1000),
        },
      ),
    },
    body: Buffer.from("grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com%2F"),
  });
  known.nonce = unnonced.headers["dpop-nonce"] as string | undefined;
  // Through the code flow and the dev login: a refresh token (for the token surface, whose reuse
  // revokes its grant) and, from a second grant, a user's access token (for userinfo).
  const verifier = randomBytes(32).toString("base64url");
  const query = new URLSearchParams({
    client_id: web.clientId,
    redirect_uri: REDIRECT,
    response_type: "code",
    scope: "openid profile",
    code_challenge: createHash("sha256").update(verifier).digest("base64url"),
    code_challenge_method: "S256",
    state: "s",
  });
  for (const use of ["refresh", "userinfo"] as const) {
    const callback = await new Browser().authorize(`${server.issuer}/oauth2/authorize?${query}`, REDIRECT);
    const code = await send(server.base, {
      method: "POST",
      path: "/t/demo/oauth2/token",
      headers: { "content-type": FORM, authorization: known.basics[1] },
      body: Buffer.from(
        new URLSearchParams({
          grant_type: "authorization_code",
          code: callback.searchParams.get("code") as string,
          redirect_uri: REDIRECT,
          code_verifier: verifier,
        }).toString(),
      ),
    });
    const tokens = JSON.parse(code.body.toString());
    if (!tokens.refresh_token) throw new Error(`the code flow gave no refresh token: ${code.body}`);
    if (use === "refresh") known.refreshTokens.push(tokens.refresh_token);
    else known.userBearer = `Bearer ${tokens.access_token}`;
  }
  // A live interaction (the login page's hidden fields and cookie), for the login and consent forms.
  const page = await send(server.base, { method: "GET", path: `/t/demo/oauth2/authorize?${query}` });
  const cookie = String(page.headers["set-cookie"] ?? "").split(";")[0] ?? "";
  const loginUrl = new URL(String(page.headers.location ?? ""), server.base);
  const login = await send(server.base, {
    method: "GET",
    path: `${loginUrl.pathname}${loginUrl.search}`,
    headers: { cookie },
  });
  const html = login.body.toString();
  known.interaction = /name="interaction" value="([^"]*)"/.exec(html)?.[1] ?? "";
  known.csrf = /name="csrf" value="([^"]*)"/.exec(html)?.[1] ?? "";
  known.cookie = cookie;
  // A dynamically registered client, for RFC 7592 management.
  for (const slot of ["registration", "doomed"] as const) {
    const registered = await send(server.base, {
      method: "POST",
      path: "/t/demo/oauth2/register",
      headers: { "content-type": "application/json" },
      body: Buffer.from(JSON.stringify({ redirect_uris: [REDIRECT], client_name: "fuzz" })),
    });
    const information = JSON.parse(registered.body.toString());
    known[slot] = { clientId: information.client_id, token: information.registration_access_token };
  }
}, 60_000);

afterAll(async () => {
  console.log(summary("fuzz (OAuth endpoints)", started));
  await server?.stop();
});

/** Plausible values per parameter name: real ids and secrets among the garbage. */
function plausible(): Record<string, readonly string[]> {
  return {
    grant_type: [
      "client_credentials",
      "authorization_code",
      "refresh_token",
      "urn:ietf:params:oauth:grant-type:token-exchange",
      "password",
      "implicit",
    ],
    client_id: known.clientIds,
    client_secret: known.secrets,
    resource: ["https://api.example.com/", server.base, "https://api.example.com/#f", "urn:x", "relative"],
    scope: ["orders.read", "openid profile", "mandate:admin", "openid offline_access", "a\u0000b"],
    redirect_uri: [REDIRECT, "http://127.0.0.1/cb", "http://127.0.0.1:9/cb", "https://evil.example/cb"],
    response_type: ["code", "token", "code id_token", "none"],
    code_challenge_method: ["S256", "plain"],
    code_challenge: [createHash("sha256").update("v").digest("base64url"), "short"],
    code_verifier: ["v", "x".repeat(43), "x".repeat(129)],
    refresh_token: known.refreshTokens,
    code: ["mac_x", "x"],
    client_assertion_type: [ASSERTION_TYPE],
    client_assertion: [...known.assertions, "a.b.c", signJwt({ alg: "none" }, {})],
    token: [...known.bearers.map((b) => b.slice(7)), ...known.refreshTokens],
    token_type_hint: ["access_token", "refresh_token", "id_token"],
    prompt: ["none", "login", "consent", "none login", "bogus"],
    max_age: ["0", "60", "-1", "99999999999"],
    request_uri: ["urn:ietf:params:oauth:request_uri:par_x", "https://example.internal/r"],
    dpop_jkt: ["x".repeat(43), "short"],
    response_mode: ["query", "fragment", "form_post"],
    interaction: [known.interaction],
    csrf: [known.csrf],
    username: ["alice", "bob", ""],
    password: [DEV_PASSWORD, "wrong"],
    decision: ["approve", "deny", "maybe"],
  };
}

const TOKEN_PARAMS = [
  "grant_type",
  "code",
  "redirect_uri",
  "code_verifier",
  "refresh_token",
  "scope",
  "resource",
  "client_id",
  "client_secret",
  "client_assertion_type",
  "client_assertion",
  "audience",
  "subject_token",
  "subject_token_type",
];
const AUTHORIZE_PARAMS = [
  "client_id",
  "redirect_uri",
  "response_type",
  "scope",
  "state",
  "code_challenge",
  "code_challenge_method",
  "resource",
  "prompt",
  "max_age",
  "login_hint",
  "acr_values",
  "dpop_jkt",
  "request_uri",
  "request",
  "nonce",
  "response_mode",
  "authorization_details",
];
const CLIENT_PARAMS = ["client_id", "client_secret", "client_assertion_type", "client_assertion"];

/** Complete, plausible requests per endpoint: the fuzzer mutates these. */
function templates() {
  const [service, web, native, signed] = known.clientIds as [string, string, string, string];
  const challenge = createHash("sha256").update("x".repeat(43)).digest("base64url");
  const authorization: Pairs[] = [
    [
      ["client_id", web],
      ["redirect_uri", REDIRECT],
      ["response_type", "code"],
      ["scope", "openid profile"],
      ["code_challenge", challenge],
      ["code_challenge_method", "S256"],
      ["state", "s"],
      ["nonce", "n"],
    ],
    [
      ["client_id", native],
      ["redirect_uri", "http://127.0.0.1:5555/cb"],
      ["response_type", "code"],
      ["code_challenge", challenge],
      ["code_challenge_method", "S256"],
      ["prompt", "none"],
    ],
  ];
  return {
    token: [
      [
        ["grant_type", "client_credentials"],
        ["resource", "https://api.example.com/"],
        ["scope", "orders.read"],
      ],
      [
        ["grant_type", "refresh_token"],
        ["refresh_token", known.refreshTokens[0] ?? "x"],
      ],
      [
        ["grant_type", "authorization_code"],
        ["code", "mac_x"],
        ["redirect_uri", REDIRECT],
        ["code_verifier", "x".repeat(43)],
      ],
      [
        ["grant_type", "client_credentials"],
        ["client_id", signed],
        ["client_assertion_type", ASSERTION_TYPE],
        ["client_assertion", known.assertions[0] ?? "x"],
        ["resource", "https://api.example.com/"],
      ],
      [
        ["grant_type", "authorization_code"],
        ["client_id", native],
        ["code", "mac_x"],
        ["code_verifier", "x".repeat(43)],
      ],
    ] satisfies Pairs[],
    authorization,
    par: [authorization[0] as Pairs],
    token_inspection: [
      [["token", known.bearers[0]?.slice(7) ?? "x"]],
      [
        ["token", known.refreshTokens[0] ?? "x"],
        ["token_type_hint", "refresh_token"],
      ],
      [
        ["token", known.bearers[1]?.slice(7) ?? "x"],
        ["token_type_hint", "access_token"],
        ["client_id", service],
      ],
    ] satisfies Pairs[],
    login: [
      [
        ["interaction", known.interaction],
        ["csrf", known.csrf],
        ["username", "alice"],
        ["password", "wrong"],
      ],
      [
        ["interaction", known.interaction],
        ["csrf", known.csrf],
        ["decision", "approve"],
      ],
      [["interaction", known.interaction]],
    ] satisfies Pairs[],
  };
}

/** A form POST to a client-authenticated endpoint. */
function formPost(
  path: string,
  forms: readonly Pairs[],
  names: readonly string[],
  dpop = false,
): fc.Arbitrary<HttpCase> {
  return fc
    .record({
      body: formBody(forms, names, plausible()),
      type: contentType(FORM),
      authorization: authorizationHeader(known.basics),
      dpop: dpop ? dpopHeader(`${server.base}${path}`, "POST", () => known.nonce) : fc.constant(undefined),
      accept: fc.constantFrom(undefined, "application/token-introspection+jwt", "application/json", "*/*, ;;"),
    })
    .map(({ body, type, authorization, dpop, accept }) => ({
      method: "POST",
      path,
      headers: { "content-type": type, authorization, dpop, accept },
      body,
    }));
}

const METADATA_TEMPLATES: Array<Record<string, unknown>> = [
  { redirect_uris: [REDIRECT], client_name: "fuzz" },
  { redirect_uris: ["http://127.0.0.1/cb"], token_endpoint_auth_method: "none", scope: "openid" },
  { redirect_uris: [REDIRECT], token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [GOOD_JWK] } },
];

/** Registration metadata members: plausible values and hostile, wrong-typed ones. */
function metadataMembers(extra: Record<string, fc.Arbitrary<unknown>> = {}): Record<string, fc.Arbitrary<unknown>> {
  return {
    client_name: nastyString(["fuzz client"]),
    redirect_uris: fc.array(nastyString([REDIRECT, "http://127.0.0.1/cb", "com.example.app:/cb"]), { maxLength: 3 }),
    grant_types: fc.array(fc.constantFrom("authorization_code", "refresh_token", "client_credentials", "x"), {
      maxLength: 3,
    }),
    response_types: fc.array(fc.constantFrom("code", "token"), { maxLength: 2 }),
    token_endpoint_auth_method: fc.constantFrom("none", "client_secret_basic", "private_key_jwt", "x"),
    scope: nastyString(["openid", "mandate:admin"]),
    jwks: fc.oneof(
      fc.constantFrom<unknown>({ keys: [GOOD_JWK] }, { keys: "x" }, { keys: [] }),
      fc.constantFrom(...BAD_JWKS).map((key) => ({ keys: [key] })),
    ),
    jwks_uri: nastyString(["https://example.internal/jwks", "https://127.0.0.1/jwks"]),
    client_uri: nastyString(["https://app.example.com"]),
    resources: fc.array(nastyString(["https://api.example.com/"]), { maxLength: 2 }),
    rate_limit: fc.record({ requests_per_second: fc.double(), burst: fc.integer() }),
    require_pushed_authorization_requests: fc.boolean(),
    dpop_bound_access_tokens: fc.boolean(),
    access_token_lifetime: fc.integer(),
    ...extra,
  };
}

function surfaces(): Array<[string, () => fc.Arbitrary<HttpCase>]> {
  // Built when a surface runs (after beforeAll has registered the clients), not when tests are collected.
  const forms = new Proxy({} as ReturnType<typeof templates>, { get: (_, name) => templates()[name as never] });
  return [
    ["POST /oauth2/token", () => formPost("/t/demo/oauth2/token", forms.token, TOKEN_PARAMS, true)],
    [
      "GET /oauth2/authorize",
      () =>
        fc
          .record({
            query: formBody(forms.authorization, AUTHORIZE_PARAMS, plausible()),
            cookie: fc.constantFrom(undefined, known.cookie, "mandate_interaction=%ff; mandate_session=\u00ff"),
          })
          .map(({ query, cookie }) => ({
            method: "GET",
            path: `/t/demo/oauth2/authorize?${pathSafe(query)}`,
            headers: { cookie },
          })),
    ],
    ["POST /oauth2/authorize", () => formPost("/t/demo/oauth2/authorize", forms.authorization, AUTHORIZE_PARAMS)],
    [
      "POST /oauth2/par",
      () => formPost("/t/demo/oauth2/par", forms.par, [...AUTHORIZE_PARAMS, ...CLIENT_PARAMS], true),
    ],
    [
      "POST /oauth2/introspect",
      () =>
        formPost("/t/demo/oauth2/introspect", forms.token_inspection, ["token", "token_type_hint", ...CLIENT_PARAMS]),
    ],
    [
      "POST /oauth2/revoke",
      () => formPost("/t/demo/oauth2/revoke", forms.token_inspection, ["token", "token_type_hint", ...CLIENT_PARAMS]),
    ],
    [
      "POST /oauth2/register",
      () =>
        fc
          .record({
            body: jsonBody(METADATA_TEMPLATES, metadataMembers()),
            type: contentType("application/json"),
            authorization: authorizationHeader(),
          })
          .map(({ body, type, authorization }) => ({
            method: "POST",
            path: "/t/demo/oauth2/register",
            headers: { "content-type": type, authorization },
            body,
          })),
    ],
    [
      "GET/PUT/DELETE /oauth2/register/{client_id} (RFC 7592)",
      () =>
        fc
          .record({
            method: fc.constantFrom("GET", "PUT", "PUT", "PUT", "PUT", "DELETE", "PATCH"),
            id: fc.oneof(
              { weight: 4, arbitrary: fc.constant(known.registration.clientId) },
              { weight: 1, arbitrary: nastyString().map((s) => encodeURIComponent(s.toWellFormed())) },
              { weight: 1, arbitrary: fc.constantFrom("%E0%A4%A", "%ff%fe", "%", "..", "a%2Fb") },
            ),
            token: fc.oneof(
              { weight: 4, arbitrary: fc.constant(`Bearer ${known.registration.token}`) },
              { weight: 1, arbitrary: authorizationHeader() },
            ),
            body: jsonBody(
              METADATA_TEMPLATES.map((m) => ({ ...m, client_id: known.registration.clientId })),
              metadataMembers({
                client_id: fc.constantFrom(known.registration.clientId, "other", 5),
                client_secret: nastyString(),
              }),
            ),
            type: contentType("application/json"),
          })
          .map(({ method, id, token, body, type }) => {
            // DELETE takes the other registration, so the first stays there for GET and PUT.
            const doomed = method === "DELETE";
            const swap = (text: string) =>
              doomed
                ? text
                    .replace(known.registration.clientId, known.doomed.clientId)
                    .replace(known.registration.token, known.doomed.token)
                : text;
            return {
              method,
              path: swap(`/t/demo/oauth2/register/${id}`),
              headers: { authorization: token && swap(token), "content-type": type },
              body: method === "PUT" || method === "PATCH" ? body : undefined,
            };
          }),
    ],
    [
      "GET/POST /oauth2/userinfo",
      () =>
        fc
          .record({
            method: fc.constantFrom("GET", "POST"),
            authorization: authorizationHeader([known.userBearer, ...known.bearers]),
            dpop: dpopHeader(`${server.issuer}/oauth2/userinfo`, "GET"),
            body: fc.option(formBody([[["access_token", "x"]] as const], ["access_token"]), { nil: undefined }),
          })
          .map(({ method, authorization, dpop, body }) => ({
            method,
            path: "/t/demo/oauth2/userinfo",
            headers: { authorization, dpop, "content-type": FORM },
            body: method === "POST" ? body : undefined,
          })),
    ],
    [
      "GET/POST /login and /consent",
      () =>
        fc
          .record({
            page: fc.constantFrom("login", "consent", "oauth2/resume"),
            method: fc.constantFrom("GET", "POST"),
            form: formBody(
              forms.login,
              ["interaction", "csrf", "username", "password", "decision", "login_hint"],
              plausible(),
            ),
            cookie: fc.constantFrom(
              undefined,
              known.cookie,
              known.cookie,
              `${known.cookie}; mandate_session=x`,
              "=;=;;",
            ),
            type: contentType(FORM),
          })
          .map(({ page, method, form, cookie, type }) => {
            const get = method === "GET" || page === "oauth2/resume";
            return {
              method: get ? "GET" : "POST",
              path: `/t/demo/${page}${get ? `?${pathSafe(form)}` : ""}`,
              headers: { cookie, "content-type": type },
              body: get ? undefined : form,
            };
          }),
    ],
    [
      "AuthZEN evaluation(s) and search",
      () =>
        fc
          .record({
            path: fc.constantFrom(
              "/t/demo/access/v1/evaluation",
              "/t/demo/access/v1/evaluations",
              "/t/demo/access/v1/evaluations",
              "/t/demo/access/v1/search/subject",
              "/t/demo/access/v1/search/resource",
              "/t/demo/access/v1/search/action",
              "/t/nobody/access/v1/evaluation",
            ),
            method: fc.oneof({ weight: 12, arbitrary: fc.constant("POST") }, fc.constantFrom("GET", "PUT")),
            body: jsonBody(AUTHZEN_TEMPLATES, authzenMembers()),
            type: contentType("application/json"),
            authorization: authorizationHeader([known.authzenBearer, known.authzenBearer, ...known.bearers]),
            requestId: fc.option(nastyString(), { nil: undefined }),
          })
          .map(({ path, method, body, type, authorization, requestId }) => ({
            method,
            path,
            headers: {
              "content-type": type,
              authorization,
              "x-request-id": requestId === undefined ? undefined : Buffer.from(requestId).toString("latin1"),
            },
            body,
          })),
    ],
    [
      "discovery, JWKS and other paths",
      () =>
        fc
          .record({
            method: fc.constantFrom("GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE", "TRACE"),
            path: fc.oneof(
              fc.constantFrom(
                "/t/demo/.well-known/openid-configuration",
                "/t/demo/.well-known/oauth-authorization-server",
                "/.well-known/oauth-authorization-server/t/demo",
                "/.well-known/openid-configuration/t/demo",
                "/t/demo/.well-known/jwks.json",
                "/t/nobody/.well-known/jwks.json",
                "/t/demo/oauth2/",
                "/t/Demo/oauth2/token",
                "/t/demo/oauth2/token/../register",
                "/t/-/oauth2/token",
                "/healthz",
                "/readyz",
                "/",
              ),
              nastyBytes.map((b) => `/t/demo/${pathSafe(b)}`),
              nastyString().map((s) => `/t/${pathSafe(Buffer.from(s))}/oauth2/token`),
              fc.constant(`/t/demo/oauth2/authorize?${"a=b&".repeat(3000)}`),
            ),
            origin: fc.constantFrom(undefined, "https://evil.example", "null"),
            junk: headerValue,
          })
          .map(({ method, path, origin, junk }) => ({
            method,
            path,
            headers: { origin, "x-forwarded-for": junk, "content-type": junk, "access-control-request-method": junk },
          })),
    ],
  ];
}

/** Well-formed AuthZEN requests (Access Evaluation, Evaluations with defaults and semantics, Search). */
const AUTHZEN_TEMPLATES: ReadonlyArray<Record<string, unknown>> = [
  {
    subject: { type: "user", id: "alice@example.com", properties: { roles: ["admin"] } },
    action: { name: "can_read" },
    resource: { type: "record", id: "101" },
    context: { time: "2026-01-01T00:00:00Z" },
  },
  {
    subject: { type: "user", id: "alice@example.com" },
    action: { name: "can_read" },
    evaluations: [{ resource: { type: "record", id: "101" } }, { resource: { type: "record", id: "102" } }],
    options: { evaluations_semantic: "deny_on_first_deny" },
  },
  {
    subject: { type: "user" },
    action: { name: "can_read" },
    resource: { type: "record", id: "101" },
    page: { limit: 2 },
  },
];

function authzenMembers(): Record<string, fc.Arbitrary<unknown>> {
  const entity = fc.record(
    { type: nastyString(["user", "record", "agent"]), id: nastyString(), properties: fc.jsonValue({ maxDepth: 3 }) },
    { requiredKeys: [] },
  );
  return {
    subject: entity,
    resource: entity,
    action: fc.record(
      { name: nastyString(["can_read", "can_write"]), properties: fc.jsonValue() },
      { requiredKeys: [] },
    ),
    context: fc.jsonValue({ maxDepth: 4 }),
    evaluations: fc.array(
      fc.record({ subject: entity, action: fc.jsonValue(), resource: entity }, { requiredKeys: [] }),
      {
        maxLength: 120,
      },
    ),
    options: fc.record({
      evaluations_semantic: fc.constantFrom("execute_all", "deny_on_first_deny", "permit_on_first_permit", "x", 1),
    }),
    page: fc.record(
      { token: nastyString(), limit: fc.oneof(fc.integer({ min: -5, max: 5000 }), fc.jsonValue()) },
      {
        requiredKeys: [],
      },
    ),
  };
}

function describeCase(request: HttpCase): string {
  const body = request.body ? Buffer.from(request.body).toString("latin1").slice(0, 300) : "";
  return `${request.method} ${request.path.slice(0, 300)}\nheaders: ${JSON.stringify(request.headers ?? {}).slice(0, 600)}\nbody: ${JSON.stringify(body)}`;
}

/** Raw request heads: request targets and Host values no HTTP client library would send. */
function rawRequests(): fc.Arbitrary<Buffer> {
  const path = fc.constantFrom(
    "/t/demo/oauth2/token",
    "/t/demo/oauth2/authorize?client_id=x",
    "/t/demo/.well-known/jwks.json",
    "/mandate.v1.Tenants/GetTenant",
    "/mandate.v1.Audit/Query?connect=v1&encoding=json&message=%7B%7D",
    "/healthz",
    "/t/demo/revocations?after=%FF",
  );
  const target = fc.oneof(
    path,
    path.map((p) => `http://127.0.0.1${p}`),
    fc.constantFrom(
      "http://[",
      "http://a:99999/healthz",
      "http://[::1/mandate.v1.Tenants/GetTenant",
      "*",
      "//[",
      "//a/b",
      "//[/t/demo/revocations",
      "//a/t/demo/revocations",
    ),
    fc
      .tuple(fc.constantFrom("http://", "https://", "x:", "mailto:"), nastyBytes)
      .map(([scheme, b]) => `${scheme}${pathSafe(b)}`),
  );
  const host = fc.oneof(
    fc.constant("127.0.0.1"),
    fc.constantFrom("", "[", "a:99999", "a b", "a/b", "user@a", "[::1", "a:", ":80", "\u00e9", "a".repeat(300)),
  );
  return fc
    .record({
      method: fc.constantFrom("GET", "POST", "OPTIONS", "HEAD", "PUT", "BREW"),
      target,
      host,
      type: fc.constantFrom("application/json", "application/proto", "application/grpc-web+proto", FORM),
      body: fc.constantFrom("", "{}", "grant_type=client_credentials"),
    })
    .map(({ method, target, host, type, body }) =>
      Buffer.from(
        `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        "latin1",
      ),
    );
}

describe("every OAuth endpoint answers hostile input without a 5xx, a hang or a crash", () => {
  it(
    "raw request targets and Host headers",
    async () => {
      await fc.assert(
        fc.asyncProperty(rawRequests(), async (request) => {
          const status = await sendRaw(server.base, request);
          count("raw request targets and Host headers", status.split(" ")[1] ?? "closed");
          if (!/^HTTP\/1\.1 [1-4]\d\d /.test(status)) {
            throw new Error(`answered ${JSON.stringify(status)} to ${JSON.stringify(request.toString("latin1"))}`);
          }
        }),
        fcParams("raw request targets and Host headers"),
      );
    },
    timeoutFor(DEADLINE_MS / 20),
  );

  it.each(surfaces().map(([name, cases]) => ({ name, cases })))(
    "$name",
    async ({ name, cases }) => {
      await fc.assert(
        fc.asyncProperty(cases(), async (request) => {
          const answer = await send(server.base, request);
          count(name, String(answer.status));
          if (process.env.FUZZ_DEBUG === name) console.log(answer.status, answer.body.toString().slice(0, 160));
          if (answer.status >= 500) {
            throw new Error(
              `HTTP ${answer.status} ${answer.body.toString().slice(0, 300)}\nfor ${describeCase(request)}\nserver log:\n${server.process.stderr().slice(-2000)}`,
            );
          }
        }),
        fcParams(name),
      );
    },
    timeoutFor(DEADLINE_MS / 20),
  );

  it("answers oversized bodies within the limits", async () => {
    const big = Buffer.alloc(70 * 1024, "a");
    for (const [path, type] of [
      ["/t/demo/oauth2/token", FORM],
      ["/t/demo/oauth2/register", "application/json"],
      ["/t/demo/oauth2/introspect", FORM],
      ["/t/demo/oauth2/userinfo", FORM],
    ] as const) {
      const answer = await send(server.base, { method: "POST", path, headers: { "content-type": type }, body: big });
      count("oversized bodies", String(answer.status));
      expect(answer.status, `${path}: ${answer.body}`).toBeLessThan(500);
      expect(answer.status).not.toBe(200);
    }
  });

  it("is still alive, healthy and auditing afterwards", async () => {
    await expectServerSound(server);
  }, 30_000);
});
