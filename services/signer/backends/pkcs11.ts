// The PKCS#11 backend: keys are generated inside a token (an HSM, or SoftHSM2 in development) as
// non-extractable token objects, and every signature is made by the token. A lost session fails
// the operation closed (UNAVAILABLE) and reconnects in the background; a misconfiguration (module,
// token, PIN) stops with an operator-readable reason and is never retried, so a wrong PIN cannot
// lock the token. The PIN never reaches a log line or an error message. On a software slot
// (SoftHSM2) ES256 and EdDSA sign on the event loop, which costs less CPU than the libuv thread
// pool's round trip; a hardware token (or one too slow for the loop) signs on the pool, sessions in parallel.
import { createHash, createPublicKey, type JsonWebKey, randomBytes } from "node:crypto";
import { endianness } from "node:os";
import type { JWK } from "jose";
import type { Mechanism, PKCS11, RsaPSS, Template } from "pkcs11js";
import pkcs11js from "pkcs11js";
import { ecdsaSignatureToJose } from "../jws.ts";
import {
  type BackendStatus,
  type GeneratedKey,
  type KeyBackend,
  KeyBackendError,
  type SigningAlgorithm,
} from "./backend.ts";

type Handle = Buffer;

export interface Pkcs11Options {
  /** Path to the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  /** Selects the token by label (trimmed) ... */
  tokenLabel?: string | undefined;
  /** ... or by slot id: exactly one of the two. */
  slot?: number | undefined;
  /** The user PIN. Never logged, never in an error message. */
  pin: string;
  /** Sessions opened, i.e. signatures made in parallel on the pool (each needs a libuv thread: see UV_THREADPOOL_SIZE). */
  sessionPoolSize: number;
  /**
   * Make ES256 and EdDSA signatures on the event loop rather than on the libuv thread pool. Default:
   * when the slot is a software slot (no CKF_HW_SLOT, e.g. SoftHSM2), where a signature costs less
   * CPU than the thread-pool round trip. RSA always goes to the pool; see INLINE_SIGN_LIMIT_MS.
   */
  signInline?: boolean | undefined;
  /** Inline signing time beyond which a signature counts as too slow (see INLINE_SIGN_LIMIT_MS), for tests. */
  inlineSignLimitMs?: number | undefined;
  logger?: {
    warn(obj: object, msg: string): void;
    info(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
  /** Reconnect backoff, for tests. */
  reconnect?: { initialMs: number; maxMs: number };
}

// EdDSA identifiers from PKCS#11 v3.0 (§2.3.5, §2.3.14), which pkcs11js 2.1 (a v2.40 binding) lacks.
const CKK_EC_EDWARDS = 0x40;
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
const CKM_EDDSA = 0x1057;

/** DER OBJECT IDENTIFIERs for CKA_EC_PARAMS: prime256v1 (1.2.840.10045.3.1.7) and id-Ed25519 (1.3.101.112, RFC 8410). */
const OID_P256 = Buffer.from("06082a8648ce3d030107", "hex");
const OID_ED25519 = Buffer.from("06032b6570", "hex");
/** 3072 bits: NIST SP 800-57 strength 128, matching P-256 and Ed25519 (2048 bits is only 112). */
const RSA_MODULUS_BITS = 3072;
/** RFC 7518 §3.5: SHA-256, MGF1 with SHA-256, a salt as long as the hash (v2.40 §2.1.14). */
const PSS_PARAMS: RsaPSS = {
  type: pkcs11js.CK_PARAMS_RSA_PSS,
  hashAlg: pkcs11js.CKM_SHA256,
  mgf: pkcs11js.CKG_MGF1_SHA256,
  saltLen: 32,
};
/** Output buffer sizes: R||S for P-256, Ed25519's 64 bytes; RSA up to 4096 bits. */
const EC_SIGNATURE_BYTES = 64;
const RSA_SIGNATURE_BYTES = 512;
/** CK_SLOT_INFO flag of a hardware slot, as opposed to a soft token (v2.40 §3.2); not in pkcs11js's typings. */
const CKF_HW_SLOT = 0x4;
/**
 * Inline signing blocks the event loop for the whole C_SignInit + C_Sign: fine for an in-process
 * token (SoftHSM2: ~60 µs of CPU for ES256, against ~40 µs more for the thread-pool round trip),
 * never for one a network away. After INLINE_SLOW_SIGNS consecutive inline signatures slower than
 * this (a remote token without CKF_HW_SLOT), signing moves to the pool for good. Consecutive, so
 * what slows single signatures (a key's first use, preemption on a busy machine) does not.
 */
const INLINE_SIGN_LIMIT_MS = 2;
const INLINE_SLOW_SIGNS = 8;

/** Return values meaning the session or the token connection is gone: fail closed, then reconnect. */
const SESSION_LOST = new Set([
  pkcs11js.CKR_SESSION_HANDLE_INVALID,
  pkcs11js.CKR_SESSION_CLOSED,
  pkcs11js.CKR_DEVICE_REMOVED,
  pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_USER_NOT_LOGGED_IN,
  pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED,
  pkcs11js.CKR_GENERAL_ERROR,
]);

// One Cryptoki instance per module path per process. dlopen hands every loader the same library,
// whose initialisation is process-wide (PKCS#11 v2.40 §5.4: a second C_Initialize fails with
// CKR_CRYPTOKI_ALREADY_INITIALIZED, and C_Finalize ends every session of the application), so
// backends sharing a module share one reference-counted handle; `generation` counts
// re-initialisations so that two backends recovering at once finalize the module only once.
interface SharedModule {
  path: string;
  lib: PKCS11;
  users: number;
  generation: number;
}
const modules = new Map<string, SharedModule>();

function acquireModule(path: string): SharedModule {
  let shared = modules.get(path);
  if (!shared) {
    const lib = new pkcs11js.PKCS11();
    lib.load(path);
    try {
      initialize(lib);
    } catch (error) {
      lib.close();
      throw error;
    }
    shared = { path, lib, users: 0, generation: 0 };
    modules.set(path, shared);
  }
  shared.users++;
  return shared;
}

function releaseModule(shared: SharedModule): void {
  if (--shared.users > 0) return;
  modules.delete(shared.path);
  ignore(() => shared.lib.C_Finalize());
  shared.lib.close();
}

function initialize(lib: PKCS11): void {
  // CKF_OS_LOCKING_OK: sessions are used from several libuv threads at once, and with NULL
  // arguments a module may assume a single-threaded application (v2.40 §5.4; SoftHSM2 then uses no locks).
  try {
    lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (error) {
    if (rv(error) !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error;
  }
}

type State = "closed" | "ready" | "reconnecting" | "failed" | "closing";

export class Pkcs11Backend implements KeyBackend {
  readonly kind = "pkcs11";
  readonly #options: Pkcs11Options;
  readonly #backoff: { initialMs: number; maxMs: number };
  #shared: SharedModule | undefined;
  /** The module generation this backend's sessions were opened in. */
  #generation = 0;
  /** Bumped on every connect: sessions handed back from an older connection are dropped. */
  #connection = 0;
  #state: State = "closed";
  #status: BackendStatus = { ready: false, detail: "not opened" };
  #sessions: Handle[] = [];
  #idle: Handle[] = [];
  #waiters: Array<{ resolve(session: Handle): void; reject(error: Error): void }> = [];
  #inFlight = 0;
  #drained: PromiseWithResolvers<void> | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  /** Private-key object handles by ref; valid for the application until C_Finalize (v2.40 §5.7). */
  readonly #handles = new Map<string, Handle>();
  /** Whether ES256 and EdDSA sign on the event loop (decided per connection, see Pkcs11Options.signInline). */
  #inline = false;
  /** Set once inline signing proved too slow: it stays off across reconnects. */
  #inlineTooSlow = false;
  /** Consecutive inline signatures slower than INLINE_SIGN_LIMIT_MS. */
  #slowInlineSigns = 0;

  constructor(options: Pkcs11Options) {
    if ((options.tokenLabel === undefined) === (options.slot === undefined))
      throw new KeyBackendError("MISCONFIGURED", "set exactly one of signer.pkcs11.tokenLabel or signer.pkcs11.slot");
    if (!Number.isInteger(options.sessionPoolSize) || options.sessionPoolSize < 1)
      throw new KeyBackendError("MISCONFIGURED", "signer.pkcs11.sessionPoolSize must be an integer >= 1");
    this.#options = options;
    this.#backoff = options.reconnect ?? { initialMs: 100, maxMs: 5_000 };
  }

  async open(): Promise<void> {
    if (this.#state === "ready" || this.#state === "reconnecting") return;
    try {
      this.#connect();
    } catch (error) {
      const failure = this.#openFailure(error);
      this.#release();
      this.#setState("failed", failure.message);
      throw failure;
    }
    this.#options.logger?.info(this.#where(), "PKCS#11 token ready");
  }

  async generate(algorithm: SigningAlgorithm, label: string): Promise<GeneratedKey> {
    const id = randomBytes(16);
    const spec = keySpec(algorithm);
    const both = [
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_ID, value: id },
      { type: pkcs11js.CKA_LABEL, value: label },
      { type: pkcs11js.CKA_KEY_TYPE, value: spec.keyType },
    ];
    return this.#withSession(async (lib, session) => {
      const { publicKey, privateKey } = await lib.C_GenerateKeyPairAsync(
        session,
        spec.mechanism,
        [
          ...both,
          { type: pkcs11js.CKA_PRIVATE, value: false },
          { type: pkcs11js.CKA_VERIFY, value: true },
          ...spec.public,
        ],
        [
          ...both,
          // Sensitive and never extractable from birth (v2.40 §4.9): CKA_ALWAYS_SENSITIVE and
          // CKA_NEVER_EXTRACTABLE then prove the private half never left the token.
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_SIGN, value: true },
          { type: pkcs11js.CKA_DECRYPT, value: false },
          { type: pkcs11js.CKA_UNWRAP, value: false },
          { type: pkcs11js.CKA_DERIVE, value: false },
        ],
      );
      try {
        const publicJwk = readPublicJwk(lib, session, publicKey, algorithm);
        createPublicKey({ key: publicJwk as JsonWebKey, format: "jwk" }); // throws on a malformed key
        return { ref: id.toString("hex"), publicJwk };
      } catch (error) {
        ignore(() => lib.C_DestroyObject(session, privateKey));
        ignore(() => lib.C_DestroyObject(session, publicKey));
        throw error;
      }
    });
  }

  async sign(ref: string, algorithm: SigningAlgorithm, data: Uint8Array): Promise<Uint8Array> {
    const inline = this.#inline && algorithm !== "PS256";
    return this.#withSession(async (lib, session) => {
      for (let attempt = 0; ; attempt++) {
        const key = this.#privateKey(lib, session, ref);
        try {
          return inline
            ? this.#signInline(lib, session, key, algorithm, data)
            : await signOnPool(lib, session, key, algorithm, data);
        } catch (error) {
          // A cached handle outlived its object (destroyed elsewhere): look it up once more.
          const stale =
            rv(error) === pkcs11js.CKR_KEY_HANDLE_INVALID || rv(error) === pkcs11js.CKR_OBJECT_HANDLE_INVALID;
          if (!stale || attempt > 0) throw error;
          this.#handles.delete(ref);
        }
      }
    });
  }

  async destroy(ref: string): Promise<void> {
    const id = refId(ref);
    if (!id) return;
    await this.#withSession((lib, session) => {
      this.#handles.delete(ref);
      for (const cls of [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY]) {
        for (const object of findObjects(lib, session, [
          { type: pkcs11js.CKA_CLASS, value: cls },
          { type: pkcs11js.CKA_ID, value: id },
        ])) {
          try {
            lib.C_DestroyObject(session, object);
          } catch (error) {
            if (rv(error) !== pkcs11js.CKR_OBJECT_HANDLE_INVALID) throw error; // destroyed meanwhile
          }
        }
      }
    });
  }

  async listRefs(labelPrefix: string): Promise<string[]> {
    return this.#withSession((lib, session) => {
      const refs: string[] = [];
      // Template matching is exact (v2.40 §5.7, C_FindObjectsInit), so the prefix is filtered here.
      for (const object of findObjects(lib, session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }])) {
        const [label, id] = lib.C_GetAttributeValue(session, object, [
          { type: pkcs11js.CKA_LABEL },
          { type: pkcs11js.CKA_ID },
        ]);
        if (label?.value.toString("utf8").startsWith(labelPrefix) && id?.value.length)
          refs.push(id.value.toString("hex"));
      }
      return refs;
    });
  }

  status(): BackendStatus {
    return this.#status;
  }

  /** C_SignInit + C_Sign on the event loop, timed: a token too slow for it moves signing to the pool. */
  #signInline(lib: PKCS11, session: Handle, key: Handle, algorithm: SigningAlgorithm, data: Uint8Array): Uint8Array {
    const started = performance.now();
    const signature = signSync(lib, session, key, algorithm, data);
    const elapsedMs = performance.now() - started;
    if (elapsedMs <= (this.#options.inlineSignLimitMs ?? INLINE_SIGN_LIMIT_MS)) this.#slowInlineSigns = 0;
    else if (++this.#slowInlineSigns === INLINE_SLOW_SIGNS && this.#inline) {
      this.#inline = false;
      this.#inlineTooSlow = true;
      this.#options.logger?.warn(
        { ...this.#where(), lastSignMs: Math.round(elapsedMs * 1000) / 1000 },
        `PKCS#11 signatures too slow for the event loop (${INLINE_SLOW_SIGNS} in a row over ${this.#options.inlineSignLimitMs ?? INLINE_SIGN_LIMIT_MS} ms); signing on the thread pool from now on`,
      );
    }
    return signature;
  }

  /** Lets in-flight operations finish, then logs out, closes the sessions and releases the module. */
  async close(): Promise<void> {
    if (!this.#shared) {
      this.#setState("closed", "closed");
      return;
    }
    clearTimeout(this.#reconnectTimer);
    const wasReady = this.#state === "ready";
    this.#setState("closing", "closing");
    await this.#quiesce();
    const shared = this.#shared;
    const [first] = this.#sessions;
    // Login state is per application and token (v2.40 §5.6): log out only when no other backend shares it.
    if (wasReady && first && shared.users === 1) ignore(() => shared.lib.C_Logout(first));
    for (const session of this.#sessions) ignore(() => shared.lib.C_CloseSession(session));
    this.#release();
    this.#setState("closed", "closed");
  }

  // ---- connection ----

  /** Loads the module (once), finds the token, opens the sessions and logs in. Throws raw errors. */
  #connect(): void {
    this.#shared ??= acquireModule(this.#options.module);
    const { lib, generation } = this.#shared;
    const slot = this.#findSlot(lib);
    const sessions: Handle[] = [];
    try {
      for (let i = 0; i < this.#options.sessionPoolSize; i++)
        sessions.push(lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION));
      // One login serves every session of the application on the token (v2.40 §5.6).
      try {
        lib.C_Login(sessions[0] as Handle, pkcs11js.CKU_USER, this.#options.pin);
      } catch (error) {
        if (rv(error) !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw error;
      }
    } catch (error) {
      for (const session of sessions) ignore(() => lib.C_CloseSession(session));
      throw error;
    }
    this.#generation = generation;
    this.#connection++;
    this.#sessions = sessions;
    this.#idle = [...sessions];
    this.#handles.clear();
    this.#inline = !this.#inlineTooSlow && (this.#options.signInline ?? !(lib.C_GetSlotInfo(slot).flags & CKF_HW_SLOT));
    this.#setState("ready", "ok");
  }

  #findSlot(lib: PKCS11): Handle {
    const { tokenLabel, slot } = this.#options;
    const slots = lib.C_GetSlotList(true);
    const found =
      tokenLabel !== undefined
        ? slots.find((s) => lib.C_GetTokenInfo(s).label.trim() === tokenLabel.trim())
        : slots.find((s) => handleNumber(s) === slot);
    if (found) return found;
    throw new KeyBackendError(
      "MISCONFIGURED",
      tokenLabel !== undefined
        ? `no PKCS#11 token labelled "${tokenLabel.trim()}" in module ${this.#options.module}; initialise it or fix signer.pkcs11.tokenLabel`
        : `no PKCS#11 token in slot ${slot} of module ${this.#options.module}; initialise it or fix signer.pkcs11.slot`,
    );
  }

  /** What an open (or reconnect) failure means for the operator. Never includes the PIN. */
  #openFailure(error: unknown): KeyBackendError {
    if (error instanceof KeyBackendError) return error;
    const { module } = this.#options;
    const token = this.#tokenName();
    if (!(error instanceof pkcs11js.Pkcs11Error))
      return new KeyBackendError(
        "MISCONFIGURED",
        `cannot load PKCS#11 module ${module} (${errorText(error)}); install it or fix signer.pkcs11.module`,
        { cause: error },
      );
    switch (error.code) {
      case pkcs11js.CKR_PIN_INCORRECT:
        return new KeyBackendError(
          "MISCONFIGURED",
          `wrong PIN for ${token}; fix signer.pkcs11.pin/pinFile — not retrying, to avoid locking the token`,
        );
      case pkcs11js.CKR_PIN_LOCKED:
        return new KeyBackendError(
          "MISCONFIGURED",
          `the user PIN of ${token} is locked; the security officer must reset it (e.g. softhsm2-util/pkcs11-tool --init-pin)`,
        );
      case pkcs11js.CKR_PIN_EXPIRED:
      case pkcs11js.CKR_USER_PIN_NOT_INITIALIZED:
        return new KeyBackendError(
          "MISCONFIGURED",
          `the user PIN of ${token} is ${error.code === pkcs11js.CKR_PIN_EXPIRED ? "expired" : "not initialised"}; the security officer must set it`,
        );
    }
    return new KeyBackendError("UNAVAILABLE", `cannot open ${token} (${error.message})`, { cause: error });
  }

  /** Fails everything waiting, and starts reconnecting: the session or the token went away. */
  #lost(error: unknown, connection: number): void {
    if (connection !== this.#connection || this.#state !== "ready") return; // already being handled
    this.#setState("reconnecting", `PKCS#11 session lost (${errorText(error)}); reconnecting`);
    this.#options.logger?.warn({ ...this.#where(), reason: errorText(error) }, "PKCS#11 session lost; reconnecting");
    this.#idle = [];
    this.#rejectWaiters();
    this.#scheduleReconnect(0);
  }

  #scheduleReconnect(attempt: number): void {
    const { initialMs, maxMs } = this.#backoff;
    const ceiling = Math.min(maxMs, initialMs * 2 ** attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2; // jittered, so replicas do not retry in step
    this.#reconnectTimer = setTimeout(() => void this.#reconnect(attempt), delay);
    this.#reconnectTimer.unref();
  }

  async #reconnect(attempt: number): Promise<void> {
    if (this.#state !== "reconnecting" || !this.#shared) return;
    // C_Finalize must not race calls on other threads (v2.40 §5.4): let in-flight calls fail first.
    await this.#quiesce();
    if (this.#state !== "reconnecting") return;
    const shared = this.#shared;
    try {
      if (shared.generation === this.#generation) {
        // Nobody re-initialised since our sessions were opened: finalize and initialise afresh, which
        // also recovers modules whose connection to the device is dead until re-initialised.
        ignore(() => shared.lib.C_Finalize());
        shared.generation++;
        initialize(shared.lib);
      }
      // If this attempt fails, the next one finalizes again: this backend owns the current generation.
      this.#generation = shared.generation;
      this.#connect();
      this.#options.logger?.info({ ...this.#where(), attempt }, "PKCS#11 reconnected; signing resumed");
    } catch (error) {
      const failure = this.#openFailure(error);
      if (failure.code === "MISCONFIGURED") {
        this.#setState("failed", failure.message);
        this.#options.logger?.error(this.#where(), `PKCS#11 reconnect stopped: ${failure.message}`);
        return;
      }
      this.#status = { ready: false, detail: `reconnecting to PKCS#11 (attempt ${attempt + 1}): ${failure.message}` };
      if (attempt % 10 === 0)
        this.#options.logger?.warn({ ...this.#where(), attempt, reason: failure.message }, "PKCS#11 reconnect failed");
      this.#scheduleReconnect(attempt + 1);
    }
  }

  #release(): void {
    this.#rejectWaiters();
    this.#sessions = [];
    this.#idle = [];
    this.#handles.clear();
    if (this.#shared) releaseModule(this.#shared);
    this.#shared = undefined;
  }

  // ---- session pool ----

  /** Runs `fn` on a pooled session (FIFO when all are busy); maps session loss to UNAVAILABLE. */
  async #withSession<T>(fn: (lib: PKCS11, session: Handle) => T | Promise<T>): Promise<T> {
    const shared = this.#shared;
    if (this.#state !== "ready" || !shared) throw this.#unavailable();
    const connection = this.#connection;
    this.#inFlight++;
    let session: Handle | undefined;
    try {
      session =
        this.#idle.shift() ?? (await new Promise<Handle>((resolve, reject) => this.#waiters.push({ resolve, reject })));
      return await fn(shared.lib, session);
    } catch (error) {
      if (error instanceof KeyBackendError) throw error;
      if (SESSION_LOST.has(rv(error) ?? -1)) {
        this.#lost(error, connection);
        throw new KeyBackendError("UNAVAILABLE", `PKCS#11 session lost (${errorText(error)}); reconnecting`, {
          cause: error,
        });
      }
      if (rv(error) === pkcs11js.CKR_MECHANISM_INVALID)
        throw new KeyBackendError("UNSUPPORTED", `${this.#tokenName()} lacks a mechanism this algorithm needs`, {
          cause: error,
        });
      throw new Error(`PKCS#11 operation failed: ${errorText(error)}`, { cause: error });
    } finally {
      if (session) this.#giveBack(session, connection);
      if (--this.#inFlight === 0) this.#drained?.resolve();
    }
  }

  /** Hands a session to the longest waiter, or back to the pool; a session from a lost connection is dropped. */
  #giveBack(session: Handle, connection: number): void {
    if (connection !== this.#connection || this.#state === "reconnecting") return;
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(session);
    else this.#idle.push(session);
  }

  #privateKey(lib: PKCS11, session: Handle, ref: string): Handle {
    const cached = this.#handles.get(ref);
    if (cached) return cached;
    const id = refId(ref);
    const [handle] = id
      ? findObjects(lib, session, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
          { type: pkcs11js.CKA_ID, value: id },
        ])
      : [];
    if (!handle)
      throw new KeyBackendError("KEY_NOT_FOUND", `no private key with CKA_ID ${ref} on ${this.#tokenName()}`);
    this.#handles.set(ref, handle);
    return handle;
  }

  async #quiesce(): Promise<void> {
    while (this.#inFlight > 0) {
      this.#drained = Promise.withResolvers();
      await this.#drained.promise;
    }
  }

  #rejectWaiters(): void {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#unavailable());
  }

  #unavailable(): KeyBackendError {
    return new KeyBackendError("UNAVAILABLE", `PKCS#11 backend not ready: ${this.#status.detail}`);
  }

  #setState(state: State, detail: string): void {
    this.#state = state;
    this.#status = { ready: state === "ready", detail };
  }

  #tokenName(): string {
    const { tokenLabel, slot, module } = this.#options;
    return `${tokenLabel !== undefined ? `token "${tokenLabel.trim()}"` : `slot ${slot}`} (module ${module})`;
  }

  #where(): object {
    const { tokenLabel, slot, module } = this.#options;
    return {
      module,
      tokenLabel,
      slot,
      sessions: this.#options.sessionPoolSize,
      signing: this.#inline ? "inline" : "thread pool",
    };
  }
}

// ---- mechanisms and encodings ----

function keySpec(algorithm: SigningAlgorithm): {
  mechanism: Mechanism;
  keyType: number;
  public: Template;
} {
  switch (algorithm) {
    case "ES256":
      return {
        mechanism: { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
        keyType: pkcs11js.CKK_EC,
        public: [{ type: pkcs11js.CKA_EC_PARAMS, value: OID_P256 }],
      };
    case "EdDSA":
      return {
        mechanism: { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
        keyType: CKK_EC_EDWARDS,
        public: [{ type: pkcs11js.CKA_EC_PARAMS, value: OID_ED25519 }],
      };
    case "PS256":
      return {
        mechanism: { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
        keyType: pkcs11js.CKK_RSA,
        public: [
          { type: pkcs11js.CKA_MODULUS_BITS, value: RSA_MODULUS_BITS },
          { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
        ],
      };
  }
}

/** What C_SignInit and C_Sign take to make a JWS signature with `algorithm`, and the output's size. */
function signOperation(
  algorithm: SigningAlgorithm,
  data: Uint8Array,
): { mechanism: Mechanism; input: Buffer; outputBytes: number } {
  switch (algorithm) {
    case "ES256":
      // SoftHSM2 2.6 lacks CKM_ECDSA_SHA256, so hash here and sign the digest with raw CKM_ECDSA.
      return {
        mechanism: { mechanism: pkcs11js.CKM_ECDSA },
        input: createHash("sha256").update(data).digest(),
        outputBytes: EC_SIGNATURE_BYTES,
      };
    case "EdDSA":
      // Pure Ed25519 over the message (RFC 8037 §3.1); no parameter means no context (v3.0 §2.3.14).
      return { mechanism: { mechanism: CKM_EDDSA }, input: Buffer.from(data), outputBytes: EC_SIGNATURE_BYTES };
    case "PS256":
      return {
        mechanism: { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS_PSS, parameter: PSS_PARAMS },
        input: Buffer.from(data),
        outputBytes: RSA_SIGNATURE_BYTES,
      };
  }
}

/** The token's signature in JWS form: ECDSA as R||S (RFC 7518 §3.4), the others as they are. */
function joseSignature(algorithm: SigningAlgorithm, signature: Buffer): Uint8Array {
  return algorithm === "ES256" ? ecdsaSignatureToJose(signature, 32) : signature;
}

/** C_SignInit + C_Sign on the event loop: no thread-pool round trip, but the loop waits for the token. */
function signSync(lib: PKCS11, session: Handle, key: Handle, algorithm: SigningAlgorithm, data: Uint8Array) {
  const { mechanism, input, outputBytes } = signOperation(algorithm, data);
  lib.C_SignInit(session, mechanism, key);
  return joseSignature(algorithm, lib.C_Sign(session, input, Buffer.allocUnsafe(outputBytes)));
}

/** C_Sign on a libuv thread, so the event loop keeps running and pooled sessions sign in parallel. */
function signOnPool(
  lib: PKCS11,
  session: Handle,
  key: Handle,
  algorithm: SigningAlgorithm,
  data: Uint8Array,
): Promise<Uint8Array> {
  const { mechanism, input, outputBytes } = signOperation(algorithm, data);
  lib.C_SignInit(session, mechanism, key);
  const out = Buffer.allocUnsafe(outputBytes);
  return new Promise((resolve, reject) => {
    lib.C_Sign(session, input, out, (error, signature) => {
      // pkcs11js's worker holds raw pointers into `input` and `out`; this closure keeps them alive.
      void input;
      if (error) reject(error);
      else resolve(joseSignature(algorithm, signature));
    });
  });
}

function readPublicJwk(lib: PKCS11, session: Handle, publicKey: Handle, algorithm: SigningAlgorithm): JWK {
  const get = (type: number): Buffer => lib.C_GetAttributeValue(session, publicKey, [{ type }])[0]?.value as Buffer;
  switch (algorithm) {
    case "ES256": {
      const point = octetString(get(pkcs11js.CKA_EC_POINT), 65);
      if (point[0] !== 0x04) throw new Error("CKA_EC_POINT is not an uncompressed P-256 point");
      return { kty: "EC", crv: "P-256", x: b64u(point.subarray(1, 33)), y: b64u(point.subarray(33)) };
    }
    case "EdDSA":
      return { kty: "OKP", crv: "Ed25519", x: b64u(octetString(get(pkcs11js.CKA_EC_POINT), 32)) };
    case "PS256":
      // JWK integers carry no leading zero octets (RFC 7518 §6.3.1.1).
      return {
        kty: "RSA",
        n: b64u(unsigned(get(pkcs11js.CKA_MODULUS))),
        e: b64u(unsigned(get(pkcs11js.CKA_PUBLIC_EXPONENT))),
      };
  }
}

/**
 * CKA_EC_POINT is a DER OCTET STRING (v2.40 §2.3.3; v3.0 §2.3.5 for Edwards keys), but some
 * modules return the bare point: accept both, checking the length either way.
 */
function octetString(value: Buffer, length: number): Buffer {
  if (value.length === length + 2 && value[0] === 0x04 && value[1] === length) return value.subarray(2);
  if (value.length === length) return value;
  throw new Error(`unexpected CKA_EC_POINT encoding (${value.length} bytes, expected a ${length}-byte point)`);
}

function unsigned(value: Buffer): Buffer {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start++;
  return value.subarray(start);
}

function findObjects(lib: PKCS11, session: Handle, template: Template): Handle[] {
  lib.C_FindObjectsInit(session, template);
  try {
    const found: Handle[] = [];
    for (let batch = lib.C_FindObjects(session, 64); batch.length > 0; batch = lib.C_FindObjects(session, 64))
      found.push(...batch);
    return found;
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

/** A ref is the hex CKA_ID; anything else names no key. */
function refId(ref: string): Buffer | undefined {
  return /^(?:[0-9a-f]{2})+$/.test(ref) ? Buffer.from(ref, "hex") : undefined;
}

/** Slot ids are CK_ULONGs in host byte order. */
function handleNumber(handle: Handle): number {
  return Number(endianness() === "LE" ? handle.readBigUInt64LE() : handle.readBigUInt64BE());
}

function b64u(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

/** The CKR_ code of a pkcs11js error, if it is one. */
function rv(error: unknown): number | undefined {
  return error instanceof pkcs11js.Pkcs11Error ? error.code : undefined;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function ignore(fn: () => unknown): void {
  try {
    fn();
  } catch {}
}
