// API keys in process over a real store with a manual clock: what needs time to pass (expiry, the
// rotation overlap, the once-a-minute last use) and what is stored (only the SHA-256, never the key,
// in the row or the audit outbox), the key's format (prefix, id, checksum), and each refusal.
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientRegistry } from "../../services/issue/clients/registry.ts";
import {
  type ApiKey,
  ApiKeyChangeRefused,
  ApiKeyRefused,
  ApiKeys,
} from "../../services/issue/federation/api-keys/api-keys.ts";
import { apiKeyId, withChecksum } from "../../services/issue/federation/api-keys/key-format.ts";
import { ManualClock } from "../../services/shared/clock.ts";
import { loadConfig } from "../../services/shared/config.ts";
import type { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";
import { type OpenedStore, openStore } from "../helpers/store.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const config = loadConfig({
  env: { MANDATE_FEDERATION_API_KEY_TTL: "30d", MANDATE_FEDERATION_API_KEY_ROTATION_OVERLAP: "2h" },
});
const admin = { by: { sub: "admin-alice", tenant: "acme" } };
const RESOURCE = "https://api.example.com/";

let opened: OpenedStore;
let store: Store;
let clock: ManualClock;
let clients: ClientRegistry;
let keys: ApiKeys;

beforeAll(async () => {
  opened = await openStore(engines.at(-1) as (typeof engines)[number], {
    tenants: { acme: "Acme", other: "Other" },
    createdAt: 0,
    poolSize: 4,
  });
  store = opened.store;
  clock = new ManualClock(Date.now());
  clients = new ClientRegistry(store, clock);
  keys = new ApiKeys({ store, clock, config, clients });
}, 60_000);

afterAll(async () => {
  await opened?.close();
});

async function newAgent(tenant = "acme", kind = "agent"): Promise<string> {
  const { client } = await clients.create(tenant, {
    kind,
    owner: "alice",
    client_name: "key agent",
    ...(kind === "agent" ? { dpop_jkt: randomBytes(32).toString("base64url") } : {}),
    grant_types: ["client_credentials"],
    scope: "orders.read orders.write",
    resources: [RESOURCE, "https://other.example.com/"],
  });
  return client.clientId;
}

async function refusal(work: Promise<unknown>): Promise<string | undefined> {
  try {
    await work;
    return undefined;
  } catch (error) {
    if (error instanceof ApiKeyRefused) return error.reason;
    if (error instanceof ApiKeyChangeRefused) return `${error.kind}:${error.field}`;
    throw error;
  }
}

async function outbox(type: string) {
  return store.db.selectFrom("audit_outbox").selectAll().where("type", "=", type).execute();
}

describe("API keys (store)", () => {
  it("creates a prefixed, checksummed key, shown once: only its SHA-256 is stored", async () => {
    const agent = await newAgent();
    const { apiKey, key } = await keys.create(
      "acme",
      { clientId: agent, scopes: ["orders.read"], resources: [] },
      admin,
    );
    expect(key).toMatch(/^mdk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}[0-9A-Za-z]{6}$/);
    expect(apiKeyId(key)).toBe(apiKey.id);
    expect(key.startsWith(`mdk_${apiKey.id}_`)).toBe(true);
    // Defaults: the agent's resources, federation.apiKeyTtl.
    expect(apiKey).toMatchObject({ clientId: agent, scopes: ["orders.read"], createdBy: "admin-alice" });
    expect(apiKey.resources.sort()).toEqual(["https://api.example.com/", "https://other.example.com/"]);
    expect(apiKey.expiresAt - apiKey.createdAt).toBe(30 * DAY);

    const row = await store.db.selectFrom("api_keys").selectAll().where("id", "=", apiKey.id).executeTakeFirstOrThrow();
    expect(row.key_hash).toBe(createHash("sha256").update(key).digest("base64url"));
    const secret = key.slice(`mdk_${apiKey.id}_`.length);
    expect(JSON.stringify(row)).not.toContain(secret);
    const [created] = (await outbox("api_key.created.v1")).filter((e) => JSON.parse(e.payload).id === apiKey.id);
    expect(JSON.parse(created?.payload ?? "{}")).toMatchObject({
      id: apiKey.id,
      client_id: agent,
      scopes: ["orders.read"],
      by: admin.by,
    });
    expect(created?.payload).not.toContain(secret);
    expect(created?.payload).not.toContain(row.key_hash);
  });

  it("a changed character, a broken checksum or another shape is malformed; a forged secret is unknown", async () => {
    const agent = await newAgent();
    const { key } = await keys.create("acme", { clientId: agent, scopes: ["orders.read"], resources: [] }, admin);
    const flipped = `${key.slice(0, -1)}${key.endsWith("A") ? "B" : "A"}`;
    expect(await refusal(keys.authenticate("acme", flipped))).toBe("malformed");
    expect(await refusal(keys.authenticate("acme", "not a key"))).toBe("malformed");
    expect(await refusal(keys.authenticate("acme", ""))).toBe("malformed");
    // A well-formed key (valid checksum) with this id but another secret: no such key, in constant time.
    const { key: other } = await keys.create(
      "acme",
      { clientId: agent, scopes: ["orders.read"], resources: [] },
      admin,
    );
    const forged = forgeWithId(key, other);
    expect(await refusal(keys.authenticate("acme", forged))).toBe("unknown");
    // Keys are per tenant: the same key in another tenant is unknown there.
    expect(await refusal(keys.authenticate("other", key))).toBe("unknown");
    expect((await keys.authenticate("acme", key)).clientId).toBe(agent);
  });

  it("refuses keys beyond the agent's registration, for non-agents and unknown clients, and too long lives", async () => {
    const agent = await newAgent();
    const app = await newAgent("acme", "application");
    const create = (fields: Partial<Parameters<ApiKeys["create"]>[1]>) =>
      refusal(keys.create("acme", { clientId: agent, scopes: ["orders.read"], resources: [], ...fields }, admin));
    expect(await create({ scopes: ["orders.read", "admin"] })).toBe("invalid:scopes");
    expect(await create({ scopes: [] })).toBe("invalid:scopes");
    expect(await create({ resources: ["https://evil.example.com/"] })).toBe("invalid:resources");
    expect(await create({ clientId: app })).toBe("invalid:client_id");
    expect(await create({ clientId: "nobody" })).toBe("not_found:client_id");
    expect(await create({ ttlMs: 367 * DAY })).toBe("invalid:ttl");
    expect(await create({ resources: [RESOURCE], ttlMs: HOUR })).toBeUndefined();
  });

  it("never gives more than the agent is registered for now", async () => {
    const agent = await newAgent();
    const { key } = await keys.create(
      "acme",
      { clientId: agent, scopes: ["orders.read", "orders.write"], resources: [RESOURCE, "https://other.example.com/"] },
      admin,
    );
    const registered = (await clients.get("acme", agent))?.metadata;
    await clients.update("acme", agent, { ...registered, scope: "orders.read", resources: [RESOURCE] });
    const used = await keys.authenticate("acme", key);
    expect(used.scopes).toEqual(["orders.read"]);
    expect(used.resources).toEqual([RESOURCE]);
    await clients.delete("acme", agent);
    expect(await refusal(keys.authenticate("acme", key))).toBe("agent_gone");
  });

  it("an expired key is refused", async () => {
    const agent = await newAgent();
    const { key } = await keys.create(
      "acme",
      { clientId: agent, scopes: ["orders.read"], resources: [], ttlMs: HOUR },
      admin,
    );
    clock.advance(HOUR - 1);
    expect((await keys.authenticate("acme", key)).clientId).toBe(agent);
    clock.advance(1);
    expect(await refusal(keys.authenticate("acme", key))).toBe("expired");
  });

  it("a revoked key is refused at once; revoking again changes nothing", async () => {
    const agent = await newAgent();
    const { apiKey, key } = await keys.create(
      "acme",
      { clientId: agent, scopes: ["orders.read"], resources: [] },
      admin,
    );
    await keys.authenticate("acme", key);
    const revoked = await keys.revoke("acme", apiKey.id, admin);
    expect(revoked.revokedAt).toBe(clock.now());
    expect(await refusal(keys.authenticate("acme", key))).toBe("revoked");
    await keys.revoke("acme", apiKey.id, admin);
    const events = (await outbox("api_key.revoked.v1")).filter((e) => JSON.parse(e.payload).id === apiKey.id);
    expect(events).toHaveLength(1);
    expect(await refusal(keys.revoke("acme", "0000000000000000", admin))).toBe("not_found:id");
    expect(await refusal(keys.rotate("acme", apiKey.id, admin))).toBe("not_found:id");
  });

  it("rotation: the old key works until the overlap ends, the new one after; both audited", async () => {
    const agent = await newAgent();
    const first = await keys.create("acme", { clientId: agent, scopes: ["orders.read"], resources: [RESOURCE] }, admin);
    clock.advance(DAY);
    const rotated = await keys.rotate("acme", first.apiKey.id, admin);
    expect(rotated.key).not.toBe(first.key);
    expect(rotated.apiKey).toMatchObject({
      clientId: agent,
      scopes: ["orders.read"],
      resources: [RESOURCE],
      rotatedFrom: first.apiKey.id,
    });
    // The same lifetime from now; the old one cut to the end of the overlap.
    expect(rotated.apiKey.expiresAt - rotated.apiKey.createdAt).toBe(30 * DAY);
    expect(rotated.previous).toMatchObject({ expiresAt: clock.now() + 2 * HOUR, rotatedTo: rotated.apiKey.id });
    expect(await refusal(keys.rotate("acme", first.apiKey.id, admin))).toBe("precondition:id");

    clock.advance(2 * HOUR - 1);
    expect((await keys.authenticate("acme", first.key)).id).toBe(first.apiKey.id);
    expect((await keys.authenticate("acme", rotated.key)).id).toBe(rotated.apiKey.id);
    clock.advance(1);
    expect(await refusal(keys.authenticate("acme", first.key))).toBe("expired");
    expect((await keys.authenticate("acme", rotated.key)).id).toBe(rotated.apiKey.id);

    const rotation = (await outbox("api_key.rotated.v1")).find((e) => JSON.parse(e.payload).id === first.apiKey.id);
    expect(JSON.parse(rotation?.payload ?? "{}")).toMatchObject({ replaced_by: rotated.apiKey.id, by: admin.by });
    const creation = (await outbox("api_key.created.v1")).find((e) => JSON.parse(e.payload).id === rotated.apiKey.id);
    expect(JSON.parse(creation?.payload ?? "{}")).toMatchObject({ rotated_from: first.apiKey.id });
    for (const event of [rotation, creation]) expect(event?.payload).not.toContain(rotated.key.slice(21));
  });

  it("records the last use at most once a minute; lists never show the key", async () => {
    const agent = await newAgent();
    const { apiKey, key } = await keys.create(
      "acme",
      { clientId: agent, scopes: ["orders.read"], resources: [] },
      admin,
    );
    const listed = async (): Promise<ApiKey | undefined> =>
      (await keys.list("acme", agent)).find((k) => k.id === apiKey.id);
    expect((await listed())?.lastUsedAt).toBeNull();
    const first = clock.now();
    await keys.authenticate("acme", key);
    expect((await listed())?.lastUsedAt).toBe(first);
    clock.advance(MINUTE - 1);
    await keys.authenticate("acme", key);
    expect((await listed())?.lastUsedAt).toBe(first);
    clock.advance(1);
    await keys.authenticate("acme", key);
    expect((await listed())?.lastUsedAt).toBe(first + MINUTE);
    const all = JSON.stringify(await keys.list("acme"));
    expect(all).not.toContain(key.slice(21));
    expect(all).not.toContain("key_hash");
  });
});

/** A well-formed key (valid checksum) naming `target`'s id with `source`'s secret. */
function forgeWithId(target: string, source: string): string {
  const id = apiKeyId(target) as string;
  const forged = withChecksum(`mdk_${id}_${source.slice(21, 64)}`);
  expect(apiKeyId(forged)).toBe(id);
  return forged;
}
