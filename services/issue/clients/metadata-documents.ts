// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, required by the MCP
// authorization spec): a client whose client_id is an https URL publishes its metadata there. We
// fetch it SSRF-safely, hold it to the same rules as dynamically registered clients plus the
// document's own (client_id equals the URL; no shared secrets), and cache it as its HTTP headers
// allow, within bounds. Every way the fetch itself can fail reads the same ("could not be
// retrieved"), so the error says nothing about which hosts or ports answer.

import { type SafeResponse, safeFetch, UnsafeFetchError } from "../../shared/net/safe-fetch.ts";
import { decodeUtf8, IllFormedText, requireJsonText } from "../../shared/text.ts";
import {
  type ClientMetadata,
  type ClientMetadataInput,
  InvalidClientMetadata,
  metadataInputFrom,
  normalizeClientMetadata,
  type RegisteredClient,
} from "./metadata.ts";

const MAX_BYTES = 5 * 1024; // the draft suggests documents stay small; 5 KB is its guidance
const MIN_TTL_MS = 60_000;
const MAX_TTL_MS = 24 * 3_600_000;
const DEFAULT_TTL_MS = 5 * 60_000;
const FAILURE_TTL_MS = 30_000;

/** The one description of a document that could not be fetched, whatever the reason. */
export const DOCUMENT_UNAVAILABLE = "the client metadata document could not be retrieved";

export class MetadataDocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MetadataDocumentError";
  }
}

/** Whether a client_id names a metadata document: an https URL with a path (draft §3). */
export function isMetadataDocumentId(clientId: string): boolean {
  if (!clientId.startsWith("https://")) return false;
  try {
    const url = new URL(clientId);
    return url.pathname.length > 1 && !url.hash && !url.username && !url.password && url.href === clientId;
  } catch {
    return false;
  }
}

export class MetadataDocuments {
  readonly #cache = new Map<string, { client?: RegisteredClient; error?: string; until: number }>();
  readonly #pending = new Map<string, Promise<RegisteredClient>>();
  readonly #allowPrivate: boolean;
  readonly #now: () => number;

  constructor(options: { allowPrivate: boolean; now?: () => number }) {
    this.#allowPrivate = options.allowPrivate;
    this.#now = options.now ?? Date.now;
  }

  /** The client the document describes, or MetadataDocumentError saying why it cannot be used. */
  async resolve(tenant: string, clientId: string): Promise<RegisteredClient> {
    const now = this.#now();
    const cached = this.#cache.get(clientId);
    if (cached && cached.until > now) {
      if (cached.client) return { ...cached.client, tenant };
      throw new MetadataDocumentError(cached.error as string);
    }
    // Concurrent requests for one uncached document share one fetch.
    let pending = this.#pending.get(clientId);
    if (!pending) {
      pending = this.#load(clientId, now).finally(() => this.#pending.delete(clientId));
      this.#pending.set(clientId, pending);
    }
    return { ...(await pending), tenant };
  }

  async #load(clientId: string, now: number): Promise<RegisteredClient> {
    try {
      const { client, ttlMs } = await this.#fetch(clientId, now);
      this.#remember(clientId, { client, until: now + ttlMs });
      return client;
    } catch (error) {
      const message =
        error instanceof MetadataDocumentError
          ? `the client metadata document is not usable: ${error.message}`
          : DOCUMENT_UNAVAILABLE;
      this.#remember(clientId, { error: message, until: now + FAILURE_TTL_MS });
      throw new MetadataDocumentError(message);
    }
  }

  #remember(key: string, entry: { client?: RegisteredClient; error?: string; until: number }): void {
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(key, entry);
  }

  async #fetch(clientId: string, now: number): Promise<{ client: RegisteredClient; ttlMs: number }> {
    // Any failure of the exchange itself (refused address, DNS, connection, TLS, timeout, size) and
    // any status but 200 end up as DOCUMENT_UNAVAILABLE in resolve().
    const response = await safeFetch(clientId, {
      maxBytes: MAX_BYTES,
      timeoutMs: 5000,
      allowPrivate: this.#allowPrivate,
    });
    if (response.status !== 200) throw new UnsafeFetchError(`HTTP ${response.status}`);
    const document = parseDocument(response);
    const method = requireOwnDocument(document, clientId);
    const metadata = this.#metadataOf(document, method);
    if (metadata.grant_types.some((g) => g !== "authorization_code" && g !== "refresh_token")) {
      throw new MetadataDocumentError("only the authorization_code and refresh_token grants are allowed");
    }
    return {
      client: { tenant: "", clientId, metadata, hasSecret: false, createdAt: now, origin: "document" },
      ttlMs: cacheTtl(response.headers["cache-control"]),
    };
  }

  /** The document's metadata, held to the rules of registrations nobody vouches for. */
  #metadataOf(document: Record<string, unknown>, method: string): ClientMetadata {
    try {
      // Administrator settings (resources, rate_limit) are not the document's to set, nor is being an
      // agent with an owner (someone must vouch for the owner): not read.
      const { resources: _r, rate_limit: _q, kind: _k, owner: _o, ...input } = metadataInputFrom(document);
      return normalizeClientMetadata(
        { ...(input as ClientMetadataInput), token_endpoint_auth_method: method },
        { untrusted: true, allowPrivateHosts: this.#allowPrivate },
      );
    } catch (error) {
      if (error instanceof InvalidClientMetadata) throw new MetadataDocumentError(error.message);
      throw error;
    }
  }
}

/** The document as a JSON object, served as application/json. */
function parseDocument(response: SafeResponse): Record<string, unknown> {
  const type = String(response.headers["content-type"] ?? "")
    .split(";")[0]
    ?.trim();
  if (type !== "application/json") throw new MetadataDocumentError("it is not served as application/json");
  let document: Record<string, unknown>;
  try {
    // RFC 8259 §8.1: JSON is UTF-8; its strings must be well-formed, as in a registration.
    document = JSON.parse(decodeUtf8(response.bytes, "(document)")) as Record<string, unknown>;
    requireJsonText(document);
  } catch (error) {
    if (error instanceof IllFormedText) throw new MetadataDocumentError(error.message);
    throw new MetadataDocumentError("it is not valid JSON");
  }
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new MetadataDocumentError("it is not a JSON object");
  }
  return document;
}

/**
 * The document's own rules: it names itself, and its client holds no shared secret. Returns the
 * client's authentication method ("none" unless it says "private_key_jwt").
 */
function requireOwnDocument(document: Record<string, unknown>, clientId: string): string {
  // The document must name itself, so one URL cannot speak for another client.
  if (document.client_id !== clientId) throw new MetadataDocumentError("its client_id differs from the document URL");
  if ("client_secret" in document || "client_secret_expires_at" in document) {
    throw new MetadataDocumentError("it must not contain a client secret");
  }
  const method = (document.token_endpoint_auth_method as string | undefined) ?? "none";
  if (method !== "none" && method !== "private_key_jwt") {
    throw new MetadataDocumentError(
      'token_endpoint_auth_method must be "none" or "private_key_jwt" (no shared secrets)',
    );
  }
  return method;
}

/** Cache lifetime from Cache-Control max-age, clamped; no-store still gets the minimum (we must not refetch per request). */
function cacheTtl(header: string | string[] | undefined): number {
  const value = Array.isArray(header) ? header.join(",") : (header ?? "");
  const maxAge = /max-age=(\d+)/i.exec(value)?.[1];
  const ttl = maxAge === undefined ? DEFAULT_TTL_MS : Number(maxAge) * 1000;
  return Math.min(MAX_TTL_MS, Math.max(MIN_TTL_MS, ttl));
}
