// Abuse limits at the RPC gate, on both transports, against `mandate dev` with tiny limits:
// unauthenticated calls per address end in RESOURCE_EXHAUSTED (HTTP 429 at the edge) with a retry
// hint, while authenticated callers from the same address go on; a client with a quota is held to it
// across its token requests and its RPCs, one without is not. Bounded bursts, no timing assertions.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { OAuthClientRateLimitSchema } from "../../gen/mandate/v1/clients_pb.js";
import { Introspect } from "../../gen/mandate/v1/introspect_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { adminClient } from "../helpers/admin.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

let server: OAuthServer;

beforeAll(async () => {
  // "<refill per second>:<burst>"; 0.001/s adds no token while the test runs.
  server = await startOAuthServer({ MANDATE_RATE_LIMITS_UNAUTHENTICATED_RPC: "0.001:6" });
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

const grpc = () => createGrpcTransport({ baseUrl: `http://${server.process.summary.grpc}` });

/** A Bearer token for Mandate's API of a new demo client, with `rate_limit` when given. */
async function caller(scope: string, rateLimit?: { requestsPerSecond: number; burst: number }) {
  const { clientId, clientSecret } = await server.register({
    grantTypes: ["client_credentials"],
    scope,
    resources: [server.base],
    ...(rateLimit ? { rateLimit: create(OAuthClientRateLimitSchema, rateLimit) } : {}),
  });
  const response = await fetch(`${server.issuer}/oauth2/token`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
    },
    body: new URLSearchParams({ grant_type: "client_credentials", scope, resource: server.base }),
  });
  expect(response.status).toBe(200);
  const { access_token } = (await response.json()) as { access_token: string };
  const interceptor: Interceptor = (next) => (request) => {
    request.header.set("authorization", `Bearer ${access_token}`);
    return next(request);
  };
  return interceptor;
}

describe("RPC abuse limits", () => {
  it("holds a client with a quota to it (token request + RPCs share it); one without is not held", async () => {
    const limited = createClient(
      Introspect,
      createGrpcTransport({
        baseUrl: `http://${server.process.summary.grpc}`,
        interceptors: [await caller("mandate:introspect", { requestsPerSecond: 0.001, burst: 4 })],
      }),
    );
    // The token request took one token of the bucket: three calls are left.
    for (let i = 0; i < 3; i++) await limited.introspect({ tenant: "demo", token: "x" });
    const refused = await limited.introspect({ tenant: "demo", token: "x" }).then(() => undefined, ConnectError.from);
    expect(refused?.code).toBe(Code.ResourceExhausted);
    expect(Number(refused?.metadata.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused?.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBeGreaterThanOrEqual(1n);
    const free = createClient(
      Introspect,
      createGrpcTransport({
        baseUrl: `http://${server.process.summary.grpc}`,
        interceptors: [await caller("mandate:introspect")],
      }),
    );
    for (let i = 0; i < 20; i++) await free.introspect({ tenant: "demo", token: "x" });
  });

  it("ends a burst of unauthenticated calls with RESOURCE_EXHAUSTED (429 at the edge); authenticated callers go on", async () => {
    const anonymous = createClient(Tenants, grpc());
    const codes: Code[] = [];
    for (let i = 0; i < 8; i++) {
      codes.push(
        (await anonymous.getTenant({ tenant: "demo" }).then(
          () => -1,
          (e: unknown) => ConnectError.from(e).code,
        )) as Code,
      );
    }
    // Six refusals as UNAUTHENTICATED spend the address's bucket; then the gate answers RESOURCE_EXHAUSTED.
    expect(codes.slice(0, 6)).toEqual(Array(6).fill(Code.Unauthenticated));
    expect(codes.slice(6)).toEqual([Code.ResourceExhausted, Code.ResourceExhausted]);
    const edge = await fetch(`${server.base}/mandate.v1.Tenants/GetTenant`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ tenant: "demo" }),
    });
    expect(edge.status).toBe(429);
    expect(Number(edge.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const body = (await edge.json()) as { code: string; details: Array<{ type: string; value: string }> };
    expect(body.code).toBe("resource_exhausted");
    const retry = body.details.find((d) => d.type === "google.rpc.RetryInfo");
    expect(retry).toBeTruthy();
    // Same address, with credentials: not counted against the anonymous budget.
    const admin = adminClient(Tenants, server.process.summary.grpc as string, server.process.adminFile);
    await expect(admin.getTenant({ tenant: "demo" })).resolves.toMatchObject({ tenant: { id: "demo" } });
  });
});
