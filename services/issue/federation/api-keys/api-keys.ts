// API keys Mandate creates for agents (issue 18 item 2): prefixed (key-format.ts), hashed at rest
// (SHA-256; the key is shown once), scoped (scopes and resources within the agent's registration),
// expiring, rotatable with overlap (the old key keeps working until now + apiKeyRotationOverlap),
// revocable at once. Every change commits with its audit record. The agent federation gateway
// exchanges a key for a short-lived bound token (gateway/sources/api-key.ts), through `authenticate`.
import { type Actor, apiKeyCreated, apiKeyRevoked, apiKeyRotated } from "../../../shared/audit-events.ts";
import type { Clock } from "../../../shared/clock.ts";
import type { Config } from "../../../shared/config.ts";
import type { ApiKeysTable } from "../../../shared/store/migrations/0018_api_keys.ts";
import type { Store, TenantTransaction } from "../../../shared/store/store.ts";
import type { RegisteredClient } from "../../clients/metadata.ts";
import type { ClientRegistry } from "../../clients/registry.ts";
import { TenantResources } from "../../oauth/rfc8707.ts";
import { apiKeyId, hashMatches, newApiKey } from "./key-format.ts";

/** A key lives at most a year (and a day, for leap years): long-lived secrets must still expire. */
export const MAX_API_KEY_TTL_MS = 366 * 86_400_000;
/** last_used_at is written at most this often per key: not a write per request. */
export const LAST_USE_RESOLUTION_MS = 60_000;

export const API_KEY_REFUSALS = ["malformed", "unknown", "expired", "revoked", "agent_gone"] as const;
export type ApiKeyRefusal = (typeof API_KEY_REFUSALS)[number];

/** A presented key is not usable; the message is for logs (it never contains the key). */
export class ApiKeyRefused extends Error {
  readonly reason: ApiKeyRefusal;
  constructor(reason: ApiKeyRefusal, message: string) {
    super(message);
    this.name = "ApiKeyRefused";
    this.reason = reason;
  }
}

/** An admin's change cannot be made (INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION). */
export class ApiKeyChangeRefused extends Error {
  readonly kind: "invalid" | "not_found" | "precondition";
  readonly field: string;
  constructor(kind: "invalid" | "not_found" | "precondition", field: string, message: string) {
    super(message);
    this.name = "ApiKeyChangeRefused";
    this.kind = kind;
    this.field = field;
  }
}

/** A stored key as the rest of Mandate sees it (JSON columns parsed; never the hash). */
export interface ApiKey {
  tenant: string;
  id: string;
  clientId: string;
  scopes: string[];
  resources: string[];
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  rotatedFrom: string | null;
  /** The key that replaced this one (read from its successor's rotated_from). */
  rotatedTo: string | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export interface ApiKeyInput {
  clientId: string;
  scopes: string[];
  resources: string[];
  /** Default config.federation.apiKeyTtl. */
  ttlMs?: number | undefined;
}

export interface ApiKeyServices {
  store: Store;
  clock: Clock;
  config: Config;
  clients: ClientRegistry;
}

export class ApiKeys {
  readonly #services: ApiKeyServices;
  readonly #resources: TenantResources;

  constructor(services: ApiKeyServices) {
    this.#services = services;
    this.#resources = new TenantResources(services.store, () => services.clock.now());
  }

  /** Creates a key for an agent; returns it with the key text, which is not kept. */
  async create(tenant: string, input: ApiKeyInput, actor: Partial<Actor>): Promise<{ apiKey: ApiKey; key: string }> {
    const { scopes, resources } = await this.#checkedBounds(tenant, input);
    const ttl = input.ttlMs ?? this.#services.config.federation.apiKeyTtl;
    if (ttl <= 0 || ttl > MAX_API_KEY_TTL_MS) {
      throw new ApiKeyChangeRefused(
        "invalid",
        "ttl",
        `must be positive and at most ${MAX_API_KEY_TTL_MS / 86_400_000} days`,
      );
    }
    const now = this.#services.clock.now();
    const scoped = this.#services.store.forTenant(tenant);
    return scoped.transaction(async (tx) => {
      const created = await this.#insert(tx, tenant, { clientId: input.clientId, scopes, resources }, actor, {
        now,
        expiresAt: now + ttl,
        rotatedFrom: null,
      });
      await scoped.recordEvent(tx, apiKeyCreated(auditedKey(created.row), actor), now);
      return { apiKey: fromRow(created.row, null), key: created.key };
    });
  }

  /**
   * Replaces a usable key with a new one of the same agent and bounds and the same lifetime; the old
   * key's expiry is cut to now + apiKeyRotationOverlap (never extended). Both changes are audited.
   */
  async rotate(
    tenant: string,
    id: string,
    actor: Partial<Actor>,
  ): Promise<{ apiKey: ApiKey; key: string; previous: ApiKey }> {
    const { clock, config } = this.#services;
    const now = clock.now();
    const scoped = this.#services.store.forTenant(tenant);
    return scoped.transaction(async (tx) => {
      // Concurrent rotations of one key serialise on its row (SQLite: one writer at a time anyway).
      const old = await selectRow(tx, tenant, id, this.#services.store.engine === "postgres");
      if (!old || old.revoked_at !== null || Number(old.expires_at) <= now) {
        throw new ApiKeyChangeRefused("not_found", "id", `there is no usable API key ${id}`);
      }
      const successor = await successorOf(tx, tenant, id);
      if (successor) {
        throw new ApiKeyChangeRefused("precondition", "id", `API key ${id} was rotated already (to ${successor})`);
      }
      const lifetime = Number(old.expires_at) - Number(old.created_at);
      const created = await this.#insert(
        tx,
        tenant,
        { clientId: old.client_id, scopes: JSON.parse(old.scopes), resources: JSON.parse(old.resources) },
        actor,
        { now, expiresAt: now + Math.min(lifetime, MAX_API_KEY_TTL_MS), rotatedFrom: id },
      );
      const overlapEnd = Math.min(Number(old.expires_at), now + config.federation.apiKeyRotationOverlap);
      await tx
        .updateTable("api_keys")
        .set({ expires_at: overlapEnd })
        .where("tenant_id", "=", tenant)
        .where("id", "=", id)
        .execute();
      const previous = { ...old, expires_at: overlapEnd };
      await scoped.recordEvent(tx, apiKeyRotated(auditedKey(previous), created.row.id, actor), now);
      await scoped.recordEvent(tx, apiKeyCreated(auditedKey(created.row), actor), now);
      return {
        apiKey: fromRow(created.row, null),
        key: created.key,
        previous: fromRow(previous, created.row.id),
      };
    });
  }

  /** Revokes a key: refused from now on. Revoking a revoked key changes nothing and is not audited again. */
  async revoke(tenant: string, id: string, actor: Partial<Actor>): Promise<ApiKey> {
    const now = this.#services.clock.now();
    const scoped = this.#services.store.forTenant(tenant);
    return scoped.transaction(async (tx) => {
      const row = await selectRow(tx, tenant, id);
      if (!row) throw new ApiKeyChangeRefused("not_found", "id", `there is no API key ${id}`);
      const successor = await successorOf(tx, tenant, id);
      if (row.revoked_at !== null) return fromRow(row, successor);
      await tx
        .updateTable("api_keys")
        .set({ revoked_at: now })
        .where("tenant_id", "=", tenant)
        .where("id", "=", id)
        .execute();
      await scoped.recordEvent(tx, apiKeyRevoked(auditedKey(row), actor), now);
      return fromRow({ ...row, revoked_at: now }, successor);
    });
  }

  /** A tenant's keys (or one agent's), newest first. */
  async list(tenant: string, clientId?: string): Promise<ApiKey[]> {
    let query = this.#services.store
      .forTenant(tenant)
      .db.selectFrom("api_keys")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .orderBy("created_at", "desc")
      .orderBy("id");
    if (clientId) query = query.where("client_id", "=", clientId);
    const rows = await query.execute();
    const successors = new Map(rows.filter((r) => r.rotated_from).map((r) => [r.rotated_from as string, r.id]));
    return rows.map((row) => fromRow(row, successors.get(row.id) ?? null));
  }

  /**
   * The usable key `key` is, in `tenant`: found by its id (no scan), its hash compared in constant
   * time, not revoked, not expired, its agent still an agent; its bounds cut to the agent's current
   * registration. Records the use at most once a minute.
   */
  async authenticate(tenant: string, key: string): Promise<ApiKey> {
    const id = apiKeyId(key);
    if (!id) throw new ApiKeyRefused("malformed", "the subject token is not a Mandate API key (mdk_…)");
    const { store, clock, clients } = this.#services;
    const row = await selectRow(store.forTenant(tenant).db, tenant, id);
    // One answer for "no such id" and "wrong secret": nothing tells a guesser which part was wrong.
    if (!row || !hashMatches(key, row.key_hash)) {
      throw new ApiKeyRefused("unknown", `API key ${id} is not a key of tenant "${tenant}"`);
    }
    const now = clock.now();
    if (row.revoked_at !== null) throw new ApiKeyRefused("revoked", `API key ${id} was revoked`);
    if (Number(row.expires_at) <= now) throw new ApiKeyRefused("expired", `API key ${id} has expired`);
    const agent = await clients.get(tenant, row.client_id);
    if (agent?.metadata.kind !== "agent") {
      throw new ApiKeyRefused("agent_gone", `the agent ${row.client_id} of API key ${id} no longer exists`);
    }
    await this.#recordUse(tenant, row, now);
    const stored = fromRow({ ...row, last_used_at: row.last_used_at === null ? now : row.last_used_at }, null);
    return { ...stored, ...(await this.#stillRegistered(agent, stored)) };
  }

  /** A key never gives more than its agent is registered for now (its registration may have shrunk since). */
  async #stillRegistered(agent: RegisteredClient, key: ApiKey): Promise<Pick<ApiKey, "scopes" | "resources">> {
    const registered = agent.metadata.scope.split(" ");
    const allowed = await this.#resources.allowedFor(agent);
    return {
      scopes: key.scopes.filter((scope) => registered.includes(scope)),
      resources: key.resources.filter((resource) => allowed.includes(resource)),
    };
  }

  async #recordUse(tenant: string, row: ApiKeysTable, now: number): Promise<void> {
    if (row.last_used_at !== null && now - Number(row.last_used_at) < LAST_USE_RESOLUTION_MS) return;
    await this.#services.store
      .forTenant(tenant)
      .db.updateTable("api_keys")
      .set({ last_used_at: now })
      .where("tenant_id", "=", tenant)
      .where("id", "=", row.id)
      .execute();
  }

  /** The agent must exist and be an agent; scopes and resources within what it is registered for. */
  async #checkedBounds(tenant: string, input: ApiKeyInput): Promise<{ scopes: string[]; resources: string[] }> {
    const client = await this.#services.clients.get(tenant, input.clientId);
    if (!client) throw new ApiKeyChangeRefused("not_found", "client_id", `there is no client ${input.clientId}`);
    if (client.metadata.kind !== "agent") {
      throw new ApiKeyChangeRefused("invalid", "client_id", `client ${input.clientId} is not an agent`);
    }
    const scopes = [...new Set(input.scopes)];
    if (scopes.length === 0) throw new ApiKeyChangeRefused("invalid", "scopes", "give at least one scope");
    const registered = client.metadata.scope.split(" ").filter(Boolean);
    const outside = scopes.filter((s) => !registered.includes(s));
    if (outside.length > 0) {
      throw new ApiKeyChangeRefused("invalid", "scopes", `not registered for the agent: ${outside.join(" ")}`);
    }
    const allowed = await this.#resources.allowedFor(client);
    const resources = input.resources.length > 0 ? [...new Set(input.resources)] : [...allowed];
    const refused = resources.filter((r) => !allowed.includes(r));
    if (refused.length > 0) {
      throw new ApiKeyChangeRefused("invalid", "resources", `the agent may not target: ${refused.join(" ")}`);
    }
    return { scopes, resources };
  }

  async #insert(
    tx: TenantTransaction,
    tenant: string,
    bounds: { clientId: string; scopes: string[]; resources: string[] },
    actor: Partial<Actor>,
    times: { now: number; expiresAt: number; rotatedFrom: string | null },
  ): Promise<{ row: ApiKeysTable; key: string }> {
    const { id, key, hash } = newApiKey();
    const row: ApiKeysTable = {
      tenant_id: tenant,
      id,
      client_id: bounds.clientId,
      key_hash: hash,
      scopes: JSON.stringify(bounds.scopes),
      resources: JSON.stringify(bounds.resources),
      created_by: creatorOf(actor),
      created_at: times.now,
      expires_at: times.expiresAt,
      rotated_from: times.rotatedFrom,
      revoked_at: null,
      last_used_at: null,
    };
    await tx.insertInto("api_keys").values(row).execute();
    return { row, key };
  }
}

async function selectRow(
  db: TenantTransaction | ReturnType<Store["forTenant"]>["db"],
  tenant: string,
  id: string,
  lock = false,
): Promise<ApiKeysTable | undefined> {
  let query = db.selectFrom("api_keys").selectAll().where("tenant_id", "=", tenant).where("id", "=", id);
  if (lock) query = query.forUpdate();
  return query.executeTakeFirst();
}

async function successorOf(tx: TenantTransaction, tenant: string, id: string): Promise<string | null> {
  const row = await tx
    .selectFrom("api_keys")
    .select("id")
    .where("tenant_id", "=", tenant)
    .where("rotated_from", "=", id)
    .executeTakeFirst();
  return row?.id ?? null;
}

/** Who made a key, readably: the caller's subject, client or service. */
function creatorOf(actor: Partial<Actor>): string {
  const by = actor.by ?? {};
  return by.sub ?? by.client_id ?? by.service ?? by.admin ?? "unknown";
}

function auditedKey(row: ApiKeysTable) {
  return {
    id: row.id,
    client_id: row.client_id,
    scopes: JSON.parse(row.scopes) as string[],
    resources: JSON.parse(row.resources) as string[],
    expires_at: Number(row.expires_at),
    rotated_from: row.rotated_from,
  };
}

function fromRow(row: ApiKeysTable, rotatedTo: string | null): ApiKey {
  return {
    tenant: row.tenant_id,
    id: row.id,
    clientId: row.client_id,
    scopes: JSON.parse(row.scopes) as string[],
    resources: JSON.parse(row.resources) as string[],
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    rotatedFrom: row.rotated_from,
    rotatedTo,
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
    lastUsedAt: row.last_used_at === null ? null : Number(row.last_used_at),
  };
}
