// The applier of the key schedule (schedule.ts): it carries out the steps planned from the rows as
// they are under a lock, against the store and the key backend, with their audit events.
//
// Changes to the rows happen in transactions that read the rows afresh under a lock (a PostgreSQL
// advisory lock; SQLite has a single writer), so any replica may bootstrap a tenant or rotate in an
// emergency; the periodic schedule runs on the one replica holding the `signer-rotation` lease.

import { randomUUID } from "node:crypto";
import { calculateJwkThumbprint, type JWK } from "jose";
import { sql } from "kysely";
import { keyCreated, keyDestroyed, keyRescheduled, keyRevoked } from "../shared/audit-events.ts";
import type { Clock } from "../shared/clock.ts";
import { notFound, unavailable } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { KEY_PURPOSES, type KeyPurposeName } from "../shared/signing.ts";
import type { SigningKeysTable } from "../shared/store/schema.ts";
import type { Store, TenantStore, TenantTransaction } from "../shared/store/store.ts";
import { backendFailure } from "./backend-readiness.ts";
import type { KeyBackend, SigningAlgorithm } from "./backends/backend.ts";
import { SigningKeyRecords } from "./key-records.ts";
import { isAgentCaPurpose } from "./key-signer.ts";
import type { KeyViews } from "./key-views.ts";
import type { BackendLabels } from "./reconcile.ts";
import {
  type KeyRecord,
  planEmergencyRotation,
  planRevokeAll,
  planRotation,
  type RotationStep,
  type Timing,
} from "./schedule.ts";

/** Checkpoints follow the C2SP signed-note format, whose signatures are Ed25519. */
const AUDIT_ALGORITHM: SigningAlgorithm = "EdDSA";
/** Agent CA keys are P-256: the curve every TLS stack verifies (RFC 8446 §9.1, RFC 5480). */
const AGENT_CA_ALGORITHM: SigningAlgorithm = "ES256";
const LOCK_KEY = 0x6d616e64; // "mand": PostgreSQL advisory lock serialising key changes

export interface KeyRotationOptions {
  store: Store;
  backend: KeyBackend;
  clock: Clock;
  logger: Logger;
  /** Each purpose's schedule: token and audit keys follow signer.*, agent CA keys agents.ca.*. */
  timing: (purpose: KeyPurposeName) => Timing;
  defaultAlgorithm: SigningAlgorithm;
  views: KeyViews;
  labels: BackendLabels;
}

/** A change to one tenant purpose's keys: the plan, computed again from the rows under the lock. */
interface ChangeRequest {
  tenant: string;
  purpose: KeyPurposeName;
  plan: (rows: KeyRecord[], now: number) => RotationStep[];
  /** Why, in the audit events (after the step's own reason). */
  reason: string;
  /** The administrator who asked, in the audit events. */
  by?: Record<string, string> | undefined;
}

/** A key made in the backend ahead of the transaction that records it. */
interface MadeKey {
  id: string;
  alg: SigningAlgorithm;
  kid: string;
  ref: string;
  publicJwk: JWK;
}

/** Where a step is applied: inside the change's transaction, on the rows as read under the lock. */
interface LockedChange {
  request: ChangeRequest;
  scoped: TenantStore;
  tx: TenantTransaction;
  records: SigningKeyRecords;
  rows: KeyRecord[];
  now: number;
  /** Keys made ahead and not yet recorded; each create step takes the next. */
  unused: MadeKey[];
}

type DestroyStep = Extract<RotationStep, { kind: "destroy" }>;
type RecordedStep = Exclude<RotationStep, { kind: "destroy" }>;

export class KeyRotation {
  readonly #store: Store;
  readonly #backend: KeyBackend;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #timing: (purpose: KeyPurposeName) => Timing;
  readonly #defaultAlgorithm: SigningAlgorithm;
  readonly #views: KeyViews;
  readonly #labels: BackendLabels;

  constructor(options: KeyRotationOptions) {
    this.#store = options.store;
    this.#backend = options.backend;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#timing = options.timing;
    this.#defaultAlgorithm = options.defaultAlgorithm;
    this.#views = options.views;
    this.#labels = options.labels;
  }

  /** The lease holder's round: every tenant purpose kept on schedule. */
  async runSchedule(): Promise<void> {
    const tenants = await this.#store.db.selectFrom("tenants").select("id").execute();
    for (const tenant of tenants) {
      for (const purpose of KEY_PURPOSES) await this.#keepOnSchedule(tenant.id, purpose, !isAgentCaPurpose(purpose));
    }
  }

  /** Makes the first key of a tenant purpose, or promotes a waiting one (never destroys on this path). */
  async ensureSigningKey(tenant: string, purpose: KeyPurposeName): Promise<void> {
    const known = await this.#store.db.selectFrom("tenants").select("id").where("id", "=", tenant).executeTakeFirst();
    if (!known) throw notFound("tenant", tenant);
    await this.#change({
      tenant,
      purpose,
      plan: (rows, now) => planRotation(rows, now, this.#timing(purpose)).filter((s) => s.kind !== "destroy"),
      reason: "first use",
    });
  }

  /** Emergency rotation (see planEmergencyRotation). */
  async rotateNow(
    tenant: string,
    purpose: KeyPurposeName,
    options: { revoke: boolean; reason: string; by?: Record<string, string> | undefined },
  ): Promise<void> {
    await this.#change({
      tenant,
      purpose,
      plan: (rows, now) => planEmergencyRotation(rows, now, this.#timing(purpose), options.revoke),
      reason: options.reason || "emergency rotation",
      by: options.by,
    });
    await this.#destroyRevoked(tenant, purpose);
  }

  /** Revokes every key of the purpose still out and makes a new one that signs now (planRevokeAll). */
  async revokeAll(
    tenant: string,
    purpose: KeyPurposeName,
    options: { reason: string; by?: Record<string, string> | undefined },
  ): Promise<void> {
    await this.#change({
      tenant,
      purpose,
      plan: (rows, now) => planRevokeAll(rows, now, this.#timing(purpose)),
      reason: options.reason,
      by: options.by,
    });
    await this.#destroyRevoked(tenant, purpose);
  }

  /** Destroying a revoked key need not wait for the next round. */
  async #destroyRevoked(tenant: string, purpose: KeyPurposeName): Promise<void> {
    await this.#change({
      tenant,
      purpose,
      plan: (rows, now) => planRotation(rows, now, this.#timing(purpose)).filter((s) => s.kind === "destroy"),
      reason: "cleanup",
    });
  }

  /**
   * `bootstrap`: whether the round makes a tenant's first key of the purpose. Agent CA keys are made
   * on first use only (services/signer/ca/), so tenants without agents hold no CA keys in the HSM;
   * once made, the round keeps them on schedule like any other.
   */
  async #keepOnSchedule(tenant: string, purpose: KeyPurposeName, bootstrap: boolean): Promise<void> {
    // One tenant's failure (say, its key generation) must not hold back every other tenant's schedule.
    try {
      const keys = await this.#views.load(tenant, purpose);
      if (!bootstrap && keys.length === 0) return;
      const timing = this.#timing(purpose);
      if (planRotation(keys, this.#clock.now(), timing).length === 0) return;
      await this.#change({
        tenant,
        purpose,
        plan: (rows, at) => planRotation(rows, at, timing),
        reason: "schedule",
      });
    } catch (error) {
      this.#logger.error({ err: error, tenant, purpose }, "key schedule failed for a tenant; retrying next round");
    }
  }

  /**
   * Applies a plan computed from the rows as they are under the lock, with its audit events.
   * Keys the plan needs are made in the backend first, outside the transaction (an HSM call must not
   * hold a database lock, and the software keystore writes through the store itself): a crash after
   * that leaves only unrecorded backend objects, which reconciliation destroys — never a recorded key
   * without its private half. Keys made but no longer needed once under the lock are destroyed.
   */
  async #change(request: ChangeRequest): Promise<void> {
    const { tenant, purpose } = request;
    const made = await this.#makeKeys(request);
    let planned: { destroy: DestroyStep[]; unused: MadeKey[] };
    try {
      planned = await this.#store.forTenant(tenant).transaction((tx) => this.#applyLocked(request, tx, made));
    } catch (error) {
      for (const key of made) await this.#backend.destroy(key.ref).catch(() => {});
      throw error;
    }
    // Made but not needed once under the lock (another replica got there first).
    for (const key of planned.unused) await this.#backend.destroy(key.ref).catch(() => {});
    for (const step of planned.destroy) await this.#destroy(request, step);
    await this.#views.load(tenant, purpose);
  }

  /** As many keys as the plan creates on the rows as seen now, made in the backend. */
  async #makeKeys(request: ChangeRequest): Promise<MadeKey[]> {
    const { tenant, purpose } = request;
    const seen = await this.#views.load(tenant, purpose);
    const needed = request.plan(seen, this.#clock.now()).filter((s) => s.kind === "create").length;
    const made: MadeKey[] = [];
    if (needed === 0) return made;
    const alg = await this.#algorithmFor(tenant, purpose);
    for (let i = 0; i < needed; i++) made.push(await this.#make(tenant, purpose, alg));
    return made;
  }

  async #make(tenant: string, purpose: KeyPurposeName, alg: SigningAlgorithm): Promise<MadeKey> {
    const id = randomUUID();
    try {
      const generated = await this.#backend.generate(alg, this.#labels.forKey(tenant, purpose, id));
      const kid = await calculateJwkThumbprint(generated.publicJwk, "sha256"); // RFC 7638 §3
      return { id, alg, kid, ...generated };
    } catch (error) {
      throw backendFailure(error);
    }
  }

  /** Under the lock: the plan on the rows as they are, its recorded steps applied; destroys come after. */
  async #applyLocked(
    request: ChangeRequest,
    tx: TenantTransaction,
    made: readonly MadeKey[],
  ): Promise<{ destroy: DestroyStep[]; unused: MadeKey[] }> {
    if (this.#store.engine === "postgres") await sql`select pg_advisory_xact_lock(${LOCK_KEY})`.execute(tx);
    const scoped = this.#store.forTenant(request.tenant);
    const records = scoped.use(SigningKeyRecords, tx);
    const rows = await records.live(request.purpose);
    const change: LockedChange = { request, scoped, tx, records, rows, now: this.#clock.now(), unused: [...made] };
    const destroy: DestroyStep[] = [];
    for (const step of request.plan(rows, change.now)) {
      if (step.kind === "destroy") destroy.push(step);
      else await this.#applyStep(change, step);
    }
    return { destroy, unused: change.unused };
  }

  #applyStep(change: LockedChange, step: RecordedStep): Promise<void> {
    if (step.kind === "create") return this.#create(change, step);
    if (step.kind === "reschedule") return this.#reschedule(change, step);
    return this.#revoke(change, step);
  }

  async #create(change: LockedChange, step: Extract<RotationStep, { kind: "create" }>): Promise<void> {
    const { request, now } = change;
    const key = change.unused.shift();
    // Another replica changed the keys between the plan and the lock: the next round catches up.
    if (!key) throw unavailable("keys changed during rotation; retry", "KEYS_CHANGED");
    const row: SigningKeysTable = {
      tenant_id: request.tenant,
      id: key.id,
      purpose: request.purpose,
      kid: key.kid,
      alg: key.alg,
      backend: this.#backend.kind,
      backend_ref: key.ref,
      public_jwk: JSON.stringify(key.publicJwk),
      created_at: now,
      publish_at: step.publishAt,
      activate_at: step.activateAt,
      retire_at: step.retireAt,
      unpublish_at: step.unpublishAt,
      revoked_at: null,
      destroyed_at: null,
    };
    await change.records.insert(row);
    const details = {
      id: key.id,
      kid: key.kid,
      purpose: request.purpose,
      alg: key.alg,
      backend: row.backend,
      reason: `${step.reason}: ${request.reason}`,
      ...schedule(row),
    };
    await change.scoped.recordEvent(change.tx, keyCreated(details, request.by), now);
    this.#logger.info({ tenant: request.tenant, ...details }, "signing key created");
  }

  async #reschedule(change: LockedChange, step: Extract<RotationStep, { kind: "reschedule" }>): Promise<void> {
    const { request, now } = change;
    const key = change.rows.find((row) => row.id === step.id);
    await change.records.reschedule(step.id, step);
    const details = {
      id: step.id,
      kid: key?.kid,
      purpose: request.purpose,
      reason: `${step.reason}: ${request.reason}`,
      activate_at: step.activateAt,
      retire_at: step.retireAt,
      unpublish_at: step.unpublishAt,
    };
    await change.scoped.recordEvent(change.tx, keyRescheduled(details, request.by), now);
    this.#logger.info({ tenant: request.tenant, ...details }, "signing key rescheduled");
  }

  async #revoke(change: LockedChange, step: Extract<RotationStep, { kind: "revoke" }>): Promise<void> {
    const { request, now } = change;
    const { tenant, purpose, reason, by } = request;
    const key = change.rows.find((row) => row.id === step.id);
    await change.records.revoke(step.id, now);
    await change.scoped.recordEvent(change.tx, keyRevoked({ id: step.id, kid: key?.kid, purpose, reason }, by), now);
    this.#logger.warn({ tenant, key: step.id, kid: key?.kid, purpose, reason }, "signing key revoked");
  }

  /**
   * The private key goes first; its row is marked after, so a crash in between only repeats an
   * idempotent destroy at the next round.
   */
  async #destroy(request: ChangeRequest, { id, ref }: DestroyStep): Promise<void> {
    const { tenant, purpose } = request;
    try {
      await this.#backend.destroy(ref);
    } catch (error) {
      throw backendFailure(error);
    }
    const scoped = this.#store.forTenant(tenant);
    await scoped.transaction(async (tx) => {
      const now = this.#clock.now();
      await scoped.use(SigningKeyRecords, tx).markDestroyed(id, now);
      await scoped.recordEvent(tx, keyDestroyed({ id, purpose, backend: this.#backend.kind }), now);
    });
    this.#logger.info({ tenant, purpose, key: id }, "signing key destroyed");
  }

  async #algorithmFor(tenant: string, purpose: KeyPurposeName): Promise<SigningAlgorithm> {
    if (purpose === "audit_checkpoint") return AUDIT_ALGORITHM;
    if (isAgentCaPurpose(purpose)) return AGENT_CA_ALGORITHM;
    const row = await this.#store.db
      .selectFrom("tenants")
      .select("token_signing_alg")
      .where("id", "=", tenant)
      .executeTakeFirst();
    return (row?.token_signing_alg as SigningAlgorithm | null) ?? this.#defaultAlgorithm;
  }
}

function schedule(row: SigningKeysTable) {
  return {
    publish_at: row.publish_at,
    activate_at: row.activate_at,
    retire_at: row.retire_at,
    unpublish_at: row.unpublish_at,
  };
}
