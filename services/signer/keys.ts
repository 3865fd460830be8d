// The key manager: each tenant's keys per purpose, signing with the current one, publishing the
// JWKS, and running the rotation schedule (schedule.ts) against the store and a key backend.
//
// Every replica keeps a view of the key rows, refreshed each `checkMs`; since states follow from
// timestamps scheduled ahead, a view a few seconds old still picks the right signing key. Changes
// to the rows happen in transactions that read the rows afresh under a lock (a PostgreSQL advisory
// lock; SQLite has a single writer), so any replica may bootstrap a tenant or rotate in an
// emergency; the periodic schedule and the crash reconciliation run on the one replica holding the
// `signer-rotation` lease.
import { randomUUID } from "node:crypto";
import { calculateJwkThumbprint, type JWK } from "jose";
import { sql } from "kysely";
import type { Clock } from "../shared/clock.ts";
import { failedPrecondition, invalidArgument, notFound, unavailable } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { Lease } from "../shared/store/lease.ts";
import type { SigningKeysTable } from "../shared/store/schema.ts";
import type { Store, TenantTransaction } from "../shared/store/store.ts";
import { type BackendStatus, type KeyBackend, KeyBackendError, type SigningAlgorithm } from "./backends/backend.ts";
import type { SigningClient } from "./client.ts";
import {
  jwksMaxAgeSeconds,
  KEY_PURPOSES,
  type KeyPurposeName,
  type KeyRecord,
  keyState,
  planEmergencyRotation,
  planRotation,
  publishedKeys,
  type RotationStep,
  signingKey,
  type Timing,
} from "./schedule.ts";

export interface KeyManagerOptions {
  store: Store;
  backend: KeyBackend;
  clock: Clock;
  logger: Logger;
  timing: Timing & { checkMs: number };
  defaultAlgorithm: SigningAlgorithm;
  /** Identifies this replica in the lease. */
  replicaId?: string;
}

export interface JwkSet {
  keys: JWK[];
}

/** Public description of a key, with its state at the time of asking. */
export interface KeyInfo extends KeyRecord {
  state: ReturnType<typeof keyState>;
}

/** Checkpoints follow the C2SP signed-note format, whose signatures are Ed25519. */
const AUDIT_ALGORITHM: SigningAlgorithm = "EdDSA";
const LOCK_KEY = 0x6d616e64; // "mand": PostgreSQL advisory lock serialising key changes
const RECONCILE_EVERY_MS = 60_000;

type ViewKey = `${string}/${KeyPurposeName}`;

interface MadeKey {
  id: string;
  alg: SigningAlgorithm;
  kid: string;
  ref: string;
  publicJwk: JWK;
}

export class KeyManager implements SigningClient {
  readonly #store: Store;
  readonly #backend: KeyBackend;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #timing: Timing & { checkMs: number };
  readonly #defaultAlgorithm: SigningAlgorithm;
  readonly #lease: Lease;
  readonly #views = new Map<ViewKey, KeyRecord[]>();
  #installationId = "";
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #orphanCandidates = new Set<string>();
  #lastReconcile = Number.NEGATIVE_INFINITY;
  #openError: string | undefined;
  #openRetry = false;
  readonly #headers = new Map<string, string>();

  constructor(options: KeyManagerOptions) {
    this.#store = options.store;
    this.#backend = options.backend;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#timing = options.timing;
    this.#defaultAlgorithm = options.defaultAlgorithm;
    const ttl = Math.max(5_000, 3 * options.timing.checkMs);
    this.#lease = new Lease(options.store, options.clock, "signer-rotation", options.replicaId ?? randomUUID(), ttl);
  }

  get backendKind(): string {
    return this.#backend.kind;
  }

  /**
   * Opens the backend and starts the schedule. A misconfigured backend (wrong PIN, missing token)
   * does not stop the process: it stays not ready and every signature fails closed with the reason.
   */
  async start(options: { schedule?: boolean } = {}): Promise<void> {
    this.#installationId = await installationId(this.#store);
    await this.#open();
    if (options.schedule === false) return;
    await this.tick().catch((error) => this.#logger.error({ err: error }, "key schedule round failed"));
    this.#timer = setInterval(() => {
      this.tick().catch((error) => this.#logger.error({ err: error }, "key schedule round failed"));
    }, this.#timing.checkMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#ticking;
    await this.#lease.release().catch(() => {});
    await this.#backend.close();
  }

  status(): BackendStatus {
    if (this.#openError) return { ready: false, detail: this.#openError };
    return this.#backend.status();
  }

  async #open(): Promise<void> {
    try {
      await this.#backend.open();
      if (this.#openError) this.#logger.info({ backend: this.#backend.kind }, "signer key backend reachable again");
      this.#openError = undefined;
      this.#openRetry = false;
    } catch (error) {
      const first = this.#openError === undefined;
      this.#openError = error instanceof Error ? error.message : String(error);
      // Unreachable (e.g. a network HSM still starting) is retried each round; misconfigured is
      // not — retrying a wrong PIN could lock the token.
      this.#openRetry = error instanceof KeyBackendError && error.code === "UNAVAILABLE";
      if (first) {
        this.#logger.error(
          { err: error, backend: this.#backend.kind, retrying: this.#openRetry },
          "signer key backend unavailable; signing fails closed",
        );
      }
    }
  }

  /** One round: refresh the views; on the lease holder, run the schedule and reconcile. */
  tick(): Promise<void> {
    this.#ticking ??= this.#tick().finally(() => {
      this.#ticking = undefined;
    });
    return this.#ticking;
  }

  async #tick(): Promise<void> {
    if (this.#openRetry) await this.#open();
    const leader = this.status().ready && (await this.#lease.acquire());
    if (leader) {
      const now = this.#clock.now();
      if (now - this.#lastReconcile >= RECONCILE_EVERY_MS) await this.#reconcile(now);
      const tenants = await this.#store.db.selectFrom("tenants").select("id").execute();
      for (const tenant of tenants) {
        for (const purpose of KEY_PURPOSES) {
          // One tenant's failure (say, its key generation) must not hold back every other tenant's schedule.
          try {
            const keys = await this.#load(tenant.id, purpose);
            if (planRotation(keys, this.#clock.now(), this.#timing).length === 0) continue;
            await this.#change(tenant.id, purpose, (rows, at) => planRotation(rows, at, this.#timing), "schedule");
          } catch (error) {
            this.#logger.error(
              { err: error, tenant: tenant.id, purpose },
              "key schedule failed for a tenant; retrying next round",
            );
          }
        }
      }
    } else {
      for (const view of this.#views.keys()) {
        const [tenant, purpose] = view.split("/") as [string, KeyPurposeName];
        await this.#load(tenant, purpose);
      }
    }
  }

  /** Signs raw bytes with the current key. Token keys sign only JWTs (see signJwt). */
  async sign(
    tenant: string,
    purpose: KeyPurposeName,
    payload: Uint8Array,
  ): Promise<{ signature: Uint8Array; kid: string; alg: string }> {
    if (purpose === "token_signing") {
      throw invalidArgument(
        [{ field: "purpose", description: "token keys sign only through SignJwt" }],
        "token keys sign only through SignJwt, which enforces the token lifetime",
      );
    }
    const key = await this.#signingKey(tenant, purpose);
    return { signature: await this.#signWith(key, payload), kid: key.kid, alg: key.alg };
  }

  /**
   * Signs a JWT with the tenant's current token key. `exp` is required and may not be later than
   * now + overlap: the key stays published at least that long after it stops signing, so every
   * token it signs verifies against the JWKS for its whole life (RFC 7519 §4.1.4).
   */
  async signJwt(
    tenant: string,
    claims: Record<string, unknown>,
    typ?: string,
  ): Promise<{ jwt: string; kid: string; alg: string }> {
    const now = this.#clock.now();
    const exp = claims.exp;
    if (typeof exp !== "number" || !Number.isFinite(exp)) {
      throw invalidArgument([{ field: "claims", description: "a numeric exp (seconds since the epoch) is required" }]);
    }
    const longest = Math.floor((now + this.#timing.overlapMs) / 1000);
    if (exp > longest) {
      throw invalidArgument([
        {
          field: "claims",
          description: `exp is ${exp - Math.floor(now / 1000)} s away; the longest lifetime signed is ${Math.floor(this.#timing.overlapMs / 1000)} s (signer.overlap)`,
        },
      ]);
    }
    const found = this.#signingKey(tenant, "token_signing");
    const key = found instanceof Promise ? await found : found; // no extra turn on the hot path
    const input = `${this.#encodedHeader(key, typ)}.${b64(JSON.stringify(claims))}`;
    const signature = await this.#signWith(key, Buffer.from(input));
    const encoded = Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString("base64url");
    return { jwt: `${input}.${encoded}`, kid: key.kid, alg: key.alg };
  }

  /** Only the Signer sets the header parameters that pick a key (RFC 8725 §3.1): alg, kid, typ. */
  #encodedHeader(key: KeyRecord, typ: string | undefined): string {
    const cacheKey = `${key.kid}|${typ ?? ""}`;
    let encoded = this.#headers.get(cacheKey);
    if (encoded === undefined) {
      const header: Record<string, string> = { alg: key.alg, kid: key.kid };
      if (typ) header.typ = typ;
      encoded = b64(JSON.stringify(header));
      if (this.#headers.size >= 256) this.#headers.clear(); // a few kids × a few typs in practice
      this.#headers.set(cacheKey, encoded);
    }
    return encoded;
  }

  /** The tenant's published public keys for a purpose (RFC 7517 §5) and how long they may be cached. */
  async jwks(tenant: string, purpose: KeyPurposeName): Promise<{ jwks: JwkSet; maxAgeSeconds: number }> {
    let keys = this.#views.get(`${tenant}/${purpose}`) ?? (await this.#load(tenant, purpose));
    if (!signingKey(keys, this.#clock.now()))
      keys = await this.#ensureSigningKey(tenant, purpose).then(() => this.#load(tenant, purpose));
    const jwks = publishedKeys(keys, this.#clock.now()).map((key) => ({
      ...key.publicJwk,
      kid: key.kid,
      use: "sig",
      alg: key.alg,
    }));
    return { jwks: { keys: jwks }, maxAgeSeconds: jwksMaxAgeSeconds(this.#timing) };
  }

  async listKeys(tenant: string, purpose?: KeyPurposeName): Promise<KeyInfo[]> {
    const purposes = purpose ? [purpose] : KEY_PURPOSES;
    const now = this.#clock.now();
    const rows = await this.#store
      .forTenant(tenant)
      .db.selectFrom("signing_keys")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("purpose", "in", [...purposes])
      .orderBy("activate_at", "desc")
      .execute();
    return rows.map(toRecord).map((key) => ({ ...key, state: keyState(key, now) }));
  }

  /**
   * Emergency rotation (see planEmergencyRotation); returns the keys afterwards. `by` names the
   * administrator who asked, in the audit events.
   */
  async rotate(
    tenant: string,
    purpose: KeyPurposeName,
    revoke: boolean,
    reason: string,
    by?: Record<string, string>,
  ): Promise<KeyInfo[]> {
    this.#requireReady();
    await this.#change(
      tenant,
      purpose,
      (rows, now) => planEmergencyRotation(rows, now, this.#timing, revoke),
      reason || "emergency rotation",
      by,
    );
    // Destroying a revoked key need not wait for the next round.
    await this.#change(
      tenant,
      purpose,
      (rows, now) => planRotation(rows, now, this.#timing).filter((s) => s.kind === "destroy"),
      "cleanup",
    );
    return this.listKeys(tenant, purpose);
  }

  /** The current key; synchronous on the hot path (the view holds it), async only on first use. */
  #signingKey(tenant: string, purpose: KeyPurposeName): KeyRecord | Promise<KeyRecord> {
    this.#requireReady();
    const view = this.#views.get(`${tenant}/${purpose}`);
    const key = view && signingKey(view, this.#clock.now());
    return key ?? this.#firstSigningKey(tenant, purpose);
  }

  async #firstSigningKey(tenant: string, purpose: KeyPurposeName): Promise<KeyRecord> {
    let key = signingKey(await this.#load(tenant, purpose), this.#clock.now());
    if (!key) {
      await this.#ensureSigningKey(tenant, purpose);
      key = signingKey(await this.#load(tenant, purpose), this.#clock.now());
    }
    if (!key)
      throw unavailable(`no signing key for tenant "${tenant}" (${purpose}) yet; retry shortly`, "NO_SIGNING_KEY");
    return key;
  }

  async #ensureSigningKey(tenant: string, purpose: KeyPurposeName): Promise<void> {
    this.#requireReady();
    const known = await this.#store.db.selectFrom("tenants").select("id").where("id", "=", tenant).executeTakeFirst();
    if (!known) throw notFound("tenant", tenant);
    await this.#change(
      tenant,
      purpose,
      (rows, now) => planRotation(rows, now, this.#timing).filter((s) => s.kind !== "destroy"),
      "first use",
    );
  }

  #signWith(key: KeyRecord, data: Uint8Array): Promise<Uint8Array> {
    return this.#backend.sign(key.ref, key.alg, data).catch((error: unknown) => {
      throw backendFailure(error);
    });
  }

  #requireReady(): void {
    const status = this.status();
    if (!status.ready) throw unavailable(`signing is unavailable: ${status.detail}`, "SIGNER_NOT_READY");
  }

  async #load(tenant: string, purpose: KeyPurposeName): Promise<KeyRecord[]> {
    const rows = await this.#store
      .forTenant(tenant)
      .db.selectFrom("signing_keys")
      .selectAll()
      .where("tenant_id", "=", tenant)
      .where("purpose", "=", purpose)
      .where("destroyed_at", "is", null)
      .execute();
    const keys = rows.map(toRecord);
    this.#views.set(`${tenant}/${purpose}`, keys);
    return keys;
  }

  /**
   * Applies a plan computed from the rows as they are under the lock, with its audit events.
   * Keys the plan needs are made in the backend first, outside the transaction (an HSM call must not
   * hold a database lock, and the software keystore writes through the store itself): a crash after
   * that leaves only unrecorded backend objects, which reconciliation destroys — never a recorded key
   * without its private half. Keys made but no longer needed once under the lock are destroyed.
   */
  async #change(
    tenant: string,
    purpose: KeyPurposeName,
    plan: (rows: KeyRecord[], now: number) => RotationStep[],
    reason: string,
    by?: Record<string, string>,
  ): Promise<void> {
    const scoped = this.#store.forTenant(tenant);
    const needed = plan(await this.#load(tenant, purpose), this.#clock.now()).filter((s) => s.kind === "create").length;
    const made: MadeKey[] = [];
    if (needed > 0) {
      const alg = await this.#algorithmFor(tenant, purpose);
      for (let i = 0; i < needed; i++) made.push(await this.#make(tenant, purpose, alg));
    }
    const destroyed: Array<{ id: string; ref: string }> = [];
    const unused = [...made];
    try {
      await scoped.transaction(async (tx) => {
        if (this.#store.engine === "postgres") await sql`select pg_advisory_xact_lock(${LOCK_KEY})`.execute(tx);
        const rows = (
          await tx
            .selectFrom("signing_keys")
            .selectAll()
            .where("tenant_id", "=", tenant)
            .where("purpose", "=", purpose)
            .where("destroyed_at", "is", null)
            .execute()
        ).map(toRecord);
        const now = this.#clock.now();
        for (const step of plan(rows, now)) {
          if (step.kind === "destroy") destroyed.push(step);
          else await this.#applyStep(tx, tenant, purpose, step, rows, now, reason, unused, by);
        }
      });
    } catch (error) {
      for (const key of made) await this.#backend.destroy(key.ref).catch(() => {});
      throw error;
    }
    // Made but not needed once under the lock (another replica got there first).
    for (const key of unused) await this.#backend.destroy(key.ref).catch(() => {});
    // The private key goes first; its row is marked after, so a crash in between only repeats an
    // idempotent destroy at the next round.
    for (const { id, ref } of destroyed) {
      try {
        await this.#backend.destroy(ref);
      } catch (error) {
        throw backendFailure(error);
      }
      await scoped.transaction(async (tx) => {
        const now = this.#clock.now();
        await tx
          .updateTable("signing_keys")
          .set({ destroyed_at: now })
          .where("tenant_id", "=", tenant)
          .where("id", "=", id)
          .execute();
        await scoped.recordEvent(tx, keyEvent("key.destroyed.v1", { id, purpose, backend: this.#backend.kind }), now);
      });
      this.#logger.info({ tenant, purpose, key: id }, "signing key destroyed");
    }
    await this.#load(tenant, purpose);
  }

  async #make(tenant: string, purpose: KeyPurposeName, alg: SigningAlgorithm): Promise<MadeKey> {
    const id = randomUUID();
    try {
      const generated = await this.#backend.generate(alg, `mandate:${this.#installationId}:${tenant}:${purpose}:${id}`);
      const kid = await calculateJwkThumbprint(generated.publicJwk, "sha256"); // RFC 7638 §3
      return { id, alg, kid, ...generated };
    } catch (error) {
      throw backendFailure(error);
    }
  }

  async #applyStep(
    tx: TenantTransaction,
    tenant: string,
    purpose: KeyPurposeName,
    step: Exclude<RotationStep, { kind: "destroy" }>,
    rows: KeyRecord[],
    now: number,
    reason: string,
    made: MadeKey[],
    by: Record<string, string> | undefined,
  ): Promise<void> {
    const scoped = this.#store.forTenant(tenant);
    const where = (id: string) => tx.updateTable("signing_keys").where("tenant_id", "=", tenant).where("id", "=", id);
    if (step.kind === "create") {
      const key = made.shift();
      // Another replica changed the keys between the plan and the lock: the next round catches up.
      if (!key) throw unavailable("keys changed during rotation; retry", "KEYS_CHANGED");
      const row: SigningKeysTable = {
        tenant_id: tenant,
        id: key.id,
        purpose,
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
      await tx.insertInto("signing_keys").values(row).execute();
      const details = {
        id: key.id,
        kid: key.kid,
        purpose,
        alg: key.alg,
        backend: row.backend,
        reason: `${step.reason}: ${reason}`,
        ...schedule(row),
      };
      await scoped.recordEvent(tx, keyEvent("key.created.v1", details, by), now);
      this.#logger.info({ tenant, ...details }, "signing key created");
    } else if (step.kind === "reschedule") {
      const key = rows.find((row) => row.id === step.id);
      await where(step.id)
        .set({ activate_at: step.activateAt, retire_at: step.retireAt, unpublish_at: step.unpublishAt })
        .execute();
      const details = {
        id: step.id,
        kid: key?.kid,
        purpose,
        reason: `${step.reason}: ${reason}`,
        activate_at: step.activateAt,
        retire_at: step.retireAt,
        unpublish_at: step.unpublishAt,
      };
      await scoped.recordEvent(tx, keyEvent("key.rescheduled.v1", details, by), now);
      this.#logger.info({ tenant, ...details }, "signing key rescheduled");
    } else {
      const key = rows.find((row) => row.id === step.id);
      await where(step.id).set({ revoked_at: now }).execute();
      await scoped.recordEvent(
        tx,
        keyEvent("key.revoked.v1", { id: step.id, kid: key?.kid, purpose, reason }, by),
        now,
      );
      this.#logger.warn({ tenant, key: step.id, kid: key?.kid, purpose, reason }, "signing key revoked");
    }
  }

  async #algorithmFor(tenant: string, purpose: KeyPurposeName): Promise<SigningAlgorithm> {
    if (purpose === "audit_checkpoint") return AUDIT_ALGORITHM;
    const row = await this.#store.db
      .selectFrom("tenants")
      .select("token_signing_alg")
      .where("id", "=", tenant)
      .executeTakeFirst();
    return (row?.token_signing_alg as SigningAlgorithm | null) ?? this.#defaultAlgorithm;
  }

  /**
   * Destroys backend keys no row refers to: made by a rotation that crashed before it committed.
   * A key is destroyed only when it was already unreferenced one pass earlier, so a rotation that
   * is committing right now on another replica is never caught in between.
   */
  async #reconcile(now: number): Promise<void> {
    this.#lastReconcile = now;
    const refs = await this.#backend.listRefs(`mandate:${this.#installationId}:`);
    const known = new Set(
      (
        await this.#store.db
          .selectFrom("signing_keys")
          .select("backend_ref")
          .where("backend", "=", this.#backend.kind)
          .execute()
      ).map((row) => row.backend_ref),
    );
    const orphans = refs.filter((ref) => !known.has(ref));
    for (const ref of orphans) {
      if (!this.#orphanCandidates.has(ref)) continue;
      await this.#backend.destroy(ref);
      this.#logger.warn(
        { ref, backend: this.#backend.kind },
        "destroyed a key no record refers to (left by an interrupted rotation)",
      );
    }
    this.#orphanCandidates = new Set(orphans.filter((ref) => !this.#orphanCandidates.has(ref)));
  }
}

function toRecord(row: SigningKeysTable): KeyRecord {
  return {
    id: row.id,
    tenant: row.tenant_id,
    purpose: row.purpose as KeyPurposeName,
    kid: row.kid,
    alg: row.alg as SigningAlgorithm,
    backend: row.backend,
    ref: row.backend_ref,
    publicJwk: JSON.parse(row.public_jwk) as JWK,
    createdAt: Number(row.created_at),
    publishAt: Number(row.publish_at),
    activateAt: Number(row.activate_at),
    retireAt: Number(row.retire_at),
    unpublishAt: Number(row.unpublish_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
    destroyedAt: row.destroyed_at === null ? null : Number(row.destroyed_at),
  };
}

function schedule(row: SigningKeysTable) {
  return {
    publish_at: row.publish_at,
    activate_at: row.activate_at,
    retire_at: row.retire_at,
    unpublish_at: row.unpublish_at,
  };
}

function keyEvent(type: string, payload: Record<string, unknown>, by?: Record<string, string>) {
  return { eventId: randomUUID(), type, payload: by ? { ...payload, by } : payload };
}

function b64(text: string): string {
  return Buffer.from(text).toString("base64url");
}

/** Backend failures become UNAVAILABLE (retry) or FAILED_PRECONDITION (an operator must act). */
function backendFailure(error: unknown): Error {
  if (!(error instanceof KeyBackendError)) return error as Error;
  if (error.code === "UNAVAILABLE")
    return unavailable(`key backend unavailable: ${error.message}`, "KEY_BACKEND_UNAVAILABLE");
  if (error.code === "KEY_NOT_FOUND")
    return failedPrecondition(`signing key missing from the backend: ${error.message}`, "KEY_MISSING");
  return failedPrecondition(`key backend: ${error.message}`, "KEY_BACKEND_MISCONFIGURED");
}

/** This installation's id, made once: it prefixes the labels of its backend objects. */
async function installationId(store: Store): Promise<string> {
  const candidate = randomUUID().slice(0, 8);
  await store.db
    .insertInto("settings")
    .values({ name: "installation_id", value: candidate })
    .onConflict((c) => c.column("name").doNothing())
    .execute();
  const row = await store.db
    .selectFrom("settings")
    .select("value")
    .where("name", "=", "installation_id")
    .executeTakeFirstOrThrow();
  return row.value;
}
