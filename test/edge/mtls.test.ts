// The edge's mutual-TLS listener (RFC 8705): real node:https/tls clients, openssl-made certificates.
// It serves the HTTP edge's handler, asks for a client certificate without judging it (a client
// sends one only when asked; self-signed ones reach the handler), refuses TLS below 1.2, closes with
// the edge, never outlives a failed start; `mandate dev` without certificate files makes a
// development certificate under .mandate/tls.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type TLSSocket } from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { renewedFiles } from "../../services/edge/mtls-listener.ts";
import { type Edge, startEdge } from "../../services/edge/server.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { freePort, startMandateProcess } from "../helpers/mandate-process.ts";
import { leafCertificate, type PkiCertificate, rootCa, selfSignedLeaf } from "../helpers/openssl-pki.ts";

const serverCa = rootCa();
const serverCertificate = leafCertificate(serverCa, { ipAddresses: ["127.0.0.1"], extendedKeyUsage: ["serverAuth"] });
const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An edge with the mTLS listener; its one HTTP handler answers with the TLS peer certificate's SHA-256. */
async function edgeWithMtls(mtlsPort = 0): Promise<Edge> {
  const echo = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.url !== "/peer") return false;
    const socket = req.socket as TLSSocket;
    const raw = socket.encrypted ? socket.getPeerCertificate().raw : undefined;
    res.end(JSON.stringify({ tls: socket.encrypted === true, peer: raw ? fingerprint(raw) : null }));
    return true;
  };
  const edge = await startEdge({
    host: "127.0.0.1",
    port: 0,
    maxRequestBytes: 1024,
    corsOrigins: [],
    services: [],
    logger: createLogger("silent"),
    readiness: async () => ({ ready: true, checks: {} }),
    http: [echo],
    mtls: { host: "127.0.0.1", port: mtlsPort, cert: serverCertificate.pem, key: serverCertificate.keyPem },
  });
  cleanups.push(() => edge.close(100));
  return edge;
}

/** SHA-256 of DER, hex upper case with colons, as openssl prints it. */
function fingerprint(der: Buffer): string {
  return execFileSync("openssl", ["x509", "-inform", "DER", "-noout", "-fingerprint", "-sha256"], { input: der })
    .toString()
    .split("=")[1]
    ?.trim() as string;
}

function get(port: number, path: string, client?: PkiCertificate): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `https://127.0.0.1:${port}${path}`,
      { ca: serverCa.pem, agent: false, ...(client ? { key: client.keyPem, cert: client.pem } : {}) },
      (res) => {
        let body = "";
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("the edge's mTLS listener", () => {
  it("serves the edge's handler and hands it the client certificate, even a self-signed one", async () => {
    const edge = await edgeWithMtls();
    const client = selfSignedLeaf();
    const health = await get(edge.mtlsPort as number, "/healthz", client);
    expect(health).toEqual({ status: 200, body: JSON.stringify({ status: "ok" }) });
    const peer = JSON.parse((await get(edge.mtlsPort as number, "/peer", client)).body);
    const opensslPrint = execFileSync("openssl", ["x509", "-noout", "-fingerprint", "-sha256"], { input: client.pem })
      .toString()
      .split("=")[1]
      ?.trim();
    expect(peer).toEqual({ tls: true, peer: opensslPrint });
    // No certificate: still served (the endpoints decide whether they need one).
    expect(JSON.parse((await get(edge.mtlsPort as number, "/peer")).body)).toEqual({ tls: true, peer: null });
    // The plain listener is unchanged.
    const plain = await fetch(`http://127.0.0.1:${edge.port}/healthz`);
    expect(plain.status).toBe(200);
  });

  it("speaks TLS 1.2 and 1.3, not below", async () => {
    const edge = await edgeWithMtls();
    const handshake = (minVersion: "TLSv1" | "TLSv1.2" | "TLSv1.3", maxVersion: "TLSv1.1" | "TLSv1.2" | "TLSv1.3") =>
      new Promise<string>((resolve) => {
        const socket = connect({
          host: "127.0.0.1",
          port: edge.mtlsPort as number,
          ca: serverCa.pem,
          minVersion,
          maxVersion,
        });
        socket.once("secureConnect", () => {
          resolve(socket.getProtocol() ?? "unknown");
          socket.destroy();
        });
        socket.once("error", (error: NodeJS.ErrnoException) => resolve(`refused: ${error.code ?? error.message}`));
      });
    expect(await handshake("TLSv1.3", "TLSv1.3")).toBe("TLSv1.3");
    expect(await handshake("TLSv1.2", "TLSv1.2")).toBe("TLSv1.2");
    expect(await handshake("TLSv1", "TLSv1.1")).toMatch(/^refused: /);
  });

  it("closes with the edge", async () => {
    const edge = await edgeWithMtls();
    const port = edge.mtlsPort as number;
    expect((await get(port, "/healthz")).status).toBe(200);
    await edge.close(100);
    await expect(get(port, "/healthz")).rejects.toThrow(/ECONNREFUSED/);
  });

  it("leaves nothing listening when its port is taken", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve()));
    cleanups.push(() => new Promise((resolve) => blocker.close(resolve)));
    const taken = (blocker.address() as { port: number }).port;
    const httpPort = await freePort();
    await expect(
      startEdge({
        host: "127.0.0.1",
        port: httpPort,
        maxRequestBytes: 1024,
        corsOrigins: [],
        services: [],
        logger: createLogger("silent"),
        readiness: async () => ({ ready: true, checks: {} }),
        mtls: { host: "127.0.0.1", port: taken, cert: serverCertificate.pem, key: serverCertificate.keyPem },
      }),
    ).rejects.toThrow(/EADDRINUSE/);
    await expect(fetch(`http://127.0.0.1:${httpPort}/healthz`)).rejects.toThrow();
  });
});

describe("renewed listener certificates", () => {
  it("serves the renewed certificate to new connections once both files changed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mandate-mtls-renewal-"));
    const files = { certFile: join(dir, "edge.pem"), keyFile: join(dir, "edge-key.pem") };
    const first = leafCertificate(serverCa, { ipAddresses: ["127.0.0.1"], extendedKeyUsage: ["serverAuth"] });
    writeFileSync(files.certFile, first.pem);
    writeFileSync(files.keyFile, first.keyPem);
    const edge = await startEdge({
      host: "127.0.0.1",
      port: 0,
      maxRequestBytes: 1024,
      corsOrigins: [],
      services: [],
      logger: createLogger("silent"),
      readiness: async () => ({ ready: true, checks: {} }),
      mtls: {
        host: "127.0.0.1",
        port: 0,
        cert: first.pem,
        key: first.keyPem,
        renewal: { intervalMs: 50, read: renewedFiles(files) },
      },
    });
    cleanups.push(() => edge.close(100));
    const servedSerial = () =>
      new Promise<string>((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port: edge.mtlsPort as number, ca: serverCa.pem }, () => {
          resolve(socket.getPeerCertificate().serialNumber.toUpperCase());
          socket.destroy();
        });
        socket.once("error", reject);
      });
    expect(await servedSerial()).toBe(first.serial);
    const renewed = leafCertificate(serverCa, { ipAddresses: ["127.0.0.1"], extendedKeyUsage: ["serverAuth"] });
    // Mid-write: the new certificate without its key is not taken.
    writeFileSync(files.certFile, renewed.pem);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await servedSerial()).toBe(first.serial);
    writeFileSync(files.keyFile, renewed.keyPem);
    await expect.poll(servedSerial, { timeout: 5000 }).toBe(renewed.serial);
  });
});

describe("mandate dev's development certificate", () => {
  it("is made under .mandate/tls when no certificate is configured, and serves the mTLS listener", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "mandate-mtls-dev-"));
    const mtlsPort = await freePort();
    const process = await startMandateProcess(
      ["dev", "--http-port", "0", "--grpc-port", "0", "--database", `sqlite:${join(cwd, "mandate.db")}`],
      { MANDATE_HTTP_MTLS_PORT: String(mtlsPort) },
      cwd,
    );
    cleanups.push(() => process.stop());
    const dir = join(cwd, ".mandate", "tls");
    expect(existsSync(join(dir, "edge.pem")) && existsSync(join(dir, "edge-key.pem"))).toBe(true);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        `https://127.0.0.1:${mtlsPort}/healthz`,
        { ca: readFileSync(join(dir, "ca.pem")), agent: false },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(200);
  }, 60_000);
});
