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
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { browserAvailable, launchChromium, servePage } from "../helpers/browser.ts";
import {
  expectGrpcError,
  grpcClient,
  healthClient,
  reflectionClient,
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
function getTenantInBrowser(tab: Page, baseUrl: string, tenant: string): Promise<unknown> {
  type PageGlobals = { getTenant: (url: string, tenant: string) => Promise<unknown> };
  return tab.evaluate(
    ([url, id]) => (globalThis as unknown as PageGlobals).getTenant(url as string, id as string),
    [baseUrl, tenant],
  );
}

describe.each(["allInOne", "split"])("%s", (key) => {
  const d = () => deployments[key] as Deployment;
  let tenants: UntypedClient;
  beforeAll(() => {
    tenants = grpcClient("Tenants", d().grpcAddress, { "grpc.max_send_message_length": 64 * 1024 * 1024 });
  });
  afterAll(() => tenants.close());

  it("reports SERVING over grpc.health.v1 for each of the five services and the server", async () => {
    const health = healthClient(d().grpcAddress);
    for (const service of ["", ...FIVE_SERVICES, "mandate.v1.Tenants"]) {
      await expect(unary(health, "Check", { service })).resolves.toMatchObject({ status: "SERVING" });
    }
    const unknown = await expectGrpcError(unary(health, "Check", { service: "no.such.Service" }));
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    health.close();
  });

  it("lists every service through server reflection", async () => {
    const client = reflectionClient(d().grpcAddress);
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
    await expect(unary(tenants, "GetTenant", { tenant: "demo" })).resolves.toMatchObject({ tenant: { id: "demo" } });
    const id = `t-${key.toLowerCase()}-${Date.now()}`;
    await expect(unary(tenants, "CreateTenant", { tenant: id, displayName: "Acme" })).resolves.toMatchObject({
      tenant: { id, displayName: "Acme" },
    });
    const again = await expectGrpcError(unary(tenants, "CreateTenant", { tenant: id }));
    expect(again.code).toBe(grpc.status.ALREADY_EXISTS);
    const listed = await unary<{ tenants: { id: string }[] }>(tenants, "ListTenants", { page: { pageSize: 500 } });
    expect(listed.tenants.map((t) => t.id)).toEqual(expect.arrayContaining(["demo", id]));
  });

  it("rejects a missing or malformed tenant or id with INVALID_ARGUMENT naming the field", async () => {
    const missing = await expectGrpcError(unary(tenants, "GetTenant", {}));
    expect(missing.code).toBe(grpc.status.INVALID_ARGUMENT);
    const fields = statusDetails(missing).fieldViolations.map((v) => v.field);
    expect(fields.length).toBeGreaterThan(0);
    expect(new Set(fields)).toEqual(new Set(["tenant"]));

    const issue = grpcClient("Issue", d().grpcAddress);
    const badId = await expectGrpcError(unary(issue, "GetMandate", { tenant: "demo", mandateId: "../../etc/passwd" }));
    expect(badId.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(statusDetails(badId).fieldViolations.map((v) => v.field)).toEqual(["mandate_id"]);
    issue.close();

    const malformed = await expectGrpcError(unary(tenants, "GetTenant", { tenant: "Not A Tenant!" }));
    expect(malformed.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(malformed.details).toMatch(/^tenant: /);
    expect(statusDetails(malformed).reasons).toContain("INVALID_ARGUMENT");
  });

  it("validates nested fields and names them by path", async () => {
    const authorize = grpcClient("Authorize", d().grpcAddress);
    const error = await expectGrpcError(
      unary(authorize, "Check", {
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

  it("answers NOT_FOUND for an unregistered tenant and UNIMPLEMENTED for features not landed", async () => {
    const authorize = grpcClient("Authorize", d().grpcAddress);
    const check = {
      subject: { id: "alice", kind: "PARTY_KIND_HUMAN" },
      action: "orders.read",
      resource: { type: "order", id: "1" },
    };
    const foreign = await expectGrpcError(unary(authorize, "Check", { tenant: "nobody", ...check }));
    expect(foreign.code).toBe(grpc.status.NOT_FOUND);
    const pending = await expectGrpcError(unary(authorize, "Check", { tenant: "demo", ...check }));
    expect(pending.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(pending.details).toContain("mandate.v1.Authorize/Check");
    for (const [service, method, request] of [["Issue", "GetMandate", { tenant: "demo", mandateId: "m1" }]] as const) {
      const client = grpcClient(service, d().grpcAddress);
      expect((await expectGrpcError(unary(client, method, request))).code).toBe(grpc.status.UNIMPLEMENTED);
      client.close();
    }
    authorize.close();
    // Introspect has landed: a token it cannot verify is simply inactive (RFC 7662 §2.2).
    const introspect = grpcClient("Introspect", d().grpcAddress);
    expect(await unary(introspect, "Introspect", { tenant: "demo", token: "x" })).toMatchObject({ active: false });
    introspect.close();
  });

  it("serves the OAuth discovery document at the edge", async () => {
    const response = await fetch(`${d().httpUrl}/t/demo/.well-known/oauth-authorization-server`);
    expect(response.status).toBe(200);
    expect((await response.json()).token_endpoint).toMatch(/\/t\/demo\/oauth2\/token$/);
  });

  it("refuses an oversize message with RESOURCE_EXHAUSTED and keeps serving", async () => {
    const huge = await expectGrpcError(
      unary(tenants, "CreateTenant", { tenant: "big", displayName: "x".repeat(5 * 1024 * 1024) }),
    );
    expect(huge.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    await expect(unary(tenants, "GetTenant", { tenant: "demo" })).resolves.toMatchObject({ tenant: { id: "demo" } });
  });

  it("answers bytes that are not a protobuf message with INVALID_ARGUMENT", async () => {
    const raw = new grpc.Client(d().grpcAddress, grpc.credentials.createInsecure());
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

  it("honours the caller's deadline", async () => {
    const error = await expectGrpcError(unary(tenants, "GetTenant", { tenant: "demo" }, { deadline: Date.now() - 1 }));
    expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });

  it("serves /healthz and /readyz on the edge", async () => {
    expect((await fetch(`${d().httpUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${d().httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready" });
  });

  it("signs in the Signer's process and serves the tenant's JWKS on the edge", async () => {
    const signer = grpcClient("Signer", d().grpcAddress);
    const exp = Math.floor(Date.now() / 1000) + 60;
    const signed = await unary<{ jwt: string; kid: string }>(signer, "SignJwt", {
      tenant: "demo",
      claims: Buffer.from(JSON.stringify({ sub: "agent", exp })),
      typ: "at+jwt",
    });
    signer.close();
    const response = await fetch(`${d().httpUrl}/t/demo/.well-known/jwks.json`);
    expect(response.status).toBe(200);
    const jwks = (await response.json()) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((k) => k.kid)).toContain(signed.kid);
    const { payload } = await jwtVerify(signed.jwt, createLocalJWKSet(jwks as never), { typ: "at+jwt" });
    expect(payload.sub).toBe("agent");
    expect((await fetch(`${d().httpUrl}/t/nobody/.well-known/jwks.json`)).status).toBe(404);
  });

  it("serves the same handlers over gRPC-Web and Connect from Node", async () => {
    const client = createClient(Tenants, createGrpcWebTransport({ baseUrl: d().httpUrl }));
    expect((await client.getTenant({ tenant: "demo" })).tenant?.id).toBe("demo");
    const error = await client.getTenant({ tenant: "" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field).toBe("tenant");

    const connect = await fetch(`${d().httpUrl}/mandate.v1.Tenants/GetTenant`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ tenant: "demo" }),
    });
    expect(connect.status).toBe(200);
    expect(await connect.json()).toMatchObject({ tenant: { id: "demo" } });
    const tooBig = await fetch(`${d().httpUrl}/mandate.v1.Tenants/CreateTenant`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ tenant: "big", displayName: "x".repeat(5 * 1024 * 1024) }),
    });
    expect(tooBig.status).toBe(429); // Connect maps RESOURCE_EXHAUSTED to 429
    expect(await tooBig.json()).toMatchObject({ code: "resource_exhausted" });
  });

  it.skipIf(!withBrowser)("serves gRPC-Web to headless Chromium", async () => {
    const tab = await (browser as Browser).newPage();
    await tab.goto((page as { origin: string }).origin);
    const ok = await getTenantInBrowser(tab, d().httpUrl, "demo");
    expect(ok).toMatchObject({ ok: true, id: "demo" });
    const bad = await getTenantInBrowser(tab, d().httpUrl, "BAD TENANT");
    expect(bad).toMatchObject({ ok: false, code: Code.InvalidArgument, fields: ["tenant"] });
    await tab.close();
  });

  it("is still healthy after every bad request", async () => {
    const health = healthClient(d().grpcAddress);
    await expect(unary(health, "Check", { service: "" })).resolves.toMatchObject({ status: "SERVING" });
    health.close();
  });
});
