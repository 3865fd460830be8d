// The AuthZEN API's HTTP edge against a running `mandate dev`: who may call it (a Mandate access
// token with mandate:authorize for the tenant, Bearer or DPoP-bound, as for PUBLIC RPCs), the
// refusals of the HTTPS binding (§10.1.2: 400, 401 with its challenge, 403, 404, 405), X-Request-ID
// on every answer (§10.1.3), and the OpenID AuthZEN interop "Todo" scenario's decisions with its
// policy (policies/examples/todo) pushed to a tenant.
import { randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle } from "../../services/authorize/rego/bundle.ts";
import { bearerToken } from "../../services/cli/credentials.ts";
import { accessTokenHash } from "../../services/shared/oauth/dpop.ts";
import { API_SCOPES } from "../../services/shared/oauth/mandate-api.ts";
import { type AuthzenServer, startAuthzenServer } from "./authzen-server.ts";

let server: AuthzenServer;
const valid = {
  subject: { type: "user", id: "alice" },
  action: { name: "read" },
  resource: { type: "record", id: "record-1" },
};

beforeAll(async () => {
  server = await startAuthzenServer();
  const { bytes } = await buildBundle("policies/examples/todo");
  await server.pushPolicy("todo", bytes);
  await server.pushPolicy("other", (await buildBundle("policies/examples/authzen-certification")).bytes);
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

describe("callers (as PUBLIC RPCs: a mandate:authorize token of the tenant)", () => {
  it("answers a Bearer token of the tenant with mandate:authorize", async () => {
    const answer = await server.post("demo", "evaluation", valid);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ decision: true });
  });

  it("refuses a call without a token: 401 with a Bearer challenge (§11.3)", async () => {
    const answer = await server.post("demo", "evaluation", valid, { token: null });
    expect(answer.status).toBe(401);
    expect(answer.headers.get("www-authenticate")).toMatch(/^Bearer realm="mandate"/);
    expect(answer.body).toEqual({ error: "unauthorized", error_description: expect.stringContaining("access token") });
  });

  it.each([
    ["a malformed token", "not.a.jwt"],
    ["a token of no issuer of this Mandate", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2V2aWwifQ."],
  ])("refuses %s: 401", async (_name, token) => {
    const answer = await server.post("demo", "evaluation", valid, { token });
    expect(answer.status).toBe(401);
    expect(answer.headers.get("www-authenticate")).toMatch(/^Bearer /);
  });

  it("refuses a token without mandate:authorize: 403 naming the scope", async () => {
    const token = await server.token("demo", API_SCOPES.introspect);
    const answer = await server.post("demo", "evaluation", valid, { token });
    expect(answer.status).toBe(403);
    expect(answer.headers.get("www-authenticate")).toContain('error="insufficient_scope", scope="mandate:authorize"');
  });

  it("refuses another tenant's token: 403", async () => {
    const token = await server.token("other");
    const answer = await server.post("demo", "evaluation", valid, { token });
    expect(answer.status).toBe(403);
    expect((answer.body as { error_description: string }).error_description).toContain('tenant "other"');
  });

  it("admits the platform administrator for any tenant", async () => {
    const token = (await bearerToken(server.oauth.process.adminFile)).access_token;
    expect((await server.post("other", "evaluation", valid, { token })).status).toBe(200);
  });

  it("admits a DPoP-bound token with a proof for the endpoint's URL, and refuses the proof elsewhere", async () => {
    const dpop = await dpopToken(server);
    const url = `${server.base}/t/demo/access/v1/evaluation`;
    const call = async (proofUrl: string) =>
      fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `DPoP ${dpop.token}`,
          dpop: await dpop.proof(proofUrl),
        },
        body: JSON.stringify(valid),
      });
    expect((await call(url)).status).toBe(200);
    const elsewhere = await call(`${server.base}/t/demo/access/v1/evaluations`);
    expect(elsewhere.status).toBe(401);
    expect(elsewhere.headers.get("www-authenticate")).toMatch(/invalid_dpop_proof/);
  });
});

describe("the HTTPS binding's refusals (§10.1.2)", () => {
  it("answers 404 for a tenant that does not exist, on the API and the metadata", async () => {
    const token = await server.token("demo");
    expect((await server.post("nowhere", "evaluation", valid, { token })).status).toBe(404);
    expect((await fetch(`${server.base}/.well-known/authzen-configuration/t/nowhere`)).status).toBe(404);
    expect((await fetch(`${server.base}/t/nowhere/.well-known/authzen-configuration`)).status).toBe(404);
  });

  it("answers 405 with Allow for another method", async () => {
    const get = await server.post("demo", "evaluation", undefined, { method: "GET", raw: undefined });
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    const post = await fetch(`${server.base}/t/demo/.well-known/authzen-configuration`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });

  it.each([
    ["missing required member", { ...valid, subject: undefined }, "subject is required"],
    ["missing sub-field", { ...valid, resource: { type: "record" } }, "resource.id is required"],
    ["wrong type", { ...valid, action: { name: 7 } }, "action.name must be a string, not a number"],
    ["a lone surrogate", { ...valid, subject: { type: "user", id: "\ud800" } }, "subject.id is not well-formed"],
  ])("answers 400 naming the member: %s", async (_name, body, message) => {
    const answer = await server.post("demo", "evaluation", body);
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({ error: "invalid_request", error_description: expect.stringContaining(message) });
  });

  it("takes at most 100 evaluations in one request (as BatchCheck)", async () => {
    const evaluations = (n: number) => Array.from({ length: n }, () => ({ resource: valid.resource }));
    const body = (n: number) => ({ subject: valid.subject, action: valid.action, evaluations: evaluations(n) });
    const hundred = await server.post("demo", "evaluations", body(100));
    expect(hundred.status).toBe(200);
    expect((hundred.body as { evaluations: unknown[] }).evaluations).toHaveLength(100);
    const more = await server.post("demo", "evaluations", body(101));
    expect(more.status).toBe(400);
    expect((more.body as { error_description: string }).error_description).toContain("at most 100");
  });

  it("refuses a body past http.maxRequestBytes: 413", async () => {
    const raw = JSON.stringify({ ...valid, context: { pad: "x".repeat(4 * 1024 * 1024) } });
    expect((await server.send("demo", "evaluation", { raw })).status).toBe(413);
  });

  it("refuses a body nested thousands deep for its depth, before parsing it (never a stack overflow)", async () => {
    const deep = `${'{"a":'.repeat(5000)}{}${"}".repeat(5000)}`;
    const raw = `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"doc","id":"1"},"context":${deep}}`;
    const answer = await server.send("demo", "evaluation", { raw });
    expect(answer.status).toBe(400);
    expect((answer.body as { error_description: string }).error_description).toMatch(
      /^context(\.a)* is nested more than 32 levels deep/,
    );
  });

  it("echoes X-Request-ID on refusals too (§10.1.3)", async () => {
    const headers = { "content-type": "application/json", "x-request-id": "req-42" };
    for (const [tenant, token] of [
      ["demo", null],
      ["nowhere", await server.token("demo")],
    ] as const) {
      const answer = await server.post(tenant, "evaluation", valid, { headers, token });
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(answer.headers.get("x-request-id")).toBe("req-42");
    }
  });

  it("leaves other paths to the rest of the edge", async () => {
    expect((await server.post("demo", "search/everything", valid)).status).toBe(404);
    expect((await fetch(`${server.base}/t/demo/.well-known/openid-configuration`)).status).toBe(200);
  });
});

// The interop scenario's users (their PEP ids) and the decisions its test suite expects
// (github.com/openid/authzen, interop/authzen-todo-backend/test), in the Authorization API 1.0
// form: the subject by its user id, the todo's owner as `properties.ownerID`.
const TODO_USERS = {
  rick: ["CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs", "rick@the-citadel.com"],
  morty: ["CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs", "morty@the-citadel.com"],
  summer: ["CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs", "summer@the-smiths.com"],
  beth: ["CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs", "beth@the-smiths.com"],
  jerry: ["CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs", "jerry@the-smiths.com"],
} as const;
type User = keyof typeof TODO_USERS;

/** Per user: create any todo; update / delete Rick's todo; update / delete their own. */
const TODO_EXPECTED: Record<User, [boolean, boolean, boolean, boolean, boolean]> = {
  rick: [true, true, true, true, true],
  morty: [true, false, false, true, true],
  summer: [true, false, false, true, true],
  beth: [false, false, false, false, false],
  jerry: [false, false, false, false, false],
};

function todoCases(): Array<[string, User, string, Record<string, unknown>, boolean]> {
  const cases: Array<[string, User, string, Record<string, unknown>, boolean]> = [];
  const todo = (owner: User) => ({
    type: "todo",
    id: `todo-of-${owner}`,
    properties: { ownerID: TODO_USERS[owner][1] },
  });
  for (const user of Object.keys(TODO_USERS) as User[]) {
    const [create, updateRicks, deleteRicks, updateOwn, deleteOwn] = TODO_EXPECTED[user];
    const own = user === "rick" ? todo("morty") : todo(user);
    cases.push(
      [`${user} can_read_user beth`, user, "can_read_user", { type: "user", id: "beth@the-smiths.com" }, true],
      [`${user} can_read_user self`, user, "can_read_user", { type: "user", id: TODO_USERS[user][0] }, true],
      [`${user} can_read_todos`, user, "can_read_todos", { type: "todo", id: "todo-1" }, true],
      [`${user} can_create_todo`, user, "can_create_todo", { type: "todo", id: "todo-1" }, create],
      [`${user} can_update_todo of rick`, user, "can_update_todo", todo("rick"), updateRicks],
      [`${user} can_delete_todo of rick`, user, "can_delete_todo", todo("rick"), deleteRicks],
      [`${user} can_update_todo ${user === "rick" ? "of morty" : "own"}`, user, "can_update_todo", own, updateOwn],
      [`${user} can_delete_todo ${user === "rick" ? "of morty" : "own"}`, user, "can_delete_todo", own, deleteOwn],
    );
  }
  return cases;
}

describe("the AuthZEN interop Todo scenario (tenant todo)", () => {
  it.each(todoCases())("%s", async (_name, user, action, resource, expected) => {
    const body = { subject: { type: "user", id: TODO_USERS[user][0] }, action: { name: action }, resource };
    const answer = await server.post("todo", "evaluation", body, { token: await server.token("todo") });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect((answer.body as { decision: boolean }).decision).toBe(expected);
  });

  it("answers the same decisions as one Access Evaluations request", async () => {
    const cases = todoCases();
    const evaluations = cases.map(([, user, action, resource]) => ({
      subject: { type: "user", id: TODO_USERS[user][0] },
      action: { name: action },
      resource,
    }));
    const answer = await server.post("todo", "evaluations", { evaluations }, { token: await server.token("todo") });
    const decisions = (answer.body as { evaluations: Array<{ decision: boolean }> }).evaluations.map((e) => e.decision);
    expect(decisions).toEqual(cases.map((c) => c[4]));
  });

  it("finds who may delete Rick's todo, and what Beth may do with it", async () => {
    const token = await server.token("todo");
    const rickTodo = { type: "todo", id: "todo-of-rick", properties: { ownerID: TODO_USERS.rick[1] } };
    const who = await server.post(
      "todo",
      "search/subject",
      { subject: { type: "user" }, action: { name: "can_delete_todo" }, resource: rickTodo },
      { token },
    );
    expect((who.body as { results: unknown[] }).results).toEqual([{ type: "user", id: TODO_USERS.rick[0] }]);
    const what = await server.post(
      "todo",
      "search/action",
      { subject: { type: "user", id: TODO_USERS.beth[0] }, resource: rickTodo },
      { token },
    );
    expect((what.body as { results: unknown[] }).results).toEqual([{ name: "can_read_todos" }]);
  });
});

/** A DPoP-bound `mandate:authorize` token of demo (RFC 9449 §5, through the nonce retry) and proofs for it. */
async function dpopToken(s: AuthzenServer): Promise<{ token: string; proof(url: string): Promise<string> }> {
  const insecure = { [oauth.allowInsecureRequests]: true };
  const issuer = new URL(`${s.base}/t/demo`);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...insecure }),
  );
  const scope = API_SCOPES.authorize;
  const registered = await s.oauth.register({ grantTypes: ["client_credentials"], scope, resources: [s.base] });
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const client: oauth.Client = { client_id: registered.clientId };
  const DPoP = oauth.DPoP(client, { privateKey, publicKey });
  const auth = oauth.ClientSecretBasic(registered.clientSecret);
  const request = () =>
    oauth.clientCredentialsGrantRequest(as, client, auth, { scope, resource: s.base }, { ...insecure, DPoP });
  let result: oauth.TokenEndpointResponse;
  try {
    result = await oauth.processClientCredentialsResponse(as, client, await request());
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    result = await oauth.processClientCredentialsResponse(as, client, await request());
  }
  const jwk = (await exportJWK(publicKey)) as JWK;
  return {
    token: result.access_token,
    proof: (url) =>
      new SignJWT({ htm: "POST", htu: url, ath: accessTokenHash(result.access_token) })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
        .setIssuedAt()
        .setJti(randomUUID())
        .sign(privateKey),
  };
}
