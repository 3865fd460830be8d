// `mandate agents enrollment-token | enroll | renew | certificates | revoke-certificates` end to end:
// the real CLI (bin/mandate.js) against a running `mandate dev` with its mTLS listener. The agent's
// key is generated on disk by the CLI (mode 0600) and never sent; the certificates it writes are
// read back with openssl.
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addOptions, runMandate } from "../helpers/mandate-process.ts";
import { freePort, type OAuthServer, registerKeylessAgent, startOAuthServer } from "../helpers/oauth-server.ts";
import { selfSignedCertificate } from "../helpers/tls.ts";

let server: OAuthServer;
let mtlsUrl: string;
let serverCaFile: string;

beforeAll(async () => {
  const tls = selfSignedCertificate();
  const keyFile = join(mkdtempSync(join(tmpdir(), "mandate-mtls-")), "key.pem");
  writeFileSync(keyFile, tls.key, { mode: 0o600 });
  serverCaFile = tls.certFile;
  const mtlsPort = await freePort();
  mtlsUrl = `https://127.0.0.1:${mtlsPort}`;
  server = await startOAuthServer({
    MANDATE_HTTP_MTLS_PORT: String(mtlsPort),
    MANDATE_HTTP_MTLS_CERT_FILE: tls.certFile,
    MANDATE_HTTP_MTLS_KEY_FILE: keyFile,
  });
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

/** An admin command (gRPC, the server's admin credentials). */
function admin(args: string[]) {
  return runMandate(addOptions(args, ["--tenant", "demo", "--address", server.process.summary.grpc as string]), {
    MANDATE_ADMIN_FILE: server.process.adminFile,
  });
}

async function json<T>(run: Promise<{ code: number | null; stdout: string; stderr: string }>): Promise<T> {
  const { code, stdout, stderr } = await run;
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout) as T;
}

interface Summary {
  spiffeId: string;
  serial: string;
  notAfter: string;
  certificateFile: string;
  renewalEndpoint: string;
}

describe("mandate agents enroll / renew", () => {
  it("enrolls with a generated key, renews over mTLS, lists and revokes; refusals say what to do", async () => {
    const clientId = await registerKeylessAgent(server, { clientName: "CLI enrolled agent" });
    const dir = mkdtempSync(join(tmpdir(), "mandate-agent-cli-"));
    const keyFile = join(dir, "agent-key.pem");
    const certFile = join(dir, "agent.pem");

    const { token } = await json<{ token: string }>(
      admin(["agents", "enrollment-token", "--ttl", "10m", "--json", "--", clientId]),
    );
    expect(token).toMatch(/^mandate_enroll_/);

    const enroll = (extra: string[]) =>
      runMandate(["agents", "enroll", "--issuer", server.issuer, "--key", keyFile, "--out", certFile, ...extra]);
    const enrolled = await json<Summary>(enroll(["--token", token, "--generate-key", "ec", "--json"]));
    expect(enrolled.spiffeId).toBe(`spiffe://demo.agents.mandate.local/agent/${clientId}`);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const written = readFileSync(certFile, "utf8");
    const certificate = new X509Certificate(written);
    expect(certificate.subjectAltName).toBe(`URI:${enrolled.spiffeId}`);
    expect(certificate.serialNumber.toUpperCase()).toBe(enrolled.serial);
    // The certificate is for the key on disk (openssl compares the public keys).
    const keyPub = execFileSync("openssl", ["pkey", "-in", keyFile, "-pubout"], { encoding: "utf8" });
    expect(certificate.publicKey.export({ type: "spki", format: "pem" })).toBe(keyPub);

    // The token was used: a second enrollment says so, and what to do.
    const reused = await enroll(["--token", token]);
    expect(reused.code).toBe(1);
    expect(reused.stderr).toContain("invalid_grant: the enrollment token was already used");
    expect(reused.stderr).toContain("mandate agents enrollment-token");
    // --generate-key never replaces a key.
    const overwrite = await enroll(["--token", token, "--generate-key", "rsa"]);
    expect(overwrite.code).toBe(2);
    expect(overwrite.stderr).toContain("exists: drop --generate-key");

    const renew = () =>
      runMandate([
        "agents",
        "renew",
        "--issuer",
        server.issuer,
        "--key",
        keyFile,
        "--cert",
        certFile,
        "--mtls-url",
        mtlsUrl,
        "--ca-file",
        serverCaFile,
        "--json",
      ]);
    const renewed = await json<Summary>(renew());
    expect(renewed.spiffeId).toBe(enrolled.spiffeId);
    expect(renewed.serial).not.toBe(enrolled.serial);
    expect(new X509Certificate(readFileSync(certFile, "utf8")).serialNumber.toUpperCase()).toBe(renewed.serial);

    const listed = await json<Array<{ serial: string; proof: string; renewedFrom?: string }>>(
      admin(["agents", "certificates", "--json", "--", clientId]),
    );
    expect(listed.map((c) => [c.serial, c.proof])).toEqual([
      [renewed.serial, "renewal"],
      [enrolled.serial, "enrollment_token"],
    ]);
    const human = await admin(["agents", "certificates", "--", clientId]);
    expect(human.stdout).toContain("SERIAL");
    expect(human.stdout).toContain(renewed.serial);

    const revoked = await json<{ revokedCount: number }>(
      admin(["agents", "revoke-certificates", "--reason", "keyCompromise", "--json", "--", clientId]),
    );
    expect(revoked.revokedCount).toBe(2);
    const refused = await renew();
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("access_denied");
    expect(refused.stderr).toContain("(revoked)");
    expect(refused.stderr).toContain("new enrollment token");
  }, 300_000);

  it("refuses usage errors with what to do, and documents every command", async () => {
    const noProof = await runMandate([
      "agents",
      "enroll",
      "--issuer",
      server.issuer,
      "--key",
      "k.pem",
      "--out",
      "c.pem",
    ]);
    expect(noProof.code).toBe(2);
    expect(noProof.stderr).toContain("give --token");
    const plain = await runMandate([
      "agents",
      "renew",
      "--issuer",
      server.issuer,
      "--key",
      "/nonexistent/key.pem",
      "--cert",
      "/nonexistent/cert.pem",
    ]);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain("cannot read the key");
    const badReason = await admin(["agents", "revoke-certificates", "x", "--reason", "whim"]);
    expect(badReason.code).toBe(1);
    expect(badReason.stderr).toContain("Allowed choices are");
    const help = await runMandate(["agents", "--help"]);
    expect(help.code).toBe(0);
    for (const name of ["enrollment-token", "certificates", "revoke-certificates", "enroll", "renew"]) {
      expect(help.stdout, name).toContain(`  ${name}`);
    }
    const enrollHelp = await runMandate(["agents", "enroll", "--help"]);
    expect(enrollHelp.stdout).toContain("--generate-key <type>");
  }, 180_000);
});
