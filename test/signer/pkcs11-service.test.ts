// `mandate dev` on a SoftHSM2 token: tokens signed in the HSM verify against the JWKS served over
// HTTP; with a wrong PIN the process stays up but not ready, and signing fails closed. Under
// `serve --workers 2` every worker process opens its own sessions on the token.
import { readFileSync, realpathSync } from "node:fs";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Signer } from "../../gen/mandate/v1/signer_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { adminClient, serviceTransport, testCa } from "../helpers/admin.ts";
import { engines } from "../helpers/engines.ts";
import {
  freePort,
  type MandateProcess,
  runMandate,
  startDevProcess,
  startMandateProcess,
  tempAdminFile,
  tlsEnv,
} from "../helpers/mandate-process.ts";
import { createSoftHsmToken, softhsmAvailable } from "../helpers/softhsm.ts";
import { basic, send, workerPids } from "../runtime/worker-requests.ts";

const processes: MandateProcess[] = [];
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const p of processes.splice(0)) await p.stop();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Whether process `pid` has the PKCS#11 module mapped, i.e. loaded it (maps name the file, not a link to it). */
const loadedModule = (pid: number, module: string) =>
  readFileSync(`/proc/${pid}/maps`, "utf8").includes(realpathSync(module));

function pkcs11Env(token: ReturnType<typeof createSoftHsmToken>, pin = token.pin): Record<string, string> {
  return {
    SOFTHSM2_CONF: `${token.dir}/softhsm2.conf`,
    MANDATE_SIGNER_BACKEND: "pkcs11",
    MANDATE_PKCS11_MODULE: token.module,
    MANDATE_PKCS11_TOKEN_LABEL: token.tokenLabel,
    MANDATE_PKCS11_PIN: pin,
  };
}

describe.runIf(softhsmAvailable())("Mandate on a PKCS#11 token (SoftHSM2)", () => {
  it("signs tokens in the HSM that verify against the JWKS served over HTTP", async () => {
    const token = createSoftHsmToken();
    const ca = await testCa();
    const dev = await startDevProcess({ ...pkcs11Env(token), ...tlsEnv(ca, "signer") });
    processes.push(dev);
    // SignJwt is internal: called as Mandate's Issue service, with its certificate (mTLS).
    const signer = createClient(Signer, serviceTransport(dev.summary.grpc as string, ca, "issue"));
    const admin = adminClient(Signer, dev.summary.grpc as string, dev.adminFile, ca.ca);
    const exp = Math.floor(Date.now() / 1000) + 300;
    const { jwt, kid, alg } = await signer.signJwt({
      tenant: "demo",
      claims: Buffer.from(JSON.stringify({ sub: "agent-1", exp })),
      typ: "at+jwt",
    });
    expect(alg).toBe("ES256");
    const jwks = createRemoteJWKSet(new URL(`${dev.summary.http}/t/demo/.well-known/jwks.json`));
    const { protectedHeader, payload } = await jwtVerify(jwt, jwks, { typ: "at+jwt" });
    expect(protectedHeader.kid).toBe(kid);
    expect(payload.sub).toBe("agent-1");
    const { keys } = await admin.listKeys({ tenant: "demo" });
    expect(keys.every((k) => k.backend === "pkcs11")).toBe(true);
    token.cleanup();
  }, 60_000);

  it("with a wrong PIN stays up, reports not ready, and refuses to sign", async () => {
    const token = createSoftHsmToken();
    const ca = await testCa();
    const dev = await startDevProcess({ ...pkcs11Env(token, "000000"), ...tlsEnv(ca, "signer") });
    processes.push(dev);
    expect(dev.stderr()).not.toContain("000000");
    const ready = await fetch(`${dev.summary.http}/readyz`);
    expect(ready.status).toBe(503);
    const body = (await ready.json()) as { checks: Record<string, string> };
    expect(body.checks.keys).toMatch(/not ready: .*PIN/i);
    expect(JSON.stringify(body)).not.toContain("000000");

    const transport = serviceTransport(dev.summary.grpc as string, ca, "issue");
    const health = await createClient(Health, transport).check({ service: Signer.typeName });
    expect(health.status).toBe(2); // NOT_SERVING
    const signer = createClient(Signer, transport);
    const exp = Math.floor(Date.now() / 1000) + 60;
    const error = await signer
      .signJwt({ tenant: "demo", claims: Buffer.from(JSON.stringify({ exp })) })
      .then(() => undefined, ConnectError.from);
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).toMatch(/signing is unavailable/);
    const jwks = await fetch(`${dev.summary.http}/t/demo/.well-known/jwks.json`);
    expect(jwks.status).toBe(503);
    token.cleanup();
  }, 60_000);

  it("under serve --workers 2, every worker opens its own sessions and signs tokens that verify", async () => {
    const token = createSoftHsmToken();
    cleanups.push(token.cleanup);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const store = await (engines.at(-1) as (typeof engines)[number]).open();
    cleanups.push(() => store.dispose());
    const env = {
      ...pkcs11Env(token),
      MANDATE_PUBLIC_BASE_URL: base,
      MANDATE_ADMIN_FILE: tempAdminFile(),
      MANDATE_REDIS_URL: "redis://127.0.0.1:6379",
    };
    for (const args of [["migrate"], ["admin", "bootstrap"]]) {
      const done = await runMandate([...args, "--database", store.url], env);
      if (done.code !== 0) throw new Error(`mandate ${args.join(" ")} failed: ${done.stderr}`);
    }
    const serve = ["serve", "all", "edge", "--workers", "2", "--http-port", String(port), "--grpc-port", "0"];
    const mandate = await startMandateProcess([...serve, "--database", store.url], env);
    processes.push(mandate);
    const grpc = mandate.summary.grpc as string;
    await adminClient(Tenants, grpc, mandate.adminFile).createTenant({ tenant: "acme", displayName: "Acme" });
    const created = await adminClient(Issue, grpc, mandate.adminFile).createClient({
      tenant: "acme",
      metadata: { kind: ClientKind.APPLICATION, grantTypes: ["client_credentials"], scope: "orders.read" },
    });
    const client = { id: created.client?.clientId as string, secret: created.clientSecret };

    // PKCS#11 sessions and logins belong to the process that opens them: the module is loaded by
    // each worker and never by the primary, which only supervises.
    const workers = workerPids(mandate.child.pid);
    expect(workers).toHaveLength(2);
    for (const pid of workers) expect(loadedModule(pid, token.module)).toBe(true);
    expect(loadedModule(mandate.child.pid as number, token.module)).toBe(false);

    // Fresh connections alternate between the workers: both are ready and both sign in the token.
    for (let i = 0; i < 2; i++) expect((await send(`${base}/readyz`)).status).toBe(200);
    const jwks = createRemoteJWKSet(new URL(`${base}/t/acme/.well-known/jwks.json`));
    for (let i = 0; i < 6; i++) {
      const issued = await send(`${base}/t/acme/oauth2/token`, {
        form: { grant_type: "client_credentials", scope: "orders.read" },
        headers: basic(client),
      });
      expect(issued.status).toBe(200);
      const { payload } = await jwtVerify(issued.body.access_token as string, jwks, { typ: "at+jwt" });
      expect(payload.client_id).toBe(client.id);
    }
    const { keys } = await adminClient(Signer, grpc, mandate.adminFile).listKeys({ tenant: "acme" });
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((k) => k.backend === "pkcs11")).toBe(true);
  }, 120_000);
});
