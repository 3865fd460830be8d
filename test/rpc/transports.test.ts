// The same end-to-end checks against both wirings: all-in-one (`mandate dev`) and split
// (`mandate serve all` + `mandate serve edge`, two processes). Clients: an independent
// @grpc/grpc-js client, gRPC-Web and Connect from Node, and gRPC-Web from headless Chromium.
import type { Server } from "node:http";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import * as grpc from "@grpc/grpc-js";
import { createLocalJWKSet, jwtVerify } from "jose";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { adminClient, adminHeaders, adminInterceptor, adminMetadata } from "../helpers/admin.ts";
import { browserAvailable, launchChromium, servePage } from "../helpers/browser.ts";
import {
  channelCredentials,
  expectGrpcError,
  grpcClient,
  healthClient,
  reflectionClient,
  type ServiceName,
  statusDetails,
  type UntypedClient,
  unary,
} from "../helpers/grpc-js-client.ts";
import { type Deployment, startAllInOne, startSplit } from "../helpers/mandate-process.ts";

const FIVE_SERVICES = [
  "mandate.v1.Authorize",
  "mandate.v1.Introspect",
  "mandate.v1.Issue",
  "mandate.v1.Audit",
  "mandate.v1.Signer",
];
const withBrowser = browserAvailable();

let page: { origin: string; server: Server } | undefined;
let browser: Browser | undefined;
const deployments: Record<string, Deployment> = {};

beforeAll(async () => {
  if (withBrowser) {
    page = await servePage(fileURLToPath(new URL("../browser/grpc-web-page.ts", import.meta.url)));
    browser = await launchChromium();
  }
  const env: Record<string, string> = page ? { MANDATE_HTTP_CORS_ORIGINS: page.origin } : {};
  const [allInOne, split] = await Promise.all([startAllInOne(env), startSplit(env)]);
  deployments.allInOne = allInOne;
  deployments.split = split;
}, 90_000);

afterAll(async () => {
  await Promise.all(Object.values(deployments).map((d) => d.stop()));
  await browser?.close();
  page?.server.close();
});

/** Runs the page's bundled gRPC-Web client (test/browser/grpc-web-page.ts) inside Chromium. */
function getTenantInBrowser(
  tab: Page,
  baseUrl: string,
  tenant: string,
  headers: Record<string, string>,
): Promise<unknown> {
  type PageGlobals = {
    getTenant: (url: string, tenant: string, headers: Record<string, string>) => Promise<unknown>;
  };
  return tab.evaluate(
    ([url, id, auth]) =>
      (globalThis as unknown as PageGlobals).getTenant(url as string, id as string, auth as Record<string, string>),
    [baseUrl, tenant, headers] as const,
  );
}

describe.each(["allInOne", "split"])("%s", (key) => {
  const d = () => deployments[key] as Deployment;
  let tenants: UntypedClient;
  beforeAll(() => {
    tenants = grpcClient("Tenants", d().grpcAddress, { "grpc.max_send_message_length": 64 * 1024 * 1024 }, d().caFile);
  });
  afterAll(() => tenants.close());
  /** A grpc-js call as the platform admin (client credentials + DPoP, as the CLI does). */
  const asAdmin = async <T = Record<string, unknown>>(
    client: UntypedClient,
    service: string,
    method: string,
    request: unknown,
    options: grpc.CallOptions = {},
  ) =>
    unary<T>(
      client,
      method,
      request,
      options,
      await adminMetadata(d().adminFile, d().grpcAddress, `/mandate.v1.${service}/${method}`, Boolean(d().caFile)),
    );
  const client = (service: ServiceName) => grpcClient(service, d().grpcAddress, {}, d().caFile);

  it("reports SERVING over grpc.health.v1 for each of the five services and the server", async () => {
    const health = healthClient(d().grpcAddress, d().caFile);
    for (const service of ["", ...FIVE_SERVICES, "mandate.v1.Tenants"]) {
      await expect(unary(health, "Check", { service })).resolves.toMatchObject({ status: "SERVING" });
    }
    const unknown = await expectGrpcError(unary(health, "Check", { service: "no.such.Service" }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    health.close();
  });

  it("lists every service through server reflection", async () => {
    const client = reflectionClient(d().grpcAddress, d().caFile);
    const call = (
      client.ServerReflectionInfo as () => grpc.ClientDuplexStream<
        unknown,
        { listServicesResponse?: { service: { name: string }[] } }
      >
    ).call(client);
    const names = await new Promise<string[]>((resolve, reject) => {
      call.on("data", (response) => {
        resolve((response.listServicesResponse?.service ?? []).map((s: { name: string }) => s.name));
        call.end();
      });
      call.on("error", reject);
      call.write({ listServices: "" });
    });
    expect(names).toEqual(expect.arrayContaining([...FIVE_SERVICES, "mandate.v1.Tenants", "grpc.health.v1.Health"]));
    client.close();
  });

  it("answers a real RPC from the store, and writes through one", async () => {
    await expect(asAdmin(tenants, "Tenants", "GetTenant", { tenant: "demo" })).resolves.toMatchObject({
      tenant: { id: "demo" },
    });
    const id = `t-${key.toLowerCase()}-${Date.now()}`;
    await expect(
      asAdmin(tenants, "Tenants", "CreateTenant", { tenant: id, displayName: "Acme" }),
    ).resolves.toMatchObject({ tenant: { id, displayName: "Acme" } });
    const again = await expectGrpcError(asAdmin(tenants, "Tenants", "CreateTenant", { tenant: id }));
    expect(again.code).toBe(grpc.status.ALREADY_EXISTS);
    const listed = await asAdmin<{ tenants: { id: string }[] }>(tenants, "Tenants", "ListTenants", {
      page: { pageSize: 500 },
    });
    expect(listed.tenants.map((t) => t.id)).toEqual(expect.arrayContaining(["demo", id]));
  });

  it("rejects a missing or malformed tenant or id with INVALID_ARGUMENT naming the field", async () => {
    const missing = await expectGrpcError(asAdmin(tenants, "Tenants", "GetTenant", {}));
    expect(missing.code).toBe(grpc.status.INVALID_ARGUMENT);
    const fields = statusDetails(missing).fieldViolations.map((v) => v.field);
    expect(fields.length).toBeGreaterThan(0);
    expect(new Set(fields)).toEqual(new Set(["tenant"]));

    const issue = client("Issue");
    const badId = await expectGrpcError(
      asAdmin(issue, "Issue", "GetMandate", { tenant: "demo", mandateId: "../../etc/passwd" }),
    );
    expect(badId.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(statusDetails(badId).fieldViolations.map((v) => v.field)).toEqual(["mandate_id"]);
    issue.close();

    const malformed = await expectGrpcError(asAdmin(tenants, "Tenants", "GetTenant", { tenant: "Not A Tenant!" }));
    expect(malformed.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(malformed.details).toMatch(/^tenant: /);
    expect(statusDetails(malformed).reasons).toContain("INVALID_ARGUMENT");
  });

  it("validates nested fields and names them by path", async () => {
    const authorize = client("Authorize");
    const error = await expectGrpcError(
      asAdmin(authorize, "Authorize", "Check", {
        tenant: "demo",
        subject: { id: "", kind: "PARTY_KIND_HUMAN" },
        action: "read",
        resource: { type: "doc" },
      }),
    );
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(statusDetails(error).fieldViolations.map((v) => v.field)).toEqual(["subject.id"]);
    authorize.close();
  });

  it("answers NOT_FOUND for an unregistered tenant and an unknown mandate, and decisions from Authorize", async () => {
    const authorize = client("Authorize");
    const check = {
      subject: { id: "alice", kind: "PARTY_KIND_HUMAN" },
      action: "orders.read",
      resource: { type: "order", id: "1" },
    };
    const foreign = await expectGrpcError(asAdmin(authorize, "Authorize", "Check", { tenant: "nobody", ...check }));
    expect(foreign.code).toBe(grpc.status.NOT_FOUND);
    // Authorize has landed: the default policy decides (no token scopes: a deny, with its reason).
    const { decision } = (await asAdmin(authorize, "Authorize", "Check", { tenant: "demo", ...check })) as {
      decision: { allow: boolean; reasons: Array<{ code: string }>; policyRevision: string };
    };
    expect(decision.allow).toBe(false);
    expect(decision.reasons.map((r) => r.code)).toContain("scope_missing");
    expect(decision.policyRevision).toMatch(/^default-/);
    // Mandates have landed: an unknown mandate is NOT_FOUND.
    const issue = client("Issue");
    const unknown = await expectGrpcError(asAdmin(issue, "Issue", "GetMandate", { tenant: "demo", mandateId: "m1" }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    issue.close();
    authorize.close();
    // Introspect has landed: a token it cannot verify is simply inactive (RFC 7662 §2.2).
    const introspect = client("Introspect");
    expect(await asAdmin(introspect, "Introspect", "Introspect", { tenant: "demo", token: "x" })).toMatchObject({
      active: false,
    });
    introspect.close();
  });

  it("serves the OAuth discovery document at the edge", async () => {
    const response = await fetch(`${d().httpUrl}/t/demo/.well-known/oauth-authorization-server`);
    expect(response.status).toBe(200);
    expect((await response.json()).token_endpoint).toMatch(/\/t\/demo\/oauth2\/token$/);
  });

  it("refuses an oversize message with RESOURCE_EXHAUSTED and keeps serving", async () => {
    const huge = await expectGrpcError(
      asAdmin(tenants, "Tenants", "CreateTenant", { tenant: "big", displayName: "x".repeat(5 * 1024 * 1024) }),
    );
    expect(huge.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    await expect(asAdmin(tenants, "Tenants", "GetTenant", { tenant: "demo" })).resolves.toMatchObject({
      tenant: { id: "demo" },
    });
  });

  it("answers bytes that are not a protobuf message with INVALID_ARGUMENT", async () => {
    const raw = new grpc.Client(d().grpcAddress, channelCredentials(d().caFile));
    const error = await expectGrpcError(
      new Promise((resolve, reject) =>
        raw.makeUnaryRequest(
          "/mandate.v1.Tenants/GetTenant",
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
          (err, value) => (err ? reject(err) : resolve(value)),
        ),
      ),
    );
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    raw.close();
  });

  it("answers an undecodable binary body at the edge with INVALID_ARGUMENT, never 500", async () => {
    const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    const url = `${d().httpUrl}/mandate.v1.Tenants/GetTenant`;
    const connect = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: garbage,
    });
    expect(connect.status).toBe(400);
    expect(await connect.json()).toMatchObject({ code: "invalid_argument" });
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, garbage.length]), garbage]);
    const web = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: frame,
    });
    expect(web.headers.get("grpc-status")).toBe(String(grpc.status.INVALID_ARGUMENT));
    const cut = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: frame.subarray(0, 3),
    });
    expect(cut.headers.get("grpc-status")).toBe(String(grpc.status.INVALID_ARGUMENT));
  });

  it("honours the caller's deadline", async () => {
    const error = await expectGrpcError(
      asAdmin(tenants, "Tenants", "GetTenant", { tenant: "demo" }, { deadline: Date.now() - 1 }),
    );
    expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });

  it("serves /healthz and /readyz on the edge", async () => {
    expect((await fetch(`${d().httpUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${d().httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready" });
  });

  it("signs in the Signer's process and serves the tenant's JWKS on the edge", async () => {
    // SignJwt is internal: only Issue may call it, over mTLS in split mode; never a token holder.
    const signer = client("Signer");
    const exp = Math.floor(Date.now() / 1000) + 60;
    const claims = { tenant: "demo", claims: Buffer.from(JSON.stringify({ sub: "agent", exp })), typ: "at+jwt" };
    const refused = await expectGrpcError(asAdmin(signer, "Signer", "SignJwt", claims));
    expect(refused.code).toBe(grpc.status.PERMISSION_DENIED);
    signer.close();
    // A token from the OAuth server (Issue, in the edge's process in split mode) is signed by the Signer.
    const issue = adminClient(Issue, d().grpcAddress, d().adminFile, d().caFile);
    const created = await issue.createClient({
      tenant: "demo",
      metadata: { grantTypes: ["client_credentials"], scope: "orders.read", resources: ["https://api.example.com/"] },
    });
    const response = await fetch(`${d().httpUrl}/t/demo/oauth2/token`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`${created.client?.clientId}:${created.clientSecret}`).toString("base64")}`,
      },
      body: new URLSearchParams({ grant_type: "client_credentials", resource: "https://api.example.com/" }),
    });
    expect(response.status).toBe(200);
    const { access_token } = (await response.json()) as { access_token: string };
    const jwksResponse = await fetch(`${d().httpUrl}/t/demo/.well-known/jwks.json`);
    expect(jwksResponse.status).toBe(200);
    const jwks = (await jwksResponse.json()) as { keys: Array<{ kid: string }> };
    const { payload } = await jwtVerify(access_token, createLocalJWKSet(jwks as never), { typ: "at+jwt" });
    expect(payload.sub).toBe(created.client?.clientId);
    expect((await fetch(`${d().httpUrl}/t/nobody/.well-known/jwks.json`)).status).toBe(404);
  });

  it("serves the same handlers over gRPC-Web and Connect from Node", async () => {
    const anonymous = createClient(Tenants, createGrpcWebTransport({ baseUrl: d().httpUrl }));
    const refused = await anonymous.getTenant({ tenant: "demo" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(refused?.code).toBe(Code.Unauthenticated);
    const web = createClient(
      Tenants,
      createGrpcWebTransport({ baseUrl: d().httpUrl, interceptors: [adminInterceptor(d().adminFile)] }),
    );
    expect((await web.getTenant({ tenant: "demo" })).tenant?.id).toBe("demo");
    const error = await web.getTenant({ tenant: "" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field).toBe("tenant");

    const getTenant = `${d().httpUrl}/mandate.v1.Tenants/GetTenant`;
    const connect = await fetch(getTenant, {
      method: "POST",
      headers: { "content-type": "application/json", ...(await adminHeaders(d().adminFile, getTenant)) },
      body: JSON.stringify({ tenant: "demo" }),
    });
    expect(connect.status).toBe(200);
    expect(await connect.json()).toMatchObject({ tenant: { id: "demo" } });
    const createTenant = `${d().httpUrl}/mandate.v1.Tenants/CreateTenant`;
    const tooBig = await fetch(createTenant, {
      method: "POST",
      headers: { "content-type": "application/json", ...(await adminHeaders(d().adminFile, createTenant)) },
      body: JSON.stringify({ tenant: "big", displayName: "x".repeat(5 * 1024 * 1024) }),
    });
    expect(tooBig.status).toBe(429); // Connect maps RESOURCE_EXHAUSTED to 429
    expect(await tooBig.json()).toMatchObject({ code: "resource_exhausted" });
  });

  it.skipIf(!withBrowser)("serves gRPC-Web to headless Chromium", async () => {
    const tab = await (browser as Browser).newPage();
    await tab.goto((page as { origin: string }).origin);
    const url = `${d().httpUrl}/mandate.v1.Tenants/GetTenant`;
    const none = await getTenantInBrowser(tab, d().httpUrl, "demo", {});
    expect(none).toMatchObject({ ok: false, code: Code.Unauthenticated });
    const ok = await getTenantInBrowser(tab, d().httpUrl, "demo", await adminHeaders(d().adminFile, url));
    expect(ok).toMatchObject({ ok: true, id: "demo" });
    const bad = await getTenantInBrowser(tab, d().httpUrl, "BAD TENANT", await adminHeaders(d().adminFile, url));
    expect(bad).toMatchObject({ ok: false, code: Code.InvalidArgument, fields: ["tenant"] });
    await tab.close();
  });

  it("is still healthy after every bad request", async () => {
    const health = healthClient(d().grpcAddress, d().caFile);
    await expect(unary(health, "Check", { service: "" })).resolves.toMatchObject({ status: "SERVING" });
    health.close();
  });
});
