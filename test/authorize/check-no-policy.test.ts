// Authorize without any policy to decide with: the configured default policy does not exist, so a
// tenant without a revision of its own has none. Its decisions are denies (`policy_missing`), never
// an RPC error, and the process reports itself not ready (/readyz) while it cannot decide.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

let server: OAuthServer;
let authorize: ReturnType<typeof createClient<typeof Authorize>>;

beforeAll(async () => {
  server = await startOAuthServer({ MANDATE_AUTHORIZE_DEFAULT_POLICY: "/nonexistent/mandate/policy" });
  authorize = createClient(
    Authorize,
    createGrpcTransport({
      baseUrl: `http://${server.process.summary.grpc}`,
      interceptors: [await server.caller("mandate:authorize")],
    }),
  );
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

const question = {
  tenant: "demo",
  subject: { id: "alice", kind: PartyKind.HUMAN },
  action: "orders.read",
  resource: { type: "order", id: "o-1" },
  token: { scopes: ["orders.read"] },
};

describe("a tenant without any policy", () => {
  it("is denied policy_missing, with no revision, in Check and in every check of a batch", async () => {
    const { decision } = await authorize.check(question);
    expect(decision).toMatchObject({ allow: false, policyRevision: "" });
    expect(decision?.reasons.map((r) => r.code)).toEqual(["policy_missing"]);
    expect(decision?.decisionId).toMatch(/^[0-9a-f-]{36}$/);
    const { decisions } = await authorize.batchCheck({ tenant: "demo", checks: [question, question] });
    expect(decisions.map((d) => [d.allow, d.reasons[0]?.code])).toEqual([
      [false, "policy_missing"],
      [false, "policy_missing"],
    ]);
  });

  it("still refuses callers it would refuse anyway", async () => {
    const anonymous = createClient(
      Authorize,
      createGrpcTransport({ baseUrl: `http://${server.process.summary.grpc}` }),
    );
    const error = await anonymous.check(question).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unauthenticated);
  });

  it("makes the process report not ready on /readyz, saying why", async () => {
    const response = await fetch(`${server.base}/readyz`);
    expect(response.status).toBe(503);
    const body = (await response.json()) as { status: string; checks: Record<string, string> };
    expect(body.status).toBe("not_ready");
    expect(body.checks["authorize.policy"]).toMatch(/^not ready: the default policy did not load/);
    expect((await fetch(`${server.base}/healthz`)).status).toBe(200);
  });
});
