// OAuth 2.0 Protected Resource Metadata (RFC 9728) for an MCP endpoint. The MCP authorization spec
// (2025-11-25, "Authorization Server Discovery") names the MCP server by its canonical URI — the
// `resource` of the metadata, the audience of its tokens — and has clients look for the document at
// the path-inserted well-known URL first (RFC 9728 §3.1), then at the root one: both are served.
// MCP clients running in browsers fetch it cross-origin, so it answers CORS (a public document).
import type { IncomingMessage, ServerResponse } from "node:http";
import { DPOP_ALGORITHMS } from "../../shared/oauth/dpop.ts";

const WELL_KNOWN = "/.well-known/oauth-protected-resource";

/** RFC 9728 §2 members this kit publishes. */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported?: string[];
  bearer_methods_supported: string[];
  resource_name?: string;
  resource_documentation?: string;
  dpop_signing_alg_values_supported: string[];
  dpop_bound_access_tokens_required?: boolean;
  tls_client_certificate_bound_access_tokens?: boolean;
}

export interface ProtectedResourceMetadataOptions {
  /** The MCP server's canonical URI (see canonicalResource). */
  resource: string;
  /** Issuers whose tokens this server accepts (RFC 9728 §2 `authorization_servers`). */
  authorizationServers: string[];
  scopesSupported?: readonly string[] | undefined;
  resourceName?: string | undefined;
  resourceDocumentation?: string | undefined;
  /** RFC 9449 §5.2: only DPoP-bound tokens are accepted. */
  dpopBoundAccessTokensRequired?: boolean | undefined;
  /** RFC 8705 §3.4: this server accepts certificate-bound tokens (checks them on the TLS socket). */
  tlsClientCertificateBoundAccessTokens?: boolean | undefined;
}

/**
 * The canonical URI of an MCP server (MCP authorization spec 2025-11-25, "Canonical Server URI";
 * RFC 8707 §2): absolute, https (http only on loopback, for development), no fragment, scheme and
 * host in lower case. A path is kept as written (no trailing slash is added to a bare origin).
 */
export function canonicalResource(uri: string): string {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new TypeError(`the MCP resource "${uri}" is not an absolute URI`);
  }
  if (url.hash || uri.includes("#")) throw new TypeError("the MCP resource URI must not have a fragment (RFC 8707 §2)");
  const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new TypeError("the MCP resource URI must use https (http only on loopback)");
  }
  const bareOrigin = url.pathname === "/" && !/^[a-z][a-z0-9+.-]*:\/\/[^/?]*\/([?]|$)/i.test(uri);
  return `${url.protocol}//${url.host}${bareOrigin ? "" : url.pathname}${url.search}`;
}

/**
 * RFC 9728 §3.1: the well-known URL of `resource`'s metadata — `/.well-known/oauth-protected-resource`
 * inserted between the host and the path (and query) — and the root form clients fall back to.
 */
export function metadataUrls(resource: string): { pathInserted: string; root: string } {
  const url = new URL(resource);
  const path = url.pathname === "/" ? "" : url.pathname;
  return {
    pathInserted: `${url.origin}${WELL_KNOWN}${path}${url.search}`,
    root: `${url.origin}${WELL_KNOWN}`,
  };
}

/** The RFC 9728 §2 document for an MCP endpoint. */
export function protectedResourceMetadata(options: ProtectedResourceMetadataOptions): ProtectedResourceMetadata {
  return {
    resource: canonicalResource(options.resource),
    authorization_servers: [...options.authorizationServers],
    ...(options.scopesSupported?.length ? { scopes_supported: [...options.scopesSupported] } : {}),
    // RFC 6750 §2.1 only: tokens in a form body or the query string are refused (RFC 9700 §2.5).
    bearer_methods_supported: ["header"],
    ...(options.resourceName ? { resource_name: options.resourceName } : {}),
    ...(options.resourceDocumentation ? { resource_documentation: options.resourceDocumentation } : {}),
    dpop_signing_alg_values_supported: [...DPOP_ALGORITHMS],
    ...(options.dpopBoundAccessTokensRequired ? { dpop_bound_access_tokens_required: true } : {}),
    ...(options.tlsClientCertificateBoundAccessTokens ? { tls_client_certificate_bound_access_tokens: true } : {}),
  };
}

/** The request's path, as the client sent it (Express keeps it in `originalUrl` when mounted). */
export function requestPath(req: IncomingMessage): string {
  const raw = (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? "/";
  const query = raw.indexOf("?");
  return query < 0 ? raw : raw.slice(0, query);
}

/**
 * Answers the metadata's well-known paths and returns true; returns false for any other path.
 * GET/HEAD: the JSON document; OPTIONS: the CORS preflight; anything else: 405 (RFC 9110 §15.5.6).
 */
export function serveMetadata(document: ProtectedResourceMetadata, req: IncomingMessage, res: ServerResponse): boolean {
  const urls = metadataUrls(document.resource);
  const path = requestPath(req);
  const paths = new Set([new URL(urls.pathInserted).pathname, new URL(urls.root).pathname]);
  if (!paths.has(path)) return false;
  // A public document: any origin may read it (browser-based MCP clients discover with it).
  res.setHeader("access-control-allow-origin", "*");
  if (req.method === "OPTIONS") {
    res.writeHead(204, {
      "access-control-allow-methods": "GET, HEAD, OPTIONS",
      "access-control-allow-headers": "*",
      "access-control-max-age": "86400",
    });
    res.end();
    return true;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD, OPTIONS", "content-type": "application/json" });
    res.end(JSON.stringify({ error: "method_not_allowed" }));
    return true;
  }
  const body = JSON.stringify(document);
  res.writeHead(200, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "public, max-age=300",
  });
  res.end(req.method === "HEAD" ? undefined : body);
  return true;
}

/** Express/Connect-style `(req, res, next)` and plain `http` handler of the metadata's well-known paths. */
export type MetadataHandler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => boolean;

/**
 * The handler: answers the well-known paths (returning true); any other request goes to `next`
 * (Express) or is left to the caller (plain http: `if (handler(req, res)) return;`), returning false.
 */
export function metadataHandler(document: ProtectedResourceMetadata): MetadataHandler {
  return (req, res, next) => {
    if (serveMetadata(document, req, res)) return true;
    next?.();
    return false;
  };
}
