// `protect()`: an MCP endpoint's guard for plain Node `http`, Express/Connect (`(req, res, next)`)
// and, through `fastifyHook()`, Fastify-style frameworks (an `onRequest`/`preHandler` hook on
// request.raw / reply.raw). It answers the RFC 9728 metadata at its well-known URLs, verifies every
// other request with McpResourceServer.verify() and, on success, sets `req.auth` (the MCP SDK's
// AuthInfo, which StreamableHTTPServerTransport hands to tools as `extra.authInfo`) and
// `req.mandate` (the VerifiedCaller); on refusal it answers the status with its WWW-Authenticate
// challenge and an RFC 6750 §3 JSON body. CORS preflights (OPTIONS) carry no credentials
// (Fetch standard §4.8) and pass through to the application unverified.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { VerifiedCaller } from "../types.ts";
import { McpAuthError } from "./challenge.ts";
import { serveMetadata } from "./metadata.ts";
import { authInfo, type McpResourceServer } from "./verifier.ts";

/** A request `protect()` let through. */
export type ProtectedRequest = IncomingMessage & { auth: AuthInfo; mandate: VerifiedCaller };

export interface ProtectOptions {
  /** Answer the metadata's well-known URLs (when they reach this handler). Default true. */
  serveMetadata?: boolean | undefined;
  /** Told of each refusal (logging); the answer is sent regardless. */
  onRefusal?: ((error: McpAuthError, req: IncomingMessage) => void) | undefined;
}

/**
 * Resolves true when the request may go on (authenticated; `next()` was called when given), false
 * when it was answered (metadata, or a refusal). Plain http:
 * `if (await guard(req, res)) transport.handleRequest(req, res)`; Express: `app.use("/mcp", guard)`.
 */
export type Guard = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => Promise<boolean>;

export function protect(server: McpResourceServer, options: ProtectOptions = {}): Guard {
  return async (req, res, next) => {
    if (options.serveMetadata !== false && serveMetadata(server.metadata, req, res)) return false;
    if (req.method === "OPTIONS") {
      next?.();
      return true;
    }
    let caller: VerifiedCaller;
    try {
      caller = await server.verify(req);
    } catch (error) {
      const refusal =
        error instanceof McpAuthError
          ? error
          : new McpAuthError({ unavailable: "the access token cannot be verified now", cause: error });
      options.onRefusal?.(refusal, req);
      sendRefusal(res, refusal);
      return false;
    }
    Object.assign(req, { auth: authInfo(caller, server.resource), mandate: caller });
    next?.();
    return true;
  };
}

/** Answers a refusal: its status, WWW-Authenticate (RFC 6750 §3) and JSON body; 503s say when to retry. */
export function sendRefusal(res: ServerResponse, refusal: McpAuthError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(refusal.body());
  res.writeHead(refusal.status, {
    "content-type": "application/json",
    "cache-control": "no-store",
    // Browser-based MCP clients must be able to read the challenge of a cross-origin answer.
    "access-control-expose-headers": "WWW-Authenticate",
    ...(refusal.wwwAuthenticate ? { "www-authenticate": refusal.wwwAuthenticate } : {}),
    ...(refusal.status === 503 ? { "retry-after": "1" } : {}),
  });
  res.end(body);
}

/** What a Fastify-style hook receives: the framework's request/reply, wrapping Node's. */
export interface HookRequest {
  raw: IncomingMessage;
  auth?: AuthInfo;
  mandate?: VerifiedCaller;
}
export interface HookReply {
  raw: ServerResponse;
  /** Fastify: the reply was sent on `raw`; the framework must not send one. */
  hijack(): unknown;
}

/**
 * A Fastify-style `onRequest` / `preHandler` hook: the guard on request.raw / reply.raw. Let
 * through, `request.auth` and `request.mandate` are set; answered (metadata or refusal), the reply
 * is hijacked so the framework sends nothing more (and runs no handler: the reply is sent).
 */
export function fastifyHook(
  server: McpResourceServer,
  options: ProtectOptions = {},
): (request: HookRequest, reply: HookReply) => Promise<void> {
  const guard = protect(server, options);
  return async (request, reply) => {
    if (!(await guard(request.raw, reply.raw))) {
      reply.hijack();
      return;
    }
    const verified = request.raw as Partial<ProtectedRequest>;
    if (verified.auth && verified.mandate) {
      request.auth = verified.auth;
      request.mandate = verified.mandate;
    }
  };
}
