// The policy of every tenant: its own active revision (bundle data deep-merged with its dynamic data
// documents), or the configured default policy; the admin operations that change it (push, activate,
// rollback, data, signing), each one transaction with its `policyChanged` audit event that bumps
// `policy_state.version`; and change notifications (reload.ts) so that every replica swaps within a
// second. The decision engine reads it through `PolicySource`.
import { createHash } from "node:crypto";
import type { Actor, OutboxEvent } from "../../shared/audit-events.ts";
import { policyChanged } from "../../shared/audit-events.ts";
import { type Clock, systemClock } from "../../shared/clock.ts";
import type { Config } from "../../shared/config.ts";
import {
  alreadyExists,
  Code,
  ConnectError,
  failedPrecondition,
  invalidArgument,
  notFound,
} from "../../shared/errors.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Store } from "../../shared/store/store.ts";
import { type CheckedBundle, checkBundle, unpackBundle, withDocuments } from "./bundle-check.ts";
import { loadDefaultPolicy, type PolicyBase } from "./default-policy.ts";
import { type BundleMeta, PolicyStore } from "./policy-store.ts";
import { notifyInTransaction, PolicyReloader } from "./reload.ts";
import { BundleSignatureError, JwksError, parseSigningJwks, verifyBundleFiles } from "./signatures.ts";

export { loadDefaultPolicy, resolveDefaultPolicy } from "./default-policy.ts";

// --- What the decision engine consumes (keep exactly) ----------------------------------------------

export interface ActivePolicy {
  revision: string;
  version: number;
  wasm: Uint8Array;
  data: Record<string, unknown>;
}

export interface PolicySource {
  /** The tenant's own active revision (bundle data deep-merged with its policy_data documents at their paths), or the default policy. */
  active(tenant: string): Promise<ActivePolicy>;
  /** Fired on this replica or another when the tenant's activation/data/signing changes. */
  onChange(listener: (tenant: string) => void): () => void;
}

// --- Admin views -----------------------------------------------------------------------------------

export interface RevisionInfo {
  revision: string;
  sha256: string;
  signedBy: string | null;
  active: boolean;
  createdAt: number;
  activatedAt: number | null;
  entrypoints: string[];
  sizeBytes: number;
}

export interface DataDocument {
  path: string;
  value: unknown;
  updatedAt: number;
}

/** Largest dynamic data document (its JSON text). */
export const MAX_DATA_VALUE_BYTES = 1024 * 1024;
const DATA_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\/[A-Za-z_][A-Za-z0-9_]*)*$/;

export interface PolicyRegistryOptions {
  store: Store;
  config: Config;
  logger: Logger;
  clock?: Clock;
  /** Change channels (all on by default when configured); the poll interval defaults to authorize.reloadPollInterval. */
  reload?: { postgres?: boolean; redis?: boolean; pollIntervalMs?: number };
}

/** A change made in one transaction: its result, its audit events (none: nothing changed). */
interface Change<T> {
  result: T;
  events: OutboxEvent[];
  activeRevision?: string;
}

export class PolicyRegistry implements PolicySource {
  readonly #store: Store;
  readonly #config: Config;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #reloader: PolicyReloader;
  readonly #maxCached: number;
  /** Loaded policies by tenant, least recently used first. */
  readonly #cache = new Map<string, ActivePolicy>();
  /** The last loaded bundle of each cached tenant: a data-only change does not unpack it again. */
  readonly #bases = new Map<string, PolicyBase>();
  readonly #loading = new Map<string, Promise<ActivePolicy>>();
  /** The newest policy_state version seen per tenant: a change is reported once, whichever channel brings it. */
  readonly #versions = new Map<string, number>();
  readonly #listeners = new Set<(tenant: string) => void>();
  #started: Promise<void> | undefined;

  constructor(options: PolicyRegistryOptions) {
    this.#store = options.store;
    this.#config = options.config;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#maxCached = options.config.authorize.maxLoadedTenants;
    this.#reloader = new PolicyReloader(
      {
        store: options.store,
        databaseUrl: options.config.database.url,
        redisUrl: options.config.redis.url,
        pollIntervalMs: options.reload?.pollIntervalMs ?? options.config.authorize.reloadPollInterval,
        postgres: options.reload?.postgres ?? true,
        redis: options.reload?.redis ?? true,
        logger: options.logger,
        now: () => this.#clock.now(),
      },
      {
        signal: (tenant) => void this.#signal(tenant),
        version: (tenant, version, quiet) => this.#observe(tenant, version, quiet),
      },
    );
  }

  /** Compiles (or reads) the default policy and starts listening for changes. */
  start(): Promise<void> {
    // The default policy compiles in the background and is not a gate: a tenant with its own revision
    // decides even when the default policy cannot load (a failed compile is retried on next use).
    this.#defaultPolicy().catch((error: unknown) =>
      this.#logger.error(
        { err: error },
        "the default policy did not load; tenants without their own revision are denied",
      ),
    );
    this.#started ??= this.#reloader.start();
    return this.#started;
  }

  #defaultPolicy(): Promise<PolicyBase> {
    return (async () => loadDefaultPolicy(this.#config.authorize.defaultPolicy))();
  }

  async stop(): Promise<void> {
    await this.#reloader.stop();
    this.#cache.clear();
    this.#bases.clear();
  }

  // --- PolicySource --------------------------------------------------------------------------------

  async active(tenant: string): Promise<ActivePolicy> {
    if (!this.#started) throw new Error("PolicyRegistry.start() must complete before policies are read");
    await this.#started;
    const cached = this.#cache.get(tenant);
    if (cached) {
      this.#cache.delete(tenant); // most recently used goes last
      this.#cache.set(tenant, cached);
      return cached;
    }
    let loading = this.#loading.get(tenant);
    if (!loading) {
      loading = this.#load(tenant).finally(() => this.#loading.delete(tenant));
      this.#loading.set(tenant, loading);
    }
    return loading;
  }

  onChange(listener: (tenant: string) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Reads the tenant's policy; again when a newer version was announced while reading (at most 3 times). */
  async #load(tenant: string): Promise<ActivePolicy> {
    for (let attempt = 1; ; attempt++) {
      const policy = await this.#read(tenant);
      const known = this.#versions.get(tenant);
      if (known === undefined || policy.version >= known || attempt === 3) {
        this.#remember(tenant, policy);
        return policy;
      }
    }
  }

  async #read(tenant: string): Promise<ActivePolicy> {
    const policies = this.#store.forTenant(tenant).use(PolicyStore);
    const state = await policies.state();
    const documents = (await policies.data()).map((d) => ({ path: d.path, value: JSON.parse(d.value) as unknown }));
    const base = state.activeRevision
      ? await this.#storedBase(tenant, policies, state.activeRevision)
      : await this.#defaultPolicy();
    if (state.activeRevision) this.#bases.set(tenant, base);
    return {
      revision: base.revision,
      version: state.version,
      wasm: base.wasm,
      data: withDocuments(base.data, documents),
    };
  }

  async #storedBase(tenant: string, policies: PolicyStore, revision: string): Promise<PolicyBase> {
    const known = this.#bases.get(tenant);
    if (known?.revision === revision) return known;
    const row = await policies.bundle(revision);
    if (!row) throw new Error(`tenant ${tenant}: the active revision ${revision} is not stored`);
    const { wasm, data } = await unpackBundle(Buffer.from(row.bundle, "base64"));
    return { revision, wasm, data };
  }

  #remember(tenant: string, policy: ActivePolicy): void {
    const known = this.#versions.get(tenant);
    if (known === undefined || policy.version > known) this.#versions.set(tenant, policy.version);
    this.#cache.set(tenant, policy);
    for (const oldest of this.#cache.keys()) {
      if (this.#cache.size <= this.#maxCached) break;
      this.#cache.delete(oldest);
      this.#bases.delete(oldest);
    }
  }

  // --- Change notifications ------------------------------------------------------------------------

  /** A channel named the tenant: re-read its version (the message is trusted for nothing else). */
  async #signal(tenant: string): Promise<void> {
    try {
      const { version } = await this.#store.forTenant(tenant).use(PolicyStore).state();
      this.#observe(tenant, version, false);
    } catch (error) {
      this.#logger.warn({ err: error, tenant }, "policy reload: reading the tenant's policy state failed");
    }
  }

  /** A newer version drops the cached policy and tells the listeners, once per version. */
  #observe(tenant: string, version: number, quiet: boolean): void {
    const known = this.#versions.get(tenant);
    if (known !== undefined && version <= known) return;
    this.#versions.set(tenant, version);
    if (known === undefined && quiet) return;
    this.#cache.delete(tenant);
    for (const listener of this.#listeners) {
      try {
        listener(tenant);
      } catch (error) {
        this.#logger.error({ err: error, tenant }, "policy change listener failed");
      }
    }
  }

  /**
   * Runs one change of a tenant's policy in one transaction: takes the tenant's state row, applies
   * the change, and when it changed anything bumps the version, records its audit events and sends
   * the NOTIFY, all committed together; then tells this replica and (over Redis) the others.
   */
  async #change<T>(tenant: string, apply: (policies: PolicyStore, now: number) => Promise<Change<T>>): Promise<T> {
    const scoped = this.#store.forTenant(tenant);
    const now = this.#clock.now();
    const { result, version } = await scoped.transaction(async (tx) => {
      const policies = scoped.use(PolicyStore, tx);
      await policies.lock(now);
      const change = await apply(policies, now);
      if (change.events.length === 0) return { result: change.result, version: undefined };
      const version = await policies.bump(now, change.activeRevision);
      for (const event of change.events) await scoped.recordEvent(tx, event, now);
      await notifyInTransaction(tx, this.#store.engine, tenant);
      return { result: change.result, version };
    });
    if (version !== undefined) {
      this.#observe(tenant, version, false);
      await this.#reloader.publish(tenant);
    }
    return result;
  }

  // --- Admin operations ----------------------------------------------------------------------------

  /**
   * Stores a bundle as a revision (verifying its signature per the tenant's settings, loading its
   * module first); the same bytes again change nothing; other bytes under a stored revision are refused.
   */
  async push(tenant: string, bytes: Uint8Array, options: { activate?: boolean }, actor: Actor): Promise<RevisionInfo> {
    const bundle = await checkBundle(bytes);
    await this.#change(tenant, async (policies, now) => {
      const signedBy = await verifySignature(policies, bundle.files);
      const events: OutboxEvent[] = [];
      const existing = await policies.bundleMeta(bundle.revision);
      if (existing && existing.sha256 !== bundle.sha256) throw revisionTaken(bundle.revision);
      if (!existing) {
        await policies.insertBundle(bundleRow(bundle, signedBy, bytes.length, now));
        events.push(policyChanged("pushed", pushedDetails(bundle, signedBy, bytes.length), actor));
      }
      const activated = options.activate ? await activation(policies, bundle.revision, now, actor) : undefined;
      if (activated) events.push(activated);
      return { result: undefined, events, ...(activated ? { activeRevision: bundle.revision } : {}) };
    });
    return this.#describe(tenant, bundle.revision);
  }

  /** The tenant's revisions, newest first, and whether it decides with the default policy. */
  async list(tenant: string): Promise<{ revisions: RevisionInfo[]; usesDefault: boolean }> {
    const policies = this.#store.forTenant(tenant).use(PolicyStore);
    const state = await policies.state();
    const bundles = await policies.bundles();
    const times = await policies.activationTimes();
    return {
      revisions: bundles.map((b) => revisionInfo(b, state.activeRevision, times)),
      usesDefault: state.activeRevision === null,
    };
  }

  /** Makes a stored revision the active one (re-verified first when the tenant requires signatures). */
  async activate(tenant: string, revision: string, actor: Actor): Promise<RevisionInfo> {
    await this.#change(tenant, async (policies, now) => {
      await storedVerified(tenant, policies, revision);
      const activated = await activation(policies, revision, now, actor);
      return { result: undefined, events: activated ? [activated] : [], activeRevision: revision };
    });
    return this.#describe(tenant, revision);
  }

  /** Re-activates the revision active before the current one (the history's previous entry). */
  async rollback(tenant: string, actor: Actor): Promise<RevisionInfo> {
    const revision = await this.#change(tenant, async (policies) => {
      const [current, previous] = await policies.latestActivations(2);
      if (!current) {
        throw failedPrecondition(
          `tenant "${tenant}" has no revision of its own active (it decides with the default policy): nothing to roll back`,
          "NO_ACTIVE_REVISION",
        );
      }
      if (!previous) {
        throw failedPrecondition(
          `no revision was active before "${current.revision}": activate the one you want with \`mandate policy activate\``,
          "NO_PREVIOUS_REVISION",
        );
      }
      await storedVerified(tenant, policies, previous.revision);
      await policies.popActivation(current.seq);
      const details = { revision: previous.revision, from: current.revision };
      return {
        result: previous.revision,
        events: [policyChanged("rolled_back", details, actor)],
        activeRevision: previous.revision,
      };
    });
    return this.#describe(tenant, revision);
  }

  /** Sets (or, with `undefined`, removes) a dynamic data document at a slash-separated path. */
  async setData(tenant: string, path: string, value: unknown, actor: Actor): Promise<void> {
    if (!DATA_PATH.test(path) || path.length > 256) {
      throw invalidArgument([{ field: "path", description: "slash-separated identifiers, e.g. bindings/roles" }]);
    }
    const text = value === undefined ? undefined : JSON.stringify(value);
    const size = text === undefined ? 0 : Buffer.byteLength(text);
    if (size > MAX_DATA_VALUE_BYTES) {
      throw invalidArgument([
        {
          field: "value",
          description: `${size} bytes of JSON, more than ${MAX_DATA_VALUE_BYTES}: keep dynamic documents small; put large data in the bundle`,
        },
      ]);
    }
    await this.#change(tenant, async (policies, now) => {
      const changed =
        text === undefined ? await policies.deleteData(path) : await putChanged(policies, path, text, now);
      const details = {
        path,
        removed: text === undefined,
        size_bytes: size,
        ...(text ? { sha256: sha256(text) } : {}),
      };
      return { result: undefined, events: changed ? [policyChanged("data_set", details, actor)] : [] };
    });
  }

  async getData(tenant: string): Promise<DataDocument[]> {
    const rows = await this.#store.forTenant(tenant).use(PolicyStore).data();
    return rows.map((r) => ({ path: r.path, value: JSON.parse(r.value) as unknown, updatedAt: r.updated_at }));
  }

  /** Sets the tenant's verification keys (public JWKs only) and whether bundles must be signed. */
  async setSigning(
    tenant: string,
    settings: { jwks: string; requireSignatures: boolean },
    actor: Actor,
  ): Promise<void> {
    const set = await parseSigningJwks(settings.jwks).catch((error: unknown) => {
      if (error instanceof JwksError) throw invalidArgument([{ field: "jwks", description: error.message }]);
      throw error;
    });
    if (settings.requireSignatures && set.keys.length === 0) {
      throw invalidArgument([{ field: "jwks", description: "requiring signatures needs at least one key" }]);
    }
    const jwks = JSON.stringify(set);
    await this.#change(tenant, async (policies, now) => {
      const existing = await policies.signing();
      if (existing?.jwks === jwks && Boolean(existing.require_signatures) === settings.requireSignatures) {
        return { result: undefined, events: [] };
      }
      await policies.putSigning(jwks, settings.requireSignatures, now);
      const details = { key_ids: set.keys.map((k) => k.kid), require_signatures: settings.requireSignatures };
      return { result: undefined, events: [policyChanged("signing_set", details, actor)] };
    });
  }

  async #describe(tenant: string, revision: string): Promise<RevisionInfo> {
    const policies = this.#store.forTenant(tenant).use(PolicyStore);
    const meta = await policies.bundleMeta(revision);
    if (!meta) throw notFound("policy revision", revision);
    const state = await policies.state();
    return revisionInfo(meta, state.activeRevision, await policies.activationTimes());
  }
}

// --- Steps of the admin operations -----------------------------------------------------------------

/** Verifies a bundle's signature per the tenant's settings; the key id, or null when unsigned. */
async function verifySignature(policies: PolicyStore, files: Map<string, Buffer>): Promise<string | null> {
  const signing = await policies.signing();
  const settings = {
    jwks: signing ? (JSON.parse(signing.jwks) as { keys: [] }) : { keys: [] },
    required: Boolean(signing?.require_signatures),
  };
  try {
    return (await verifyBundleFiles(files, settings)).keyId;
  } catch (error) {
    if (!(error instanceof BundleSignatureError)) throw error;
    // The tenant's settings refuse it (unsigned, unknown key): FAILED_PRECONDITION; the bundle is bad: INVALID_ARGUMENT.
    if (error.fault === "unsigned" || error.fault === "unknown_key") {
      throw failedPrecondition(error.message, `BUNDLE_SIGNATURE_${error.fault.toUpperCase()}`);
    }
    throw invalidArgument([{ field: "bundle", description: error.message, reason: error.fault }]);
  }
}

/** A stored revision, its signature verified again when the tenant now requires signatures. */
async function storedVerified(tenant: string, policies: PolicyStore, revision: string): Promise<void> {
  const stored = await policies.bundle(revision);
  if (!stored) {
    throw notFound(
      "policy revision",
      revision,
      `policy revision "${revision}" of tenant "${tenant}" does not exist: push it first (\`mandate policy push\`)`,
    );
  }
  const signing = await policies.signing();
  if (!signing?.require_signatures) return;
  const { files } = await unpackBundle(Buffer.from(stored.bundle, "base64"));
  await verifySignature(policies, files).catch((error: ConnectError) => {
    throw failedPrecondition(
      `revision "${revision}" cannot be activated: the tenant requires signatures and ${error.rawMessage}`,
      "BUNDLE_SIGNATURE_REQUIRED",
    );
  });
}

/** Appends the activation unless the revision is active already; its audit event. */
async function activation(
  policies: PolicyStore,
  revision: string,
  now: number,
  actor: Actor,
): Promise<OutboxEvent | undefined> {
  const state = await policies.state();
  if (state.activeRevision === revision) return undefined;
  await policies.appendActivation(revision, now);
  return policyChanged("activated", { revision, previous: state.activeRevision }, actor);
}

async function putChanged(policies: PolicyStore, path: string, text: string, now: number): Promise<boolean> {
  const existing = await policies.dataDocument(path);
  if (existing?.value === text) return false;
  await policies.putData(path, text, now);
  return true;
}

function revisionTaken(revision: string): ConnectError {
  const base = alreadyExists("policy revision", revision);
  return new ConnectError(
    `policy revision "${revision}" already exists with other content: give the new bundle its own revision (\`mandate policy build --revision\`)`,
    Code.AlreadyExists,
    undefined,
    base.details as ConstructorParameters<typeof ConnectError>[3],
  );
}

function bundleRow(bundle: CheckedBundle, signedBy: string | null, size: number, now: number) {
  return {
    revision: bundle.revision,
    sha256: bundle.sha256,
    bundle: Buffer.from(bundle.bytes).toString("base64"),
    signed_by: signedBy,
    entrypoints: JSON.stringify(bundle.entrypoints),
    size_bytes: size,
    created_at: now,
  };
}

function pushedDetails(bundle: CheckedBundle, signedBy: string | null, size: number) {
  return {
    revision: bundle.revision,
    sha256: bundle.sha256,
    signed_by: signedBy,
    size_bytes: size,
    entrypoints: bundle.entrypoints,
  };
}

function revisionInfo(meta: BundleMeta, activeRevision: string | null, times: Map<string, number>): RevisionInfo {
  return {
    revision: meta.revision,
    sha256: meta.sha256,
    signedBy: meta.signed_by,
    active: meta.revision === activeRevision,
    createdAt: Number(meta.created_at),
    activatedAt: times.get(meta.revision) ?? null,
    entrypoints: JSON.parse(meta.entrypoints) as string[],
    sizeBytes: Number(meta.size_bytes),
  };
}

function sha256(text: string | Uint8Array): string {
  return createHash("sha256").update(text).digest("hex");
}
