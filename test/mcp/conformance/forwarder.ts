// A loopback forwarder for the conformance suite's server scenarios: the suite's MCP client knows no
// OAuth, so this adds, to every request it forwards to the protected MCP server, the agent's real
// Mandate access token and a fresh DPoP proof (RFC 9449 §7.1: `ath`, the method and the protected
// URL, a new jti each time, the server's DPoP-Nonce when it asks for one, §9). Everything else —
// body, MCP headers, the SSE stream back — passes as is, so the suite judges what the kit lets
// through. A Host that is not the forwarder's own (the DNS-rebinding scenario's evil.example.com)
// is forwarded unchanged, token and all: the protected server must still refuse it.
import { randomUUID } from "node:crypto";
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, SignJWT } from "jose";
import { accessTokenHash } from "../../../services/shared/oauth/dpop.ts";

/** A DPoP proof (RFC 9449 §4.2) by `keys` for one request made with `accessToken`. */
export async function dpopProof(keys: CryptoKeyPair, accessToken: string, method: string, url: string, nonce?: string) {
  const jwk = await exportJWK(keys.publicKey);
  return new SignJWT({ htm: method, htu: url, jti: randomUUID(), ath: accessTokenHash(accessToken), nonce })
    .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } })
    .setIssuedAt()
    .sign(keys.privateKey);
}

/** Headers not forwarded: the credentials (the forwarder's own replace them) and hop-by-hop ones. */
const HOP_BY_HOP = new Set([
  "authorization",
  "dpop",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
]);

export interface Forwarder {
  /** The forwarder's URL of the MCP endpoint (what the suite is given). */
  url: string;
  /** Requests forwarded, and how many the protected server refused with 401/403. */
  stats: { forwarded: number; refused: number };
  close(): Promise<void>;
}

export interface ForwarderOptions {
  /** The protected MCP endpoint (its canonical URI: the DPoP proofs name it). */
  upstream: string;
  /** The agent's current access token and the DPoP key it is bound to (the kit's MandateSession has both). */
  credentials: () => Promise<{ token: string; keys: CryptoKeyPair }>;
}

export async function startForwarder(options: ForwarderOptions): Promise<Forwarder> {
  const upstream = new URL(options.upstream);
  const stats = { forwarded: 0, refused: 0 };
  let nonce: string | undefined;
  let own = "";

  const send = async (req: IncomingMessage, body: Buffer, res: ServerResponse, retried: boolean) => {
    const target = new URL(req.url ?? "/", upstream);
    const { token, keys } = await options.credentials();
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    // The forwarder's own name becomes the server's; any other Host is the caller's to answer for.
    if (req.headers.host === own) headers.host = upstream.host;
    headers.authorization = `DPoP ${token}`;
    headers.dpop = await dpopProof(keys, token, req.method ?? "GET", `${target.origin}${target.pathname}`, nonce);
    headers["content-length"] = String(body.length);
    const forwarded = httpRequest(target, { method: req.method, headers }, (answer) => {
      const fresh = answer.headers["dpop-nonce"];
      if (typeof fresh === "string") nonce = fresh;
      const challenge = String(answer.headers["www-authenticate"] ?? "");
      if (answer.statusCode === 401 && challenge.includes("use_dpop_nonce") && !retried) {
        answer.resume();
        void send(req, body, res, true).catch((error) => fail(res, error));
        return;
      }
      stats.forwarded++;
      if (answer.statusCode === 401 || answer.statusCode === 403) stats.refused++;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      res.on("close", () => answer.destroy());
    });
    forwarded.on("error", (error) => fail(res, error));
    forwarded.end(body);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => void send(req, Buffer.concat(chunks), res, false).catch((error) => fail(res, error)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  own = `127.0.0.1:${port}`;
  return {
    url: `http://${own}${upstream.pathname}`,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function fail(res: ServerResponse, error: unknown): void {
  if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
  res.end(`forwarder: ${error instanceof Error ? error.message : String(error)}`);
}
