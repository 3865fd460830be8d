// The HTTP edge (:4460): liveness and readiness, and the five services (plus health and tenants)
// over gRPC-Web and Connect, with the same handlers as native gRPC. OAuth endpoints join here.
// With http.mtls.port, a second listener (HTTPS) serves the same handler and asks every client for
// a certificate (RFC 8705 mutual TLS): the OAuth server and the RPCs verify it, TLS does not.
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Server as TlsServer } from "node:tls";
import { Code, ConnectError, cors as connectCors, createContextValues } from "@connectrpc/connect";
import { context as otelContext, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { Logger } from "../shared/logger.ts";
import type { ClientAddresses } from "../shared/net/client-ip.ts";
import { accessRuleOf, PEER } from "../shared/rpc/access.ts";
import type { BoundService } from "../shared/rpc/grpc-server.ts";
import type { HttpHandler } from "../shared/rpc/service.ts";
import { histogram, tracer } from "../shared/telemetry.ts";
import type { PresentedCertificate } from "../shared/x509/types.ts";
import { createRpcAdapter } from "./rpc-adapter.ts";

export interface EdgeOptions {
  host: string;
  port: number;
  maxRequestBytes: number;
  corsOrigins: string[];
  services: BoundService[];
  logger: Logger;
  /** Whether the process can serve traffic: all services SERVING and dependencies reachable. */
  readiness: () => Promise<{ ready: boolean; checks: Record<string, string> }>;
  /** A tenant's token-signing JWKS and how long it may be cached (from the Signer). */
  jwks?: (tenant: string) => Promise<{ jwks: { keys: unknown[] }; maxAgeSeconds: number }>;
  /** HTTP endpoints of services hosted here (the OAuth server), tried in order before the RPC router. */
  http?: HttpHandler[];
  /** The caller's address (the socket's, or X-Forwarded-For from a trusted proxy), for per-IP limits. */
  clientAddresses?: ClientAddresses;
  /** How long a client may take to send its request headers (default 20 s), and its whole request (60 s). */
  headersTimeoutMs?: number | undefined;
  requestTimeoutMs?: number | undefined;
  /** RFC 8705: the mutual-TLS listener, off when absent. */
  mtls?: MtlsListenerOptions | undefined;
  /** The client certificate a request presented (TLS peer, or a configured proxy's header), for Peer.clientCertificate. */
  clientCertificate?: ((req: IncomingMessage) => PresentedCertificate | undefined) | undefined;
}

export interface MtlsListenerOptions {
  host: string;
  port: number;
  /** The server's certificate chain and key, PEM. */
  cert: string | Buffer;
  key: string | Buffer;
  /**
   * Renewed certificates (cert-manager, ACME): `read` answers the new chain and key once the files
   * changed (undefined otherwise); checked every `intervalMs`, new connections get the new one.
   */
  renewal?: { intervalMs: number; read: () => { cert: Buffer; key: Buffer } | undefined } | undefined;
}

const JWKS_PATH = /^\/t\/([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\/\.well-known\/jwks\.json$/;

export interface Edge {
  server: Server;
  port: number;
  /** The mTLS listener's port, when it runs. */
  mtlsPort?: number | undefined;
  close(graceMs: number): Promise<void>;
}

const httpDuration = histogram("http.server.request.duration", {
  description: "Duration of HTTP requests at the edge",
  unit: "ms",
});

export async function startEdge(options: EdgeOptions): Promise<Edge> {
  const shutdown = new AbortController();
  const rpc = createRpcAdapter({
    routes(router) {
      for (const { service, impl } of options.services) {
        for (const method of service.methods) {
          // INTERNAL methods are never routed here: not found, whatever the caller holds.
          if (accessRuleOf(method)?.exposure === "internal") continue;
          router.rpc(method, (impl as Record<string, never>)[method.localName] as never);
        }
      }
    },
    readMaxBytes: options.maxRequestBytes,
    shutdownSignal: shutdown.signal,
    contextValues: (req) =>
      createContextValues().set(PEER, {
        transport: "edge",
        address: options.clientAddresses ? options.clientAddresses.of(req) : req.socket.remoteAddress,
        service: undefined,
        forwarded: false,
        clientCertificate: presentedBy(req, options),
      }),
    fallback: (_req, res) => sendJson(res, 404, { error: "not_found", message: "no such endpoint" }),
    onFailure: (error, method, aborted) => {
      const rpc = `${method.parent.typeName}/${method.name}`;
      // A client that hangs up mid-call is the client's doing, not a failure of ours.
      if (aborted) options.logger.debug({ rpc, reason: errorMessage(error) }, "rpc aborted by the client");
      else options.logger.error({ err: error, rpc }, "rpc response failed");
    },
  });

  /** The edge's own endpoints: liveness, readiness and each tenant's JWKS. False: the request is for none. */
  const serveOwn = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> => {
    if (req.method === "GET" && (path === "/healthz" || path === "/readyz")) {
      await serveHealth(res, path, options.readiness);
      return true;
    }
    const jwksTenant =
      options.jwks && (req.method === "GET" || req.method === "HEAD") ? JWKS_PATH.exec(path)?.[1] : undefined;
    if (!jwksTenant || !options.jwks) return false;
    await serveJwks(res, jwksTenant, options.jwks);
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const target = acceptedTarget(req, res);
    if (target === undefined) return;
    req.url = target;
    const path = target.split("?", 1)[0] as string;
    if (applyCors(req, res, options.corsOrigins)) return;
    if (await serveOwn(req, res, path)) return;
    for (const http of options.http ?? []) if (await http(req, res)) return;
    return rpc(req, res);
  };

  const headersTimeout = options.headersTimeoutMs ?? 20_000;
  const requestTimeout = Math.max(options.requestTimeoutMs ?? 60_000, headersTimeout);
  const serverOptions: ServerOptions = {
    // A client must send its headers within headersTimeout and its whole request within
    // requestTimeout (slowloris). Node checks both on a timer, every connectionsCheckingInterval
    // (30 s by default, so a 20 s limit cut at up to 50 s): check often enough to cut on time.
    headersTimeout,
    requestTimeout,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 10))),
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const route = routeOf(req.url ?? "/");
    const span = tracer.startSpan(
      `${req.method} ${route}`,
      { kind: SpanKind.SERVER, attributes: { "http.request.method": req.method ?? "", "url.path": route } },
      parent,
    );
    res.once("close", () => {
      span.setAttribute("http.response.status_code", res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      httpDuration.record(performance.now() - started, {
        "http.request.method": req.method ?? "",
        "http.route": route,
        "http.response.status_code": res.statusCode,
      });
    });
    otelContext.with(trace.setSpan(parent, span), () =>
      handle(req, res).catch((error: unknown) => {
        if (req.destroyed && !req.complete) {
          options.logger.debug(
            { path: routeOf(req.url ?? "/"), reason: errorMessage(error) },
            "request aborted by the client",
          );
        } else {
          options.logger.error({ err: error, path: req.url }, "edge request failed");
        }
        if (!res.headersSent && !res.destroyed)
          sendJson(res, 500, { error: "server_error", message: "internal error" });
        else res.destroy();
      }),
    );
  };
  const server = createServer(serverOptions, onRequest);
  await listenOn(server, options.port, options.host);
  let mtls: Server | undefined;
  try {
    mtls = options.mtls ? await startMtlsListener(options.mtls, serverOptions, onRequest) : undefined;
  } catch (error) {
    server.close();
    throw error;
  }
  const servers = mtls ? [server, mtls] : [server];
  return {
    server,
    port: (server.address() as AddressInfo).port,
    mtlsPort: mtls ? (mtls.address() as AddressInfo).port : undefined,
    async close(graceMs) {
      const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      for (const s of servers) s.closeIdleConnections();
      const timer = setTimeout(() => {
        shutdown.abort();
        for (const s of servers) s.closeAllConnections();
      }, graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

/**
 * RFC 8705 §2: the mutual-TLS listener (TLS 1.2 or later). It asks for a client certificate but
 * accepts any, or none: self_signed_tls_client_auth certificates are signed by no CA, agents'
 * chain to their tenant's CA, and which applies is known only once the request names its client.
 * Whoever uses the certificate verifies it (the OAuth server, the RPC layer).
 */
async function startMtlsListener(
  mtls: MtlsListenerOptions,
  serverOptions: ServerOptions,
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Server> {
  const server = createHttpsServer(
    {
      ...serverOptions,
      cert: mtls.cert,
      key: mtls.key,
      minVersion: "TLSv1.2",
      requestCert: true,
      rejectUnauthorized: false,
    },
    onRequest,
  );
  await listenOn(server, mtls.port, mtls.host);
  if (mtls.renewal) followRenewals(server as unknown as TlsServer, mtls.renewal);
  return server;
}

/** Swaps in renewed certificates while the listener lives; a half-written renewal waits for the next look. */
function followRenewals(server: TlsServer, renewal: NonNullable<MtlsListenerOptions["renewal"]>): void {
  const timer = setInterval(() => {
    try {
      const renewed = renewal.read();
      if (renewed) server.setSecureContext({ cert: renewed.cert, key: renewed.key, minVersion: "TLSv1.2" });
    } catch {
      // Unreadable or mismatched files (mid-write): keep serving the current certificate.
    }
  }, renewal.intervalMs).unref();
  server.once("close", () => clearInterval(timer));
}

function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
}

/** The request target in origin form; undefined when a bad target or Host has been answered 400. */
function acceptedTarget(req: IncomingMessage, res: ServerResponse): string | undefined {
  // RFC 9112 §3.2.2: a server must accept the absolute form of the request target; everything
  // behind the edge routes on the origin form. A target that is not a URI is a bad request (§3.2).
  const target = originForm(req.url ?? "/");
  if (target === undefined) {
    sendJson(res, 400, { error: "invalid_request", message: "the request target is not a valid URI" });
    return undefined;
  }
  // RFC 9112 §3.2: a Host header field with an invalid value is answered 400.
  if (!validHost(req.headers.host)) {
    sendJson(res, 400, { error: "invalid_request", message: "the Host header is not a valid host[:port]" });
    return undefined;
  }
  return target;
}

/** The origin form (path and query) of a request target; undefined when an absolute form is not a URL. */
function originForm(target: string): string | undefined {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(target)) return target; // origin form (or "*", which nothing serves)
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return undefined;
  }
}

/** The certificate a request presented; a configured proxy's header that does not parse counts as none. */
function presentedBy(req: IncomingMessage, options: EdgeOptions): PresentedCertificate | undefined {
  try {
    return options.clientCertificate?.(req);
  } catch (error) {
    options.logger.info({ reason: errorMessage(error) }, "client certificate header refused");
    return undefined;
  }
}

/** Whether a Host header value is an authority: a host and maybe a port, nothing else (RFC 9110 §7.2). */
function validHost(host: string | undefined): boolean {
  if (!host) return false;
  try {
    const url = new URL(`http://${host}`);
    return url.pathname === "/" && !url.search && !url.hash && !url.username && !url.password && !host.includes("/");
  } catch {
    return false;
  }
}

/** A low-cardinality route for telemetry: RPC paths as they are, other paths by their first segment. */
function routeOf(rawUrl: string): string {
  const path = rawUrl.split("?")[0] ?? "/";
  if (/^\/[a-z0-9_.]+\.[A-Z][A-Za-z0-9]*\/[A-Z][A-Za-z0-9]*$/.test(path)) return path;
  if (path === "/healthz" || path === "/readyz") return path;
  if (JWKS_PATH.test(path)) return "/t/{tenant}/.well-known/jwks.json";
  const tenantPath =
    /^\/t\/[a-z0-9-]+(\/(?:oauth2\/[a-z]+|\.well-known\/[a-z-]+|login|consent|access\/v1\/(?:evaluations?|search\/(?:subject|resource|action))))$/.exec(
      path,
    );
  if (tenantPath) return `/t/{tenant}${tenantPath[1]}`;
  if (path.startsWith("/.well-known/")) return path.replace(/\/t\/[a-z0-9-]+$/, "/t/{tenant}");
  return "/*";
}

/** Liveness (/healthz: the process answers) or readiness (/readyz: it can serve traffic). */
async function serveHealth(res: ServerResponse, path: string, readiness: EdgeOptions["readiness"]): Promise<void> {
  if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
  const { ready, checks } = await readiness();
  sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : "not_ready", checks });
}

/**
 * The JWKS (RFC 7517 §5) with a max-age inside the pre-publication window, so a cache always learns
 * a key before it signs; errors as JSON with the status a client can act on.
 */
async function serveJwks(res: ServerResponse, tenant: string, jwks: NonNullable<EdgeOptions["jwks"]>): Promise<void> {
  try {
    const result = await jwks(tenant);
    const text = JSON.stringify(result.jwks);
    res.writeHead(200, {
      "content-type": "application/jwk-set+json",
      "content-length": Buffer.byteLength(text),
      "cache-control": `public, max-age=${result.maxAgeSeconds}`,
    });
    res.end(text);
  } catch (error) {
    const code = error instanceof ConnectError ? error.code : Code.Internal;
    if (code === Code.NotFound) return sendJson(res, 404, { error: "not_found", message: `no tenant "${tenant}"` });
    if (code === Code.Unavailable || code === Code.FailedPrecondition || code === Code.DeadlineExceeded) {
      res.setHeader("retry-after", "5");
      return sendJson(res, 503, {
        error: "temporarily_unavailable",
        message: "signing keys are unavailable; retry shortly",
      });
    }
    throw error;
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

/** CORS for browser gRPC-Web/Connect clients on the configured origins. Returns true when it answered. */
function applyCors(req: IncomingMessage, res: ServerResponse, origins: string[]): boolean {
  const origin = req.headers.origin;
  if (!origin || !(origins.includes(origin) || origins.includes("*"))) return false;
  res.setHeader("access-control-allow-origin", origin);
  res.setHeader("vary", "origin");
  // Browsers must see the challenge and the retry hint, and may send credentials (RFC 6750, RFC 9449).
  res.setHeader(
    "access-control-expose-headers",
    [...connectCors.exposedHeaders, "www-authenticate", "retry-after", "dpop-nonce"].join(", "),
  );
  if (req.method !== "OPTIONS") return false;
  res.writeHead(204, {
    "access-control-allow-methods": connectCors.allowedMethods.join(", "),
    "access-control-allow-headers": [...connectCors.allowedHeaders, "traceparent", "authorization", "dpop"].join(", "),
    "access-control-max-age": "7200",
  });
  res.end();
  return true;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
