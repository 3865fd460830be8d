// A tenant's OAuth clients in the store. Registration and deletion record their audit event in the
// same transaction; the secret is returned once and kept only as a hash.
import { randomBytes, randomUUID } from "node:crypto";
import type { Clock } from "../../shared/clock.ts";
import type { OAuthClientsTable } from "../../shared/store/schema.ts";
import type { Store } from "../../shared/store/store.ts";
import { type ClientMetadata, type ClientMetadataInput, normalizeClientMetadata } from "./metadata.ts";
import { generateSecret, hashSecret, verifySecret } from "./secrets.ts";

export interface RegisteredClient {
  tenant: string;
  clientId: string;
  metadata: ClientMetadata;
  hasSecret: boolean;
  createdAt: number;
}

/** How long a client read for authentication is reused; a deletion elsewhere takes effect within it. */
const AUTH_CACHE_MS = 5000;
const AUTH_CACHE_SIZE = 10_000;

export class ClientRegistry {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #authCache = new Map<string, { client: RegisteredClient; secretHash: string | null; until: number }>();

  constructor(store: Store, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  async create(tenant: string, input: ClientMetadataInput): Promise<{ client: RegisteredClient; secret?: string }> {
    const metadata = normalizeClientMetadata(input);
    const needsSecret = metadata.token_endpoint_auth_method.startsWith("client_secret_");
    const secret = needsSecret ? generateSecret() : undefined;
    const row: OAuthClientsTable = {
      tenant_id: tenant,
      // 128 random bits: client ids are public but must not be guessable for enumeration.
      client_id: randomBytes(16).toString("base64url"),
      metadata: JSON.stringify(metadata),
      secret_hash: secret ? hashSecret(secret) : null,
      created_at: this.#clock.now(),
    };
    const scoped = this.#store.forTenant(tenant);
    await scoped.transaction(async (tx) => {
      await tx.insertInto("oauth_clients").values(row).execute();
      const event = {
        client_id: row.client_id,
        client_name: metadata.client_name,
        token_endpoint_auth_method: metadata.token_endpoint_auth_method,
        grant_types: metadata.grant_types,
        redirect_uris: metadata.redirect_uris,
      };
      await scoped.recordEvent(
        tx,
        { eventId: randomUUID(), type: "client.created.v1", payload: event },
        row.created_at,
      );
    });
    return { client: toClient(row), ...(secret ? { secret } : {}) };
  }

  async get(tenant: string, clientId: string): Promise<RegisteredClient | undefined> {
    const row = await this.#store
      .forTenant(tenant)
      .db.selectFrom("oauth_clients")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("client_id", "=", clientId)
      .executeTakeFirst();
    return row && toClient(row);
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
    const key = `${tenant}\n${clientId}`;
    const now = Date.now();
    const cached = this.#authCache.get(key);
    if (cached && cached.until > now) return cached;
    const row = await this.#store
      .forTenant(tenant)
      .db.selectFrom("oauth_clients")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("client_id", "=", clientId)
      .executeTakeFirst();
    if (!row) {
      this.#authCache.delete(key);
      return undefined;
    }
    const entry = { client: toClient(row), secretHash: row.secret_hash, until: now + AUTH_CACHE_MS };
    if (this.#authCache.size >= AUTH_CACHE_SIZE) this.#authCache.clear();
    this.#authCache.set(key, entry);
    return entry;
  }

  /** Checks a presented secret against the stored hash (constant time); false for clients without one. */
  async verifySecret(tenant: string, clientId: string, secret: string): Promise<boolean> {
    const entry = await this.forAuthentication(tenant, clientId);
    return entry?.secretHash ? verifySecret(secret, entry.secretHash) : false;
  }

  /** Clients in client-id order, after `after` (exclusive). */
  async list(tenant: string, limit: number, after?: string): Promise<RegisteredClient[]> {
    let query = this.#store
      .forTenant(tenant)
      .db.selectFrom("oauth_clients")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .orderBy("client_id")
      .limit(limit);
    if (after !== undefined) query = query.where("client_id", ">", after);
    return (await query.execute()).map(toClient);
  }

  /** Deletes a client; false when there was none. */
  async delete(tenant: string, clientId: string): Promise<boolean> {
    this.#authCache.delete(`${tenant}\n${clientId}`);
    const scoped = this.#store.forTenant(tenant);
    return scoped.transaction(async (tx) => {
      const deleted = await tx
        .deleteFrom("oauth_clients")
        .where("tenant_id", "=", tenant)
        .where("client_id", "=", clientId)
        .executeTakeFirst();
      if (Number(deleted.numDeletedRows) === 0) return false;
      const event = { client_id: clientId };
      await scoped.recordEvent(
        tx,
        { eventId: randomUUID(), type: "client.deleted.v1", payload: event },
        this.#clock.now(),
      );
      return true;
    });
  }
}

function toClient(row: OAuthClientsTable): RegisteredClient {
  return {
    tenant: row.tenant_id,
    clientId: row.client_id,
    metadata: JSON.parse(row.metadata) as ClientMetadata,
    hasSecret: row.secret_hash !== null,
    createdAt: Number(row.created_at),
  };
}
