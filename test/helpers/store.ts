// A migrated store on one of the run's engines (helpers/engines.ts) with its tenants, and mandate
// records to put in it: the set-up of the suites that test the store's mandate tables directly.
import type { MandateRecord } from "../../services/shared/mandates/mandate-store.ts";
import { MandateUsage } from "../../services/shared/mandates/usage.ts";
import { Store } from "../../services/shared/store/store.ts";
import type { Engine } from "./engines.ts";

export interface OpenedStore {
  store: Store;
  /** Closes the store and drops its database. */
  close(): Promise<void>;
}

/** A store on `engine`, migrated, with `tenants` (id → display name) created at `createdAt`. */
export async function openStore(
  engine: Engine,
  options: { tenants: Record<string, string>; createdAt: number; poolSize: number },
): Promise<OpenedStore> {
  const opened = await engine.open();
  const store = Store.open({ url: opened.url, poolSize: options.poolSize });
  const close = async () => {
    await store.close();
    await opened.dispose();
  };
  try {
    await store.migrate();
    await store.db
      .insertInto("tenants")
      .values(
        Object.entries(options.tenants).map(([id, name]) => ({
          id,
          display_name: name,
          created_at: options.createdAt,
          token_signing_alg: null,
        })),
      )
      .execute();
  } catch (error) {
    await close();
    throw error;
  }
  return { store, close };
}

/** Consumes one `calls` of a demo mandate per idempotency key, straight in the store at `url` (as Authorize would). */
export async function consumeCalls(url: string, mandateId: string, keys: readonly string[]): Promise<void> {
  const store = Store.open({ url, poolSize: 2 });
  try {
    const usage = new MandateUsage(store, { now: () => Date.now() });
    for (const key of keys) await usage.consume("demo", mandateId, { meter: "calls", amount: 1, idempotencyKey: key });
  } finally {
    await store.close();
  }
}

let counter = 0;

/**
 * An active top-level mandate of agent-1 for orders.read on https://api.example.com/, valid from
 * `at` for 30 days, its id `mdt_<prefix>_…` unique in the run; `fields` override any of it.
 */
export function mandateRecord(prefix: string, at: number, fields: Partial<MandateRecord>): MandateRecord {
  counter++;
  return {
    id: `mdt_${prefix}_${counter}_${Math.random().toString(36).slice(2, 8)}`,
    version: 1,
    parentId: null,
    depth: 0,
    principal: "alice",
    agent: "agent-1",
    scopes: ["orders.read"],
    resources: ["https://api.example.com/"],
    authorizationDetails: [],
    notBefore: at,
    expiresAt: at + 30 * 86_400_000,
    maxTokenTtlMs: null,
    usageLimits: [],
    maxDelegationDepth: 1,
    mayAct: [],
    state: "active",
    createdAt: at,
    revokedAt: null,
    revokedBy: null,
    revokeReason: null,
    consent: { approvedBy: { service: "test" }, at, method: "administrative", text: "" },
    ...fields,
  };
}
