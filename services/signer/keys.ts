// The key manager: each tenant's keys per purpose, signing with the current one, publishing the
// JWKS, and running the rotation schedule (schedule.ts) against the store and a key backend. Each
// job lives in its own module; this façade wires them and is what services call (a SigningClient).
//
//   key-records.ts       the `signing_keys` rows          key-views.ts  this replica's view of them
//   key-signer.ts        what may be signed, and how      jwks.ts       the published JWK Set
//   rotation.ts          the schedule's applier           reconcile.ts  orphaned backend objects
//   backend-readiness.ts whether the backend can sign, and its failures as API errors
//
// Every replica keeps a view of the key rows, refreshed each `checkMs`; the periodic schedule and the
// crash reconciliation run on the one replica holding the `signer-rotation` lease.
import type { Clock } from "../shared/clock.ts";
import { unavailable } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { KEY_PURPOSES, type KeyPurposeName, type SigningClient } from "../shared/signing.ts";
import { Lease, leaseHolderId } from "../shared/store/lease.ts";
import type { Store } from "../shared/store/store.ts";
import { BackendReadiness } from "./backend-readiness.ts";
import type { BackendStatus, KeyBackend, SigningAlgorithm } from "./backends/backend.ts";
import { type JwkSet, jwkSet } from "./jwks.ts";
import { SigningKeyRecords } from "./key-records.ts";
import { KeySigner, requireJwksPurpose, requireRawSigningPurpose, requireTokenLifetime } from "./key-signer.ts";
import { KeyViews } from "./key-views.ts";
import { BackendLabels, OrphanReconciler } from "./reconcile.ts";
import { KeyRotation } from "./rotation.ts";
import { jwksMaxAgeSeconds, type KeyRecord, keyState, signingKey, type Timing } from "./schedule.ts";

export type { JwkSet } from "./jwks.ts";

export interface KeyManagerOptions {
  store: Store;
  backend: KeyBackend;
  clock: Clock;
  logger: Logger;
  /** The schedule of token and audit keys (signer.*), and of any purpose not in `purposeTiming`. */
  timing: Timing & { checkMs: number };
  /** Purposes on their own schedule: the agent CA's root and intermediates (ca/timing.ts). */
  purposeTiming?: Partial<Record<KeyPurposeName, Timing>>;
  defaultAlgorithm: SigningAlgorithm;
  /** Identifies this replica in the lease. */
  replicaId?: string;
}

/** Public description of a key, with its state at the time of asking. */
export interface KeyInfo extends KeyRecord {
  state: ReturnType<typeof keyState>;
}

export class KeyManager implements SigningClient {
  readonly #store: Store;
  readonly #backend: KeyBackend;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #timing: Timing & { checkMs: number };
  readonly #purposeTiming: Partial<Record<KeyPurposeName, Timing>>;
  readonly #lease: Lease;
  readonly #readiness: BackendReadiness;
  readonly #labels = new BackendLabels();
  readonly #views: KeyViews;
  readonly #signer: KeySigner;
  readonly #rotation: KeyRotation;
  readonly #reconciler: OrphanReconciler;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;

  constructor(options: KeyManagerOptions) {
    const { store, backend, clock, logger, timing } = options;
    this.#store = store;
    this.#backend = backend;
    this.#clock = clock;
    this.#logger = logger;
    this.#timing = timing;
    this.#purposeTiming = options.purposeTiming ?? {};
    const ttl = Math.max(5_000, 3 * timing.checkMs);
    this.#lease = new Lease(store, clock, "signer-rotation", options.replicaId ?? leaseHolderId(), ttl);
    this.#readiness = new BackendReadiness(backend, logger);
    this.#views = new KeyViews(store);
    this.#signer = new KeySigner(backend);
    this.#rotation = new KeyRotation({
      store,
      backend,
      clock,
      logger,
      timing: (purpose) => this.timingFor(purpose),
      defaultAlgorithm: options.defaultAlgorithm,
      views: this.#views,
      labels: this.#labels,
    });
    this.#reconciler = new OrphanReconciler(store, backend, this.#labels, logger);
  }

  /** The rotation schedule of a purpose's keys. */
  timingFor(purpose: KeyPurposeName): Timing {
    return this.#purposeTiming[purpose] ?? this.#timing;
  }

  get backendKind(): string {
    return this.#backend.kind;
  }

  /**
   * Opens the backend and starts the schedule. A misconfigured backend (wrong PIN, missing token)
   * does not stop the process: it stays not ready and every signature fails closed with the reason.
   */
  async start(options: { schedule?: boolean } = {}): Promise<void> {
    await this.#labels.load(this.#store);
    await this.#readiness.open();
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
    return this.#readiness.status();
  }

  /** One round: refresh the views; on the lease holder, run the schedule and reconcile. */
  tick(): Promise<void> {
    this.#ticking ??= this.#tick().finally(() => {
      this.#ticking = undefined;
    });
    return this.#ticking;
  }

  async #tick(): Promise<void> {
    await this.#readiness.retryIfUnreachable();
    const leader = this.status().ready && (await this.#lease.acquire());
    if (!leader) return this.#views.refresh();
    await this.#reconciler.runIfDue(this.#clock.now());
    await this.#rotation.runSchedule();
  }

  /** Signs raw bytes with the current key. Token keys sign only JWTs (see signJwt). */
  async sign(
    tenant: string,
    purpose: KeyPurposeName,
    payload: Uint8Array,
  ): Promise<{ signature: Uint8Array; kid: string; alg: string }> {
    requireRawSigningPurpose(purpose);
    const key = await this.#signingKey(tenant, purpose);
    return { signature: await this.#signer.signWith(key, payload), kid: key.kid, alg: key.alg };
  }

  /** Signs a JWT with the tenant's current token key; `exp` is bounded (see requireTokenLifetime). */
  async signJwt(
    tenant: string,
    claims: Record<string, unknown>,
    typ?: string,
  ): Promise<{ jwt: string; kid: string; alg: string }> {
    requireTokenLifetime(claims, this.#clock.now(), this.#timing.overlapMs);
    const found = this.#signingKey(tenant, "token_signing");
    const key = found instanceof Promise ? await found : found; // no extra turn on the hot path
    return { jwt: await this.#signer.signJwt(key, claims, typ), kid: key.kid, alg: key.alg };
  }

  /** The tenant's published public keys for a purpose (RFC 7517 §5) and how long they may be cached. */
  async jwks(tenant: string, purpose: KeyPurposeName): Promise<{ jwks: JwkSet; maxAgeSeconds: number }> {
    requireJwksPurpose(purpose);
    const keys = await this.liveKeys(tenant, purpose);
    return { jwks: jwkSet(keys, this.#clock.now()), maxAgeSeconds: jwksMaxAgeSeconds(this.timingFor(purpose)) };
  }

  /**
   * The tenant purpose's keys not yet destroyed (this replica's view), one of them signing: made on
   * first use. For the agent CA (services/signer/ca/), which builds what its keys sign.
   */
  async liveKeys(tenant: string, purpose: KeyPurposeName): Promise<KeyRecord[]> {
    let keys = this.#views.get(tenant, purpose) ?? (await this.#views.load(tenant, purpose));
    if (!signingKey(keys, this.#clock.now())) {
      await this.#ensureSigningKey(tenant, purpose);
      keys = await this.#views.load(tenant, purpose);
    }
    return keys;
  }

  /** Signs `data` with `key` (one of liveKeys): only for the agent CA, which decides what is signed. */
  signWithKey(key: KeyRecord, data: Uint8Array): Promise<Uint8Array> {
    this.#readiness.requireReady();
    return this.#signer.signWith(key, data);
  }

  async listKeys(tenant: string, purpose?: KeyPurposeName): Promise<KeyInfo[]> {
    const purposes = purpose ? [purpose] : KEY_PURPOSES;
    const now = this.#clock.now();
    const keys = await this.#store.forTenant(tenant).use(SigningKeyRecords).history(purposes);
    return keys.map((key) => ({ ...key, state: keyState(key, now) }));
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
    this.#readiness.requireReady();
    await this.#rotation.rotateNow(tenant, purpose, { revoke, reason, by });
    if (purpose === "agent_ca_root" && revoke) {
      // Intermediates the revoked root certified (a pre-published one included) chain to nothing
      // trusted any more: all are revoked, and a new one, certified by the new root, issues.
      const cascade = `its root was revoked${reason ? `: ${reason}` : ""}`;
      await this.#rotation.revokeAll(tenant, "agent_ca", { reason: cascade, by });
    }
    return this.listKeys(tenant, purpose);
  }

  /** The current key; synchronous on the hot path (the view holds it), async only on first use. */
  #signingKey(tenant: string, purpose: KeyPurposeName): KeyRecord | Promise<KeyRecord> {
    this.#readiness.requireReady();
    const view = this.#views.get(tenant, purpose);
    const key = view && signingKey(view, this.#clock.now());
    return key ?? this.#firstSigningKey(tenant, purpose);
  }

  async #firstSigningKey(tenant: string, purpose: KeyPurposeName): Promise<KeyRecord> {
    let key = signingKey(await this.#views.load(tenant, purpose), this.#clock.now());
    if (!key) {
      await this.#ensureSigningKey(tenant, purpose);
      key = signingKey(await this.#views.load(tenant, purpose), this.#clock.now());
    }
    if (!key)
      throw unavailable(`no signing key for tenant "${tenant}" (${purpose}) yet; retry shortly`, "NO_SIGNING_KEY");
    return key;
  }

  async #ensureSigningKey(tenant: string, purpose: KeyPurposeName): Promise<void> {
    this.#readiness.requireReady();
    await this.#rotation.ensureSigningKey(tenant, purpose);
  }
}
