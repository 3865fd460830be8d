// `mandate dev` on a SoftHSM2 token: tokens signed in the HSM verify against the JWKS served over
// HTTP; with a wrong PIN the process stays up but not ready, and signing fails closed.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { Signer } from "../../gen/mandate/v1/signer_pb.js";
import { adminClient, serviceTransport, testCa } from "../helpers/admin.ts";
import { type MandateProcess, startDevProcess, tlsEnv } from "../helpers/mandate-process.ts";
import { createSoftHsmToken, softhsmAvailable } from "../helpers/softhsm.ts";

const processes: MandateProcess[] = [];
afterEach(async () => {
  for (const p of processes.splice(0)) await p.stop();
});

function pkcs11Env(token: ReturnType<typeof createSoftHsmToken>, pin = token.pin): Record<string, string> {
  return {
    SOFTHSM2_CONF: `${token.dir}/softhsm2.conf`,
    MANDATE_SIGNER_BACKEND: "pkcs11",
    MANDATE_PKCS11_MODULE: token.module,
    MANDATE_PKCS11_TOKEN_LABEL: token.tokenLabel,
    MANDATE_PKCS11_PIN: pin,
  };
}

describe.runIf(softhsmAvailable())("mandate dev on a PKCS#11 token (SoftHSM2)", () => {
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
});
