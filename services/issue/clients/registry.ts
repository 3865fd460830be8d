// A tenant's OAuth clients in the store. Registration and deletion record their audit event in the
// same transaction; the secret is returned once and kept only as a hash.
import { randomBytes, timingSafeEqual } from "node:crypto";
import { type Actor, clientCreated, clientDeleted, clientUpdated } from "../../shared/audit-events.ts";
import type { Clock } from "../../shared/clock.ts";
import { handleHash, opaqueHandle } from "../../shared/oauth/handles.ts";
import type { OAuthClientsTable } from "../../shared/store/schema.ts";
import type { Store } from "../../shared/store/store.ts";
import { revokeAgentCertificates } from "../agents/certificates.ts";
import { ConsentStore } from "../oauth/consent-store.ts";
import {
  type ClientIdentity,
  type ClientKind,
  type ClientMetadata,
  type ClientMetadataInput,
  InvalidClientMetadata,
  normalizeClientMetadata,
  type RegisteredClient,
} from "./metadata.ts";
import { isMetadataDocumentId, type MetadataDocuments } from "./metadata-documents.ts";
import { generateSecret, hashSecret } from "./secrets.ts";

/** How long a client read for authentication is reused; a deletion elsewhere takes effect within it. */
const AUTH_CACHE_MS = 5000;
const AUTH_CACHE_SIZE = 10_000;

/** Which clients ListClients returns: of one kind, of one owner (each absent: any). */
export interface ClientFilter {
  kind?: ClientKind | undefined;
  owner?: string | undefined;
}

export class ClientRegistry {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #authCache = new Map<string, { client: RegisteredClient; secretHash: string | null; until: number }>();

  readonly #documents: MetadataDocuments | undefined;
  readonly #allowPrivateHosts: boolean;

  constructor(
    store: Store,
    clock: Clock,
    documents?: MetadataDocuments,
    options: { allowPrivateHosts?: boolean } = {},
  ) {
    this.#store = store;
    this.#clock = clock;
    this.#documents = documents;
    this.#allowPrivateHosts = options.allowPrivateHosts ?? false;
  }

  async create(
    tenant: string,
    input: ClientMetadataInput,
    options: { dynamic?: boolean } & Partial<Actor> = {},
  ): Promise<{ client: RegisteredClient; secret?: string; registrationToken?: string }> {
    const metadata = normalizeClientMetadata(input, {
      untrusted: options.dynamic === true,
      allowPrivateHosts: this.#allowPrivateHosts,
    });
    const registrationToken = options.dynamic ? opaqueHandle("mrat") : undefined;
    const needsSecret = metadata.token_endpoint_auth_method.startsWith("client_secret_");
    const secret = needsSecret ? generateSecret() : undefined;
    const row: OAuthClientsTable = {
      tenant_id: tenant,
      client_id: newClientId(),
      ...toColumns(metadata),
      secret_hash: secret ? hashSecret(secret) : null,
      created_at: this.#clock.now(),
      registration_token_hash: registrationToken ? handleHash(registrationToken) : null,
    };
    const scoped = this.#store.forTenant(tenant);
    await scoped.transaction(async (tx) => {
      await tx.insertInto("oauth_clients").values(row).execute();
      const created = {
        clientId: row.client_id,
        clientName: metadata.client_name,
        tokenEndpointAuthMethod: metadata.token_endpoint_auth_method,
        grantTypes: metadata.grant_types,
        redirectUris: metadata.redirect_uris,
        dynamic: options.dynamic === true,
      };
      // Who registered it (an administrator's token, a bootstrap): admin actions name their caller.
      await scoped.recordEvent(tx, clientCreated(created, options), row.created_at);
    });
    return {
      client: toClient(row),
      ...(secret ? { secret } : {}),
      ...(registrationToken ? { registrationToken } : {}),
    };
  }

  /** RFC 7592 §2.2: replaces the metadata (the secret and client id stay). Undefined when there is no such client. */
  async update(tenant: string, clientId: string, input: ClientMetadataInput): Promise<RegisteredClient | undefined> {
    const existing = await this.get(tenant, clientId);
    if (!existing) return undefined;
    // RFC 7592 updates come from the client itself, never from an administrator.
    const metadata = normalizeClientMetadata(input, { untrusted: true, allowPrivateHosts: this.#allowPrivateHosts });
    requireSameIdentity(existing.metadata, metadata);
    this.#authCache.delete(`${tenant}\n${clientId}`);
    const scoped = this.#store.forTenant(tenant);
    await scoped.transaction(async (tx) => {
      await tx
        .updateTable("oauth_clients")
        .set(toColumns(metadata))
        .where("tenant_id", "=", tenant)
        .where("client_id", "=", clientId)
        .execute();
      // Users approved the client with its old redirect URIs: a new destination needs their approval
      // again before the browser is sent there without asking (RFC 9700 §4.11.2).
      const before = new Set(existing.metadata.redirect_uris);
      if (metadata.redirect_uris.some((uri) => !before.has(uri))) {
        await scoped.use(ConsentStore, tx).forgetClient(clientId);
      }
      const updated = { clientId, grantTypes: metadata.grant_types, redirectUris: metadata.redirect_uris };
      await scoped.recordEvent(tx, clientUpdated(updated), this.#clock.now());
    });
    return { ...existing, metadata };
  }

  /** Whether `token` is the client's registration access token (constant-time on the hash). */
  async checkRegistrationToken(tenant: string, clientId: string, token: string): Promise<boolean> {
    const stored = (await this.#row(tenant, clientId))?.registration_token_hash;
    if (!stored) return false;
    const a = Buffer.from(stored);
    const b = Buffer.from(handleHash(token));
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /**
   * The client for an OAuth endpoint: a registered one, or (for https client ids) the one its
   * client ID metadata document describes. Throws MetadataDocumentError when a document is unusable.
   */
  async resolve(tenant: string, clientId: string): Promise<RegisteredClient | undefined> {
    if (this.#documents && isMetadataDocumentId(clientId)) return this.#documents.resolve(tenant, clientId);
    return this.get(tenant, clientId);
  }

  async get(tenant: string, clientId: string): Promise<RegisteredClient | undefined> {
    const row = await this.#row(tenant, clientId);
    return row && toClient(row);
  }

  #row(tenant: string, clientId: string): Promise<OAuthClientsTable | undefined> {
    return this.#store
      .forTenant(tenant)
      .db.selectFrom("oauth_clients")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("client_id", "=", clientId)
      .executeTakeFirst();
  }

  /**
   * The client as the token endpoint sees it: cached for a few seconds, because client
   * authentication runs on every token request and clients change rarely. Deleting a client here
   * evicts it at once; on other replicas within AUTH_CACHE_MS.
   */
  async forAuthentication(
    tenant: string,
    clientId: string,
  ): Promise<{ client: RegisteredClient; secretHash: string | null } | undefined> {
    if (this.#documents && isMetadataDocumentId(clientId)) {
      return { client: await this.#documents.resolve(tenant, clientId), secretHash: null };
    }
    const key = `${tenant}\n${clientId}`;
    const now = Date.now();
    const cached = this.#authCache.get(key);
    if (cached && cached.until > now) return cached;
    const row = await this.#row(tenant, clientId);
    if (!row) {
      this.#authCache.delete(key);
      return undefined;
    }
    const entry = { client: toClient(row), secretHash: row.secret_hash, until: now + AUTH_CACHE_MS };
    if (this.#authCache.size >= AUTH_CACHE_SIZE) this.#authCache.clear();
    this.#authCache.set(key, entry);
    return entry;
  }

  /** Clients in client-id order, after `after` (exclusive), that pass `filter`. */
  async list(tenant: string, limit: number, after?: string, filter: ClientFilter = {}): Promise<RegisteredClient[]> {
    let query = this.#store
      .forTenant(tenant)
      .db.selectFrom("oauth_clients")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .orderBy("client_id")
      .limit(limit);
    if (after !== undefined) query = query.where("client_id", ">", after);
    if (filter.kind !== undefined) query = query.where("kind", "=", filter.kind);
    if (filter.owner !== undefined) query = query.where("owner", "=", filter.owner);
    return (await query.execute()).map(toClient);
  }

  /** Deletes a client; false when there was none. `by` names the administrator who did it. */
  async delete(tenant: string, clientId: string, options: Partial<Actor> = {}): Promise<boolean> {
    this.#authCache.delete(`${tenant}\n${clientId}`);
    const scoped = this.#store.forTenant(tenant);
    return scoped.transaction(async (tx) => {
      const deleted = await tx
        .deleteFrom("oauth_clients")
        .where("tenant_id", "=", tenant)
        .where("client_id", "=", clientId)
        .executeTakeFirst();
      if (Number(deleted.numDeletedRows) === 0) return false;
      const now = this.#clock.now();
      await scoped.recordEvent(tx, clientDeleted(clientId, options), now);
      // An agent's certificates die with it: on the deny list and the CRL from this commit on.
      const revocation = { reason: "cessationOfOperation", now, cause: "client_deleted" } as const;
      await revokeAgentCertificates(scoped, tx, clientId, revocation, options);
      return true;
    });
  }
}

/**
 * A client's row values: who it is (kind, owner, description, bound key) in columns of their own,
 * which ListClients filters on, and the rest of its metadata as JSON.
 */
function toColumns(
  metadata: ClientMetadata,
): Pick<OAuthClientsTable, "metadata" | "kind" | "owner" | "description" | "dpop_jkt"> {
  const { kind, owner, description, dpop_jkt, ...rest } = metadata;
  return {
    metadata: JSON.stringify(rest),
    kind: kind ?? "application",
    owner: owner ?? null,
    description: description ?? null,
    dpop_jkt: dpop_jkt ?? null,
  };
}

/** The identity members of a row, present only when set (rows from before migration 0010 have none). */
function identityOf(row: OAuthClientsTable): ClientIdentity {
  return {
    ...(row.kind === "agent" ? { kind: "agent" as const } : {}),
    ...(row.owner ? { owner: row.owner } : {}),
    ...(row.description ? { description: row.description } : {}),
    ...(row.dpop_jkt ? { dpop_jkt: row.dpop_jkt } : {}),
  };
}

/**
 * RFC 7592 updates come from the client itself: it cannot change what it is or who vouched for it.
 * The authentication method decides whether a secret exists; changing it would strand or orphan one.
 */
function requireSameIdentity(before: ClientMetadata, after: ClientMetadata): void {
  const changed = (["token_endpoint_auth_method", "kind", "owner"] as const).filter(
    (member) => before[member] !== after[member],
  );
  if (changed.length > 0) {
    throw new InvalidClientMetadata(
      changed.map((field) => ({
        field,
        description: "cannot change after registration",
        error: "invalid_client_metadata" as const,
      })),
    );
  }
}

function toClient(row: OAuthClientsTable): RegisteredClient {
  return {
    tenant: row.tenant_id,
    clientId: row.client_id,
    metadata: { ...(JSON.parse(row.metadata) as ClientMetadata), ...identityOf(row) },
    hasSecret: row.secret_hash !== null,
    createdAt: Number(row.created_at),
    // Dynamically registered clients hold an RFC 7592 registration access token; admin clients do not.
    origin: row.registration_token_hash ? "dynamic" : "admin",
  };
}

/**
 * 128 random bits: client ids are public but must not be guessable for enumeration. An id never
 * starts with "-" or "_": command lines (ours, curl's, a shell's) read a leading "-" as an option,
 * so such an id could not be typed as an argument. Redrawing costs under 0.05 bits.
 */
export function newClientId(): string {
  for (;;) {
    const id = randomBytes(16).toString("base64url");
    if (/^[A-Za-z0-9]/.test(id)) return id;
  }
}
