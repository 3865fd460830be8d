// The PKCS#11 backend against a real SoftHSM2 token (a fresh one per test): signatures verified with
// jose, keys proven non-extractable by asking the token itself, misconfiguration and session loss.
import { execFileSync } from "node:child_process";
import { compactVerify, importJWK, type JWK } from "jose";
import type { PKCS11 } from "pkcs11js";
import pkcs11js from "pkcs11js";
import { afterEach, describe, expect, it } from "vitest";
import { KeyBackendError, type SigningAlgorithm } from "../../services/signer/backends/backend.ts";
import { Pkcs11Backend, type Pkcs11Options } from "../../services/signer/backends/pkcs11.ts";
import { createSoftHsmToken, type SoftHsmToken, softhsmAvailable } from "../helpers/softhsm.ts";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function token(): SoftHsmToken {
  const created = createSoftHsmToken();
  cleanups.push(created.cleanup);
  return created;
}

interface LogLine {
  level: string;
  obj: object;
  msg: string;
}

function backendFor(
  t: SoftHsmToken,
  options: Partial<Pkcs11Options> = {},
): { backend: Pkcs11Backend; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const log = (level: string) => (obj: object, msg: string) => logs.push({ level, obj, msg });
  const backend = new Pkcs11Backend({
    module: t.module,
    tokenLabel: t.tokenLabel,
    pin: t.pin,
    sessionPoolSize: 2,
    logger: { info: log("info"), warn: log("warn"), error: log("error") },
    ...options,
  });
  cleanups.push(() => backend.close());
  return { backend, logs };
}

async function opened(options: Partial<Pkcs11Options> = {}) {
  const t = token();
  const { backend, logs } = backendFor(t, options);
  await backend.open();
  return { t, backend, logs };
}

/** A second handle on the module: dlopen returns the same library, so this sees the backend's state. */
function inspector(t: SoftHsmToken): { lib: PKCS11; slot: Buffer; session: Buffer } {
  const lib = new pkcs11js.PKCS11();
  lib.load(t.module);
  try {
    lib.C_Initialize();
  } catch (error) {
    if ((error as { code?: number }).code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error;
  }
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === t.tokenLabel);
  if (!slot) throw new Error("token not found");
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  // Never C_Logout or C_Finalize here: both would act on the backend's (shared) login and sessions.
  cleanups.push(() => {
    try {
      lib.C_CloseSession(session);
    } catch {}
    lib.close();
  });
  return { lib, slot, session };
}

async function signJws(backend: Pkcs11Backend, ref: string, alg: SigningAlgorithm, payload: string): Promise<string> {
  const input = `${Buffer.from(JSON.stringify({ alg, kid: ref })).toString("base64url")}.${Buffer.from(payload).toString("base64url")}`;
  const signature = await backend.sign(ref, alg, Buffer.from(input));
  return `${input}.${Buffer.from(signature).toString("base64url")}`;
}

async function verify(jws: string, publicJwk: JWK, alg: SigningAlgorithm): Promise<string> {
  const { payload } = await compactVerify(jws, await importJWK(publicJwk, alg));
  return Buffer.from(payload).toString();
}

async function eventually<T>(fn: () => Promise<T>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

const code = (error: unknown) => (error as KeyBackendError).code;

/**
 * Event-loop turns (setImmediate callbacks) while `fn` runs: none when it only runs synchronous code
 * and promise reactions, at least one per C_Sign that completes on the libuv thread pool.
 */
async function loopTurnsDuring(fn: () => Promise<unknown>): Promise<number> {
  let turns = 0;
  let next: NodeJS.Immediate;
  const spin = () => {
    turns++;
    next = setImmediate(spin);
  };
  next = setImmediate(spin);
  try {
    await fn();
  } finally {
    clearImmediate(next);
  }
  return turns;
}

async function signSequentially(backend: Pkcs11Backend, ref: string, alg: SigningAlgorithm, count: number) {
  for (let i = 0; i < count; i++) await backend.sign(ref, alg, Buffer.from(`m${i}`));
}

/** The `signing` member of the backend's last log line that has one. */
const signingMode = (logs: LogLine[]) =>
  logs.map((l) => (l.obj as { signing?: string }).signing).findLast((mode) => mode !== undefined);

describe.skipIf(!softhsmAvailable())("PKCS#11 backend over SoftHSM2", () => {
  it.each([
    ["ES256", { kty: "EC", crv: "P-256" }, ["crv", "kty", "x", "y"]],
    ["EdDSA", { kty: "OKP", crv: "Ed25519" }, ["crv", "kty", "x"]],
    ["PS256", { kty: "RSA", e: "AQAB" }, ["e", "kty", "n"]],
  ] as const)("generates %s keys in the token and signs JWS that jose verifies", async (alg, shape, members) => {
    const { backend } = await opened();
    const { ref, publicJwk } = await backend.generate(alg, "mandate:test:token:1");
    expect(ref).toMatch(/^[0-9a-f]{32}$/);
    expect(publicJwk).toMatchObject(shape);
    expect(Object.keys(publicJwk).sort()).toEqual(members); // the public key only: no d, kid, use or alg
    if (alg === "PS256") expect(Buffer.from(publicJwk.n as string, "base64url")).toHaveLength(384);
    const jws = await signJws(backend, ref, alg, `hello ${alg}`);
    expect(await verify(jws, publicJwk, alg)).toBe(`hello ${alg}`);
    // A signature over other bytes does not verify under this key.
    const other = await signJws(backend, ref, alg, "other");
    const [h, p] = jws.split(".");
    await expect(verify(`${h}.${p}.${other.split(".")[2]}`, publicJwk, alg)).rejects.toThrow();
  });

  it("makes 200 ES256 signatures that all verify (R||S of exactly 64 bytes, padded)", async () => {
    const { backend } = await opened();
    const { ref, publicJwk } = await backend.generate("ES256", "mandate:test:token:1");
    const key = await importJWK(publicJwk, "ES256");
    for (let i = 0; i < 200; i++) {
      const jws = await signJws(backend, ref, "ES256", `message ${i}`);
      expect(Buffer.from(jws.split(".")[2] as string, "base64url")).toHaveLength(64);
      await compactVerify(jws, key);
    }
  });

  it.each([
    ["ES256", [pkcs11js.CKA_VALUE]],
    ["EdDSA", [pkcs11js.CKA_VALUE]],
    ["PS256", [pkcs11js.CKA_PRIVATE_EXPONENT, pkcs11js.CKA_PRIME_1]],
  ] as const)("keeps %s private keys sensitive and never extractable", async (alg, secrets) => {
    const { t, backend } = await opened();
    const { ref } = await backend.generate(alg, "mandate:test:token:1");
    const { lib, session } = inspector(t);
    lib.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_ID, value: Buffer.from(ref, "hex") },
    ]);
    const [key] = lib.C_FindObjects(session, 2);
    lib.C_FindObjectsFinal(session);
    if (!key) throw new Error("private key not found");
    const flags = lib.C_GetAttributeValue(session, key, [
      { type: pkcs11js.CKA_TOKEN },
      { type: pkcs11js.CKA_SENSITIVE },
      { type: pkcs11js.CKA_EXTRACTABLE },
      { type: pkcs11js.CKA_ALWAYS_SENSITIVE },
      { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
      { type: pkcs11js.CKA_PRIVATE },
      { type: pkcs11js.CKA_LABEL },
    ]);
    expect(flags.slice(0, 6).map((a) => a.value[0])).toEqual([1, 1, 0, 1, 1, 1]);
    expect(flags[6]?.value.toString()).toBe("mandate:test:token:1");
    for (const type of secrets) {
      expect(() => lib.C_GetAttributeValue(session, key, [{ type }])).toThrow(
        expect.objectContaining({ code: pkcs11js.CKR_ATTRIBUTE_SENSITIVE }),
      );
    }
  });

  it("destroys both halves, idempotently; listRefs sees only labels with the prefix", async () => {
    const { t, backend } = await opened();
    const kept = await backend.generate("EdDSA", "mandate:test:token:kept");
    const gone = await backend.generate("ES256", "mandate:test:token:gone");
    await backend.generate("ES256", "someone-else");
    expect(new Set(await backend.listRefs("mandate:"))).toEqual(new Set([kept.ref, gone.ref]));
    await backend.sign(gone.ref, "ES256", Buffer.from("x")); // caches the handle
    await backend.destroy(gone.ref);
    await backend.destroy(gone.ref);
    await backend.destroy("not-a-ref");
    expect(await backend.listRefs("mandate:")).toEqual([kept.ref]);
    await expect(backend.sign(gone.ref, "ES256", Buffer.from("x"))).rejects.toMatchObject({ code: "KEY_NOT_FOUND" });
    await expect(backend.sign("0011", "ES256", Buffer.from("x"))).rejects.toMatchObject({ code: "KEY_NOT_FOUND" });
    const { lib, session } = inspector(t);
    lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_ID, value: Buffer.from(gone.ref, "hex") }]);
    expect(lib.C_FindObjects(session, 10)).toHaveLength(0); // the public half is gone too
    lib.C_FindObjectsFinal(session);
  });

  it("refuses a wrong PIN as MISCONFIGURED without retrying or revealing it", async () => {
    const t = token();
    const pin = `wrong-${t.pin}`;
    const { backend, logs } = backendFor(t, { pin });
    const error = await backend.open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyBackendError);
    expect(code(error)).toBe("MISCONFIGURED");
    expect((error as Error).message).toMatch(/wrong PIN .* not retrying/);
    expect((error as Error).message).not.toContain(pin);
    expect(backend.status()).toEqual({ ready: false, detail: (error as Error).message });
    expect(JSON.stringify(logs)).not.toContain(pin);
    await expect(backend.sign("00", "ES256", Buffer.from("x"))).rejects.toMatchObject({ code: "UNAVAILABLE" });
    // One failed login, not a lock-out: the right PIN still opens the token.
    const { backend: right } = backendFor(t);
    await right.open();
    expect(right.status().ready).toBe(true);
  });

  it("reports an unknown token label, slot or module as MISCONFIGURED", async () => {
    const t = token();
    await expect(backendFor(t, { tokenLabel: "no-such-token" }).backend.open()).rejects.toMatchObject({
      code: "MISCONFIGURED",
      message: expect.stringMatching(/no PKCS#11 token labelled "no-such-token" .* fix signer.pkcs11.tokenLabel/),
    });
    await expect(backendFor(t, { tokenLabel: undefined, slot: 987_654_321 }).backend.open()).rejects.toMatchObject({
      code: "MISCONFIGURED",
      message: expect.stringContaining("slot 987654321"),
    });
    await expect(backendFor(t, { module: "/nonexistent/libpkcs11.so" }).backend.open()).rejects.toMatchObject({
      code: "MISCONFIGURED",
      message: expect.stringMatching(
        /cannot load PKCS#11 module \/nonexistent\/libpkcs11.so .* fix signer.pkcs11.module/,
      ),
    });
    expect(() => backendFor(t, { slot: 1 })).toThrow(/exactly one of/);
  });

  it("selects a token by slot id, sharing the module with another backend", async () => {
    const { t, backend } = await opened();
    const { slot } = inspector(t);
    const { backend: bySlot } = backendFor(t, { tokenLabel: undefined, slot: Number(slot.readBigUInt64LE()) });
    await bySlot.open();
    const { ref, publicJwk } = await backend.generate("EdDSA", "mandate:test:token:1");
    expect(await verify(await signJws(bySlot, ref, "EdDSA", "shared"), publicJwk, "EdDSA")).toBe("shared");
    await bySlot.close(); // the other backend keeps its login and sessions
    expect(await verify(await signJws(backend, ref, "EdDSA", "still"), publicJwk, "EdDSA")).toBe("still");
  });

  it.each([
    ["inline", undefined],
    ["on the thread pool", false],
  ] as const)(
    "signing %s, fails closed when its sessions are lost, then reconnects and signs again",
    async (_, signInline) => {
      const { t, backend, logs } = await opened({ signInline });
      const { ref, publicJwk } = await backend.generate("ES256", "mandate:test:token:1");
      await signJws(backend, ref, "ES256", "before");
      const { lib, slot } = inspector(t);
      lib.C_CloseAllSessions(slot); // closes the backend's sessions too: one library, one application

      await expect(backend.sign(ref, "ES256", Buffer.from("x"))).rejects.toMatchObject({ code: "UNAVAILABLE" });
      expect(backend.status().ready).toBe(false);
      // While reconnecting, calls fail fast instead of queueing.
      const started = Date.now();
      await expect(backend.sign(ref, "ES256", Buffer.from("x"))).rejects.toMatchObject({ code: "UNAVAILABLE" });
      expect(Date.now() - started).toBeLessThan(50);

      const jws = await eventually(() => signJws(backend, ref, "ES256", "after"));
      expect(await verify(jws, publicJwk, "ES256")).toBe("after");
      expect(backend.status()).toEqual({ ready: true, detail: "ok" });
      expect(logs.map((l) => `${l.level}: ${l.msg}`)).toEqual([
        "info: PKCS#11 token ready",
        "warn: PKCS#11 session lost; reconnecting",
        "info: PKCS#11 reconnected; signing resumed",
      ]);
      expect(JSON.stringify(logs)).not.toContain(t.pin);
    },
  );

  it("stops reconnecting, not ready, when the PIN changed while it was away", async () => {
    const { t, backend, logs } = await opened({ reconnect: { initialMs: 10, maxMs: 50 } });
    const { ref } = await backend.generate("ES256", "mandate:test:token:1");
    const { lib, slot, session } = inspector(t);
    lib.C_SetPIN(session, t.pin, `${t.pin}-new`); // the application is logged in, through the backend
    lib.C_CloseAllSessions(slot);
    await expect(backend.sign(ref, "ES256", Buffer.from("x"))).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await eventually(async () => expect(backend.status().detail).toMatch(/^wrong PIN/));
    await new Promise((resolve) => setTimeout(resolve, 300)); // backoff would have retried many times by now
    expect(logs.filter((l) => l.level === "error")).toHaveLength(1);
    expect(backend.status().ready).toBe(false);
    await expect(backend.sign(ref, "ES256", Buffer.from("x"))).rejects.toMatchObject({
      code: "UNAVAILABLE",
      message: expect.stringContaining("wrong PIN"),
    });
  });

  it.each([
    ["inline", true],
    ["on the thread pool", false],
  ] as const)(
    "signing %s, signs 100 requests in parallel over 4 sessions, and close waits for those in flight",
    async (_, signInline) => {
      const { backend } = await opened({ sessionPoolSize: 4, signInline });
      const keys = await Promise.all(
        (["ES256", "EdDSA", "PS256"] as const).map((alg) => backend.generate(alg, "mandate:t")),
      );
      const algs = ["ES256", "EdDSA", "PS256"] as const;
      const signed = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          signJws(backend, (keys[i % 3] as { ref: string }).ref, algs[i % 3] as SigningAlgorithm, `m${i}`),
        ),
      );
      await Promise.all(
        signed.map(async (jws, i) =>
          expect(
            await verify(jws, (keys[i % 3] as { publicJwk: JWK }).publicJwk, algs[i % 3] as SigningAlgorithm),
          ).toBe(`m${i}`),
        ),
      );
      const inFlight = Array.from({ length: 20 }, (_, i) =>
        signJws(backend, (keys[0] as { ref: string }).ref, "ES256", `late${i}`),
      );
      await backend.close();
      expect(await Promise.all(inFlight)).toHaveLength(20);
      expect(backend.status()).toEqual({ ready: false, detail: "closed" });
      await backend.close();
      await expect(backend.sign((keys[0] as { ref: string }).ref, "ES256", Buffer.from("x"))).rejects.toMatchObject({
        code: "UNAVAILABLE",
      });
    },
  );

  it("signs ES256 and EdDSA on the event loop of a software slot (no CKF_HW_SLOT), RSA on the thread pool", async () => {
    const { t, backend, logs } = await opened();
    expect(logs[0]).toMatchObject({ msg: "PKCS#11 token ready", obj: { signing: "inline" } });
    const es = await backend.generate("ES256", "mandate:t");
    const ed = await backend.generate("EdDSA", "mandate:t");
    const rsa = await backend.generate("PS256", "mandate:t");
    expect(await loopTurnsDuring(() => signSequentially(backend, es.ref, "ES256", 20))).toBe(0);
    expect(await loopTurnsDuring(() => signSequentially(backend, ed.ref, "EdDSA", 20))).toBe(0);
    expect(await loopTurnsDuring(() => signSequentially(backend, rsa.ref, "PS256", 3))).toBeGreaterThanOrEqual(3);
    // Configured off: every signature completes on the pool.
    const { backend: pooled } = backendFor(t, { signInline: false });
    await pooled.open();
    const pooledKey = await pooled.generate("ES256", "mandate:t");
    expect(await loopTurnsDuring(() => signSequentially(pooled, pooledKey.ref, "ES256", 20))).toBeGreaterThanOrEqual(
      20,
    );
  });

  it("moves signing to the thread pool for good after 8 inline signatures in a row over the limit", async () => {
    const { t, backend, logs } = await opened({ signInline: true, inlineSignLimitMs: 0 });
    const { ref, publicJwk } = await backend.generate("ES256", "mandate:t");
    expect(await loopTurnsDuring(() => signSequentially(backend, ref, "ES256", 8))).toBe(0);
    const warnings = () => logs.filter((l) => l.level === "warn");
    expect(warnings()).toEqual([
      expect.objectContaining({
        msg: expect.stringMatching(/too slow for the event loop \(8 in a row over 0 ms\); signing on the thread pool/),
        obj: expect.objectContaining({ signing: "thread pool" }),
      }),
    ]);
    expect(await loopTurnsDuring(() => signSequentially(backend, ref, "ES256", 5))).toBeGreaterThanOrEqual(5);
    expect(await verify(await signJws(backend, ref, "ES256", "pooled"), publicJwk, "ES256")).toBe("pooled");
    // A reconnect does not bring inline signing back, even configured on.
    const { lib, slot } = inspector(t);
    lib.C_CloseAllSessions(slot);
    await expect(backend.sign(ref, "ES256", Buffer.from("x"))).rejects.toMatchObject({ code: "UNAVAILABLE" });
    expect(await verify(await eventually(() => signJws(backend, ref, "ES256", "after")), publicJwk, "ES256")).toBe(
      "after",
    );
    expect(logs.at(-1)?.msg).toBe("PKCS#11 reconnected; signing resumed");
    expect(signingMode(logs)).toBe("thread pool");
    expect(warnings()).toHaveLength(2); // the lost session, besides the one above
  });

  it.each([
    ["inline", true],
    ["on the thread pool", false],
  ] as const)(
    "signing %s, drops a cached key handle whose key another session or process destroyed",
    async (_, signInline) => {
      const { t, backend } = await opened({ signInline });
      const inApp = await backend.generate("ES256", "mandate:t");
      const elsewhere = await backend.generate("ES256", "mandate:t");
      const kept = await backend.generate("ES256", "mandate:t");
      for (const key of [inApp, elsewhere, kept]) await backend.sign(key.ref, "ES256", Buffer.from("x")); // caches handles

      // Another session of this application (the handle the backend cached becomes invalid).
      const { lib, session } = inspector(t);
      lib.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_ID, value: Buffer.from(inApp.ref, "hex") },
      ]);
      const [handle] = lib.C_FindObjects(session, 1);
      lib.C_FindObjectsFinal(session);
      lib.C_DestroyObject(session, handle as Buffer);
      await expect(backend.sign(inApp.ref, "ES256", Buffer.from("x"))).rejects.toMatchObject({ code: "KEY_NOT_FOUND" });

      // Another process on the same token, as another worker of `serve --workers` rotating keys.
      const destroyer = `
      const { Pkcs11Backend } = await import(${JSON.stringify(new URL("../../services/signer/backends/pkcs11.ts", import.meta.url).href)});
      const backend = new Pkcs11Backend(${JSON.stringify({ module: t.module, tokenLabel: t.tokenLabel, pin: t.pin, sessionPoolSize: 1 })});
      await backend.open();
      await backend.destroy(${JSON.stringify(elsewhere.ref)});
      await backend.close();`;
      execFileSync(process.execPath, ["--input-type=module", "-e", destroyer], { stdio: "pipe" });
      await expect(backend.sign(elsewhere.ref, "ES256", Buffer.from("x"))).rejects.toMatchObject({
        code: "KEY_NOT_FOUND",
      });

      expect(backend.status()).toEqual({ ready: true, detail: "ok" });
      expect(await verify(await signJws(backend, kept.ref, "ES256", "kept"), kept.publicJwk, "ES256")).toBe("kept");
    },
  );
});
