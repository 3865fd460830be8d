// Split mode over real TLS: INTERNAL methods answer only the Mandate services allowed to call them,
// identified by their mTLS certificate (SPIFFE ID as the only URI SAN, signed by the deployment's
// CA). No certificate, another CA's certificate, or another service's identity is refused; a
// process refuses to start where its gRPC port would serve internal methods beyond this machine
// without mTLS, or with a certificate that names a service it does not run.
import { randomBytes, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { PeerCertificate } from "node:tls";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyPurpose, Signer } from "../../gen/mandate/v1/signer_pb.js";
import type { DevCa } from "../../services/cli/certs.ts";
import { TlsFiles } from "../../services/shared/rpc/mtls.ts";
import { serviceTransport, testCa } from "../helpers/admin.ts";
import {
  type MandateProcess,
  runMandate,
  startMandateProcess,
  tempAdminFile,
  tempDatabaseUrl,
  tlsEnv,
} from "../helpers/mandate-process.ts";

let ca: DevCa;
let foreign: DevCa;
let signer: MandateProcess;
let address: string;
const kek = { MANDATE_SIGNER_KEK: randomBytes(32).toString("base64url") };

beforeAll(async () => {
  [ca, foreign] = await Promise.all([testCa(), testCa()]);
  const database = tempDatabaseUrl();
  const env = { ...kek, MANDATE_ADMIN_FILE: tempAdminFile() };
  for (const args of [["migrate"], ["admin", "bootstrap"]]) {
    const done = await runMandate([...args, "--database", database], env);
    expect(done.code, done.stderr).toBe(0);
  }
  signer = await startMandateProcess(["serve", "signer", "--grpc-port", "0", "--database", database], {
    ...env,
    ...tlsEnv(ca, "signer"),
  });
  address = signer.summary.grpc as string;
}, 60_000);
afterAll(async () => {
  await signer?.stop();
});

const exp = () => Math.floor(Date.now() / 1000) + 60;
const signJwt = (transport: ReturnType<typeof createGrpcTransport>) =>
  createClient(Signer, transport)
    .signJwt({ tenant: "platform", claims: Buffer.from(JSON.stringify({ sub: "x", exp: exp() })), typ: "at+jwt" })
    .then(
      () => "ok" as const,
      (error: unknown) => Code[ConnectError.from(error).code],
    );
const sign = (transport: ReturnType<typeof createGrpcTransport>) =>
  createClient(Signer, transport)
    .sign({ tenant: "platform", purpose: KeyPurpose.AUDIT_CHECKPOINT, payload: Buffer.from("checkpoint") })
    .then(
      () => "ok" as const,
      (error: unknown) => Code[ConnectError.from(error).code],
    );

describe("INTERNAL methods over mTLS (mandate serve signer)", () => {
  it("admit only the services allowed for them", async () => {
    expect(await signJwt(serviceTransport(address, ca, "issue"))).toBe("ok");
    expect(await sign(serviceTransport(address, ca, "audit"))).toBe("ok");
    // Another service's identity: authenticated, not allowed.
    expect(await signJwt(serviceTransport(address, ca, "audit"))).toBe("PermissionDenied");
    expect(await sign(serviceTransport(address, ca, "issue"))).toBe("PermissionDenied");
    // The edge forwards outside callers: its own identity opens nothing internal.
    expect(await signJwt(serviceTransport(address, ca, "edge"))).toBe("PermissionDenied");
  });

  it("refuse a caller without a certificate, or with one from another CA", async () => {
    const noCertificate = createGrpcTransport({
      baseUrl: `https://${address}`,
      nodeOptions: { ca: readFileSync(ca.ca) },
    });
    expect(await signJwt(noCertificate)).toBe("Unauthenticated");
    const issue = foreign.services.issue as { cert: string; key: string };
    const otherCa = createGrpcTransport({
      baseUrl: `https://${address}`,
      nodeOptions: { ca: readFileSync(ca.ca), cert: readFileSync(issue.cert), key: readFileSync(issue.key) },
    });
    expect(await signJwt(otherCa)).toBe("Unauthenticated");
    // Plaintext to a TLS port never reaches a handler (the transport fails: Unavailable, Canceled, Aborted).
    const plaintext = await signJwt(createGrpcTransport({ baseUrl: `http://${address}` }));
    expect(["ok", "Unauthenticated", "PermissionDenied", "InvalidArgument"]).not.toContain(plaintext);
  });

  it("speaks TLS 1.3 only", async () => {
    const { connect } = await import("node:tls");
    const [host, port] = [
      address.slice(0, address.lastIndexOf(":")),
      Number(address.slice(address.lastIndexOf(":") + 1)),
    ];
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({ host, port, ca: readFileSync(ca.ca), maxVersion: "TLSv1.2", ALPNProtocols: ["h2"] });
      socket.once("secureConnect", () => {
        resolve(`connected with ${socket.getProtocol()}`);
        socket.destroy();
      });
      socket.once("error", (error) => resolve(`refused: ${(error as NodeJS.ErrnoException).code}`));
    });
    expect(outcome).toMatch(/^refused/);
  });
});

describe("service identities", () => {
  const certificate = (service: string, from: DevCa = ca) =>
    new X509Certificate(readFileSync((from.services[service] as { cert: string }).cert));
  const peer = (x509: X509Certificate) => ({ subjectaltname: x509.subjectAltName }) as PeerCertificate;

  it("a client checks that the server is the service it configured there", () => {
    const files = new TlsFiles({
      certFile: (ca.services.issue as { cert: string }).cert,
      keyFile: (ca.services.issue as { key: string }).key,
      caFile: ca.ca,
      trustDomain: ca.trustDomain,
    });
    expect(files.identity).toBe("issue");
    const expectSigner = files.checkServer(["signer"]);
    expect(expectSigner("127.0.0.1", peer(certificate("signer")))).toBeUndefined();
    expect(expectSigner("127.0.0.1", peer(certificate("audit")))?.message).toMatch(
      /not spiffe:\/\/mandate\.test\/mandate\/signer/,
    );
  });

  it("a process refuses a certificate of another trust domain or of a service it does not run", async () => {
    const database = tempDatabaseUrl();
    expect((await runMandate(["migrate", "--database", database])).code).toBe(0);
    const wrongService = await runMandate(["serve", "signer", "--grpc-port", "0", "--database", database], {
      ...kek,
      ...tlsEnv(ca, "audit"),
    });
    expect(wrongService.code).toBe(2);
    expect(wrongService.stderr).toContain('names the service "audit", which this process does not run');
    const wrongDomain = await runMandate(["serve", "signer", "--grpc-port", "0", "--database", database], {
      ...kek,
      ...tlsEnv(ca, "signer"),
      MANDATE_TLS_TRUST_DOMAIN: "elsewhere.test",
    });
    expect(wrongDomain.code).toBe(2);
    expect(wrongDomain.stderr).toContain("spiffe://elsewhere.test/mandate/<service>");
  });

  it("a process refuses to serve internal methods beyond this machine without mTLS, naming the keys", async () => {
    const database = tempDatabaseUrl();
    expect((await runMandate(["migrate", "--database", database])).code).toBe(0);
    const open = await runMandate(["serve", "signer", "--grpc-port", "0", "--database", database], {
      ...kek,
      MANDATE_GRPC_HOST: "0.0.0.0",
    });
    expect(open.code).toBe(2);
    for (const key of ["tls.certFile", "tls.keyFile", "tls.caFile", "MANDATE_TLS_CERT_FILE"]) {
      expect(open.stderr).toContain(key);
    }
  });
});
