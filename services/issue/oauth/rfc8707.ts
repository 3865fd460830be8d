// Resource indicators (RFC 8707): absolute URIs without a fragment (§2); at the token endpoint
// they may only narrow what the authorization granted (§2.2). Which resources a client may target
// at all is decided here too: the client's registered `resources`, else its tenant's
// `default_resources`; anything else is `invalid_target` (§2: the server may refuse a resource it
// does not know or that the client may not use).
import { resourceProblem } from "../../shared/oauth/resource-indicator.ts";
import type { Store } from "../../shared/store/store.ts";
import type { RegisteredClient } from "../clients/metadata.ts";
import { InvalidTarget } from "./errors.ts";

export function parseResources(values: string[]): string[] {
  for (const value of values) {
    const problem = resourceProblem(value);
    if (problem) throw new InvalidTarget(`resource "${value}" ${problem}`);
  }
  return [...new Set(values)];
}

/** Resources requested at the token endpoint must have been granted (§2.2); none requested means all granted. */
export function narrowResources(requested: string[], granted: string[]): string[] {
  if (requested.length === 0) return granted;
  const outside = requested.filter((r) => !granted.includes(r));
  if (outside.length > 0) throw new InvalidTarget(`resource not granted: ${outside.join(" ")}`);
  return requested;
}

/** The resources a client may obtain tokens for: its own list, else the tenant's default. */
export function allowedResources(client: RegisteredClient, tenantDefaults: readonly string[]): readonly string[] {
  const own = client.metadata.resources;
  return own && own.length > 0 ? own : tenantDefaults;
}

/** RFC 8707 §2: `invalid_target` for any resource outside what the client may target (default deny). */
export function requirePermittedResources(resources: readonly string[], allowed: readonly string[]): void {
  const refused = resources.filter((r) => !allowed.includes(r));
  if (refused.length > 0) {
    throw new InvalidTarget(`the client may not obtain tokens for: ${refused.join(" ")}`);
  }
}

const TTL_MS = 5000;

/** Each tenant's default_resources, read from the store and cached for a few seconds. */
export class TenantResources {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #cache = new Map<string, { resources: string[]; until: number }>();

  constructor(store: Store, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  async defaults(tenant: string): Promise<string[]> {
    const now = this.#now();
    const hit = this.#cache.get(tenant);
    if (hit && hit.until > now) return hit.resources;
    const row = await this.#store.db
      .selectFrom("tenants")
      .select("default_resources")
      .where("id", "=", tenant)
      .executeTakeFirst();
    let resources: string[] = [];
    try {
      const parsed: unknown = row?.default_resources ? JSON.parse(row.default_resources) : [];
      resources = Array.isArray(parsed) ? parsed.filter((r): r is string => typeof r === "string") : [];
    } catch {
      resources = [];
    }
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(tenant, { resources, until: now + TTL_MS });
    return resources;
  }

  /** The resources `client` may target in its tenant. */
  async allowedFor(client: RegisteredClient): Promise<readonly string[]> {
    const own = client.metadata.resources;
    return own && own.length > 0 ? own : this.defaults(client.tenant);
  }
}
