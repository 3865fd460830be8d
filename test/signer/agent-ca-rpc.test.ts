// The agent CA's RPCs on a running `mandate dev` over native gRPC with mTLS: who may call them (only
// Issue issues and signs CRLs; the trust bundle is public like the JWKS), and what comes back verifies
// with openssl.
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyPurpose, Signer } from "../../gen/mandate/v1/signer_pb.js";
import type { DevCa } from "../../services/cli/certs.ts";
import { serviceTransport, testCa } from "../helpers/admin.ts";
import { type MandateProcess, startDevProcess, tlsEnv } from "../helpers/mandate-process.ts";

let dev: MandateProcess;
let ca: DevCa;

beforeAll(async () => {
  ca = await testCa();
  dev = await startDevProcess(tlsEnv(ca, "signer"));
}, 60_000);
afterAll(async () => {
  await dev?.stop();
});

function signerAs(service: string) {
  return createClient(Signer, serviceTransport(dev.summary.grpc as string, ca, service));
}

/** A caller with no credentials at all (TLS only). */
function anonymous() {
  const transport = createGrpcTransport({
    baseUrl: `https://${dev.summary.grpc as string}`,
    nodeOptions: { ca: readFileSync(ca.ca) },
  });
  return createClient(Signer, transport);
}

function issueRequest() {
  const spki = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "der" });
  return {
    tenant: "demo",
    publicKeySpki: spki,
    spiffeId: "spiffe://demo.agents.mandate.local/agent/bot-1",
    notAfter: timestampFromMs(Date.now() + 3_600_000),
  };
}

function pem(label: string, ders: readonly Uint8Array[]): string {
  return ders
    .map((der) => {
      const body = Buffer.from(der)
        .toString("base64")
        .replace(/(.{64})/g, "$1\n");
      return `-----BEGIN ${label}-----\n${body.trimEnd()}\n-----END ${label}-----\n`;
    })
    .join("");
}

async function refusal(promise: Promise<unknown>): Promise<Code | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return ConnectError.from(error).code;
  }
}

describe("agent CA RPCs on mandate dev (native gRPC, mTLS)", () => {
  it("Issue issues; the leaf verifies against the trust bundle any anonymous caller reads", async () => {
    const issued = await signerAs("issue").issueAgentCertificate(issueRequest());
    const bundle = await anonymous().getAgentTrustBundle({ tenant: "demo" });
    expect(bundle.rootsDer).toHaveLength(1);
    expect(bundle.intermediatesDer).toHaveLength(1);
    expect(bundle.maxAgeSeconds).toBeGreaterThan(0);
    expect((bundle.spiffeBundle?.keys as Array<{ use: string }> | undefined)?.map((k) => k.use)).toEqual(["x509-svid"]);
    const dir = mkdtempSync(join(tmpdir(), "mandate-ca-rpc-"));
    writeFileSync(join(dir, "roots.pem"), pem("CERTIFICATE", bundle.rootsDer));
    writeFileSync(join(dir, "intermediates.pem"), pem("CERTIFICATE", bundle.intermediatesDer));
    writeFileSync(join(dir, "leaf.pem"), pem("CERTIFICATE", [issued.certificateDer]));
    const out = execFileSync(
      "openssl",
      ["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", join(dir, "roots.pem")].concat([
        "-untrusted",
        join(dir, "intermediates.pem"),
        join(dir, "leaf.pem"),
      ]),
      { encoding: "utf8" },
    );
    expect(out).toMatch(/leaf\.pem: OK/);
    // The CRL distribution point names the edge's public base URL.
    const text = execFileSync(
      "openssl",
      ["x509", "-noout", "-ext", "crlDistributionPoints", "-in", join(dir, "leaf.pem")],
      {
        encoding: "utf8",
      },
    );
    expect(text).toContain(`/t/demo/agents/crl/${issued.issuerKid}.crl`);

    const { crls } = await signerAs("issue").signAgentCrls({
      tenant: "demo",
      revoked: [{ serial: issued.serial, revokeTime: timestampFromMs(Date.now()), reason: "keyCompromise" }],
      nextUpdate: timestampFromMs(Date.now() + 3_600_000),
    });
    expect(crls.map((crl) => crl.issuerKid)).toEqual([issued.issuerKid]);
  }, 60_000);

  it("refuses issuance and CRL signing to any caller but Issue", async () => {
    const crlRequest = { tenant: "demo", revoked: [], nextUpdate: timestampFromMs(Date.now() + 3_600_000) };
    for (const client of [signerAs("audit"), signerAs("introspect"), anonymous()]) {
      expect(await refusal(client.issueAgentCertificate(issueRequest()))).toBeOneOf([
        Code.PermissionDenied,
        Code.Unauthenticated,
      ]);
      expect(await refusal(client.signAgentCrls(crlRequest))).toBeOneOf([Code.PermissionDenied, Code.Unauthenticated]);
    }
  }, 60_000);

  it("refuses the CA purposes on the raw Sign RPC, even for its own caller (audit)", async () => {
    const code = await refusal(
      signerAs("audit").sign({ tenant: "demo", purpose: KeyPurpose.AGENT_CA, payload: Buffer.from("x") }),
    );
    expect(code).toBe(Code.InvalidArgument);
  }, 60_000);
});
