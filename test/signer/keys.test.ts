// The key manager over real backends (the software keystore, and SoftHSM2 through PKCS#11) and a
// real store, with a hand-moved clock: days of rotation run in seconds.
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalJWKSet, type JWK, jwtVerify } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../services/shared/clock.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { Store } from "../../services/shared/store/store.ts";
import { type KeyBackend, KeyBackendError, type SigningAlgorithm } from "../../services/signer/backends/backend.ts";
import { Pkcs11Backend } from "../../services/signer/backends/pkcs11.ts";
import { SoftwareBackend } from "../../services/signer/backends/software.ts";
import { KeyManager } from "../../services/signer/keys.ts";
import { engines } from "../helpers/engines.ts";

import { createSoftHsmToken, softhsmAvailable } from "../helpers/softhsm.ts";

const HOUR = 3_600_000;
const MINUTE = 60_000;
const logger = createLogger("silent");
const timing = { intervalMs: 24 * HOUR, prepublishMs: 6 * HOUR, overlapMs: HOUR, checkMs: 10 * MINUTE };

interface BackendCase {
  name: string;
  make(store: Store): Promise<{ backend: KeyBackend; again(): KeyBackend; dispose(): void }>;
}

const backends: BackendCase[] = [
  {
    name: "software",
    async make(store) {
      const kek = randomBytes(32);
      return { backend: new SoftwareBackend(store, kek), again: () => new SoftwareBackend(store, kek), dispose() {} };
    },
  },
];
if (softhsmAvailable()) {
  backends.push({
    name: "pkcs11 (SoftHSM2)",
    async make() {
      const token = createSoftHsmToken();
      const options = { module: token.module, tokenLabel: token.tokenLabel, pin: token.pin, sessionPoolSize: 2 };
      return { backend: new Pkcs11Backend(options), again: () => new Pkcs11Backend(options), dispose: token.cleanup };
    },
  });
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openStore(url?: string): Promise<Store> {
  const store = Store.open({ url: url ?? `sqlite:${join(mkdtempSync(join(tmpdir(), "mandate-keys-")), "m.db")}` });
  await store.migrate();
  cleanups.push(() => store.close());
  return store;
}

async function addTenant(store: Store, id: string, alg: SigningAlgorithm | null = null): Promise<void> {
  await store.db
    .insertInto("tenants")
    .values({ id, display_name: id, created_at: 0, token_signing_alg: alg })
    .execute();
}

async function manager(store: Store, backend: KeyBackend, clock: ManualClock, replicaId?: string): Promise<KeyManager> {
  const keys = new KeyManager({ store, backend, clock, logger, timing, defaultAlgorithm: "ES256", replicaId });
  await keys.start({ schedule: false });
  cleanups.push(() => keys.stop());
  return keys;
}

/** A fresh store with tenant "acme" and a backend of the case; the manager is made by the test. */
async function setUp(backendCase: BackendCase, alg: SigningAlgorithm | null = null) {
  const store = await openStore();
  await addTenant(store, "acme", alg);
  const made = await backendCase.make(store);
  cleanups.push(made.dispose);
  return { store, clock: new ManualClock(), ...made };
}

/** The real backend with some operations replaced, to stop it at a chosen point (fault injection). */
function delegating(backend: KeyBackend, overrides: Partial<KeyBackend>): KeyBackend {
  return {
    kind: backend.kind,
    open: () => backend.open(),
    generate: (alg, label) => backend.generate(alg, label),
    sign: (ref, alg, data) => backend.sign(ref, alg, data),
    destroy: (ref) => backend.destroy(ref),
    listRefs: (prefix) => backend.listRefs(prefix),
    status: () => backend.status(),
    close: () => backend.close(),
    ...overrides,
  };
}

function claims(clock: ManualClock, lifetimeMs: number) {
  const now = Math.floor(clock.now() / 1000);
  return { iss: "https://mandate.test/t/acme", sub: "agent", iat: now, exp: now + Math.floor(lifetimeMs / 1000) };
}

interface SignedToken {
  jwt: string;
  kid: string;
  signedAt: number;
  exp: number;
}

/** 72 simulated hours in 10-minute steps: a token signed and the JWKS taken at each, two emergency rotations. */
interface SignedRun {
  start: number;
  tokens: SignedToken[];
  snapshots: Array<{ at: number; keys: JWK[] }>;
  firstSeen: Map<string, number>;
  revoked: { kid: string; at: number } | undefined;
}

async function signFor72Hours(keys: KeyManager, clock: ManualClock): Promise<SignedRun> {
  const run: SignedRun = { start: clock.now(), tokens: [], snapshots: [], firstSeen: new Map(), revoked: undefined };
  for (let step = 0; clock.now() - run.start <= 72 * HOUR; step++) {
    await keys.tick();
    const { jwks, maxAgeSeconds } = await keys.jwks("acme", "token_signing");
    expect(maxAgeSeconds * 1000).toBeLessThan(timing.prepublishMs);
    run.snapshots.push({ at: clock.now(), keys: jwks.keys });
    for (const key of jwks.keys) {
      if (!run.firstSeen.has(key.kid as string)) run.firstSeen.set(key.kid as string, clock.now());
    }
    const lifetime = 5 * MINUTE + ((step * 7919) % 55) * MINUTE; // 5 to 60 minutes
    const signed = await keys.signJwt("acme", claims(clock, lifetime), "at+jwt");
    run.tokens.push({ jwt: signed.jwt, kid: signed.kid, signedAt: clock.now(), exp: clock.now() + lifetime });
    if (step === 150) await keys.rotate("acme", "token_signing", false, "test: routine early rotation");
    if (step === 300) {
      run.revoked = { kid: signed.kid, at: clock.now() };
      await keys.rotate("acme", "token_signing", true, "test: key compromised");
    }
    clock.advance(10 * MINUTE);
  }
  return run;
}

/** Checks every token against every later JWKS; returns how many verifications succeeded. */
async function verifyAgainstLaterJwks(run: SignedRun): Promise<number> {
  let checked = 0;
  for (const token of run.tokens) {
    // A key signs only once it has been published (and, after the first, pre-published).
    expect(run.firstSeen.get(token.kid)).toBeLessThanOrEqual(token.signedAt);
    checked += await verifyTokenOverTime(run, token);
  }
  return checked;
}

/** A token against each JWKS from its signing until it expires (or, revoked, after its revocation). */
async function verifyTokenOverTime(run: SignedRun, token: SignedToken): Promise<number> {
  const { revoked } = run;
  let checked = 0;
  for (const snapshot of run.snapshots) {
    if (snapshot.at < token.signedAt) continue;
    const verify = () =>
      jwtVerify(token.jwt, createLocalJWKSet({ keys: snapshot.keys }), {
        currentDate: new Date(snapshot.at),
        typ: "at+jwt",
      });
    if (revoked && token.kid === revoked.kid && snapshot.at > revoked.at) {
      await expect(verify(), "a revoked key's token verifies after revocation").rejects.toThrow();
    } else if (snapshot.at < token.exp) {
      await expect(
        verify(),
        `token of ${token.kid} signed at +${(token.signedAt - run.start) / MINUTE} min`,
      ).resolves.toBeDefined();
      checked++;
    } else {
      break;
    }
  }
  return checked;
}

describe.each(backends)("key manager over $name", (backendCase) => {
  it("over 72 simulated hours, every token verifies against every later JWKS until it expires, and a revoked key's never again", async () => {
    const { store, backend, clock } = await setUp(backendCase);
    const keys = await manager(store, backend, clock);
    const run = await signFor72Hours(keys, clock);
    const { tokens, revoked } = run;

    const kids = new Set(tokens.map((t) => t.kid));
    expect(kids.size).toBeGreaterThanOrEqual(4); // 3 scheduled rotations plus 2 emergency ones
    const checked = await verifyAgainstLaterJwks(run);
    expect(checked).toBeGreaterThan(tokens.length);
    // Scheduled successors were in the JWKS a full pre-publication window before they signed.
    const listed = await keys.listKeys("acme", "token_signing");
    const scheduled = listed.filter((k) => k.activateAt - k.publishAt >= timing.prepublishMs);
    expect(scheduled.length).toBeGreaterThanOrEqual(2);
    // Keys past their overlap, and the revoked one, are destroyed in the backend.
    const destroyed = listed.filter((k) => k.state === "destroyed");
    expect(destroyed.map((k) => k.kid)).toContain(revoked?.kid);
    const live = new Set(await backend.listRefs("mandate:"));
    for (const key of destroyed) expect(live.has(key.ref)).toBe(false);
    for (const key of listed.filter((k) => k.state !== "destroyed")) expect(live.has(key.ref)).toBe(true);
    // Every lifecycle step was recorded for the audit log.
    const events = await store.db.selectFrom("audit_outbox").select("type").where("tenant_id", "=", "acme").execute();
    const types = new Set(events.map((e) => e.type));
    for (const type of ["key.created.v1", "key.rescheduled.v1", "key.revoked.v1", "key.destroyed.v1"])
      expect(types).toContain(type);
  }, 120_000);

  it.each(["ES256", "EdDSA", "PS256"] as const)(
    "signs %s tokens for a tenant that chose it, verifiable with its JWKS",
    async (alg) => {
      const { store, backend, clock } = await setUp(backendCase, alg);
      const keys = await manager(store, backend, clock);
      const { jwt, kid } = await keys.signJwt("acme", claims(clock, 5 * MINUTE), "at+jwt");
      const { jwks } = await keys.jwks("acme", "token_signing");
      expect(jwks.keys).toHaveLength(1);
      expect(jwks.keys[0]).toMatchObject({ kid, alg, use: "sig" });
      expect(jwks.keys[0]).not.toHaveProperty("d");
      const { protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(jwks), { currentDate: new Date(clock.now()) });
      expect(protectedHeader).toEqual({ alg, kid, typ: "at+jwt" });
      // Audit checkpoints are always Ed25519 (C2SP signed notes).
      const checkpoint = await keys.sign("acme", "audit_checkpoint", Buffer.from("origin\n1\nroot\n"));
      expect(checkpoint.alg).toBe("EdDSA");
      expect(checkpoint.signature).toHaveLength(64);
    },
    60_000,
  );

  it("refuses what it must not sign", async () => {
    const { store, backend, clock } = await setUp(backendCase);
    const keys = await manager(store, backend, clock);
    const now = Math.floor(clock.now() / 1000);
    await expect(keys.signJwt("acme", { sub: "x" })).rejects.toThrow(/numeric exp/);
    await expect(keys.signJwt("acme", { exp: now + 2 * 3600 })).rejects.toThrow(/longest lifetime signed is 3600 s/);
    await expect(keys.sign("acme", "token_signing", Buffer.from("x.y"))).rejects.toThrow(/only through SignJwt/);
    await expect(keys.signJwt("nobody", { exp: now + 60 })).rejects.toThrow(/tenant "nobody" does not exist/);
  });

  it("reconciles a rotation that crashed after making the key and before recording it", async () => {
    const { store, backend, again, clock } = await setUp(backendCase);
    // The crash point: the backend made the key, then the process died before the row committed.
    const crashing = delegating(backend, {
      generate: async (alg, label) => {
        await backend.generate(alg, label);
        throw new Error("simulated crash after the key was made");
      },
    });
    const first = new KeyManager({ store, backend: crashing, clock, logger, timing, defaultAlgorithm: "ES256" });
    await first.start({ schedule: false });
    await expect(first.signJwt("acme", claims(clock, MINUTE))).rejects.toThrow();
    expect(await store.db.selectFrom("signing_keys").select("id").execute()).toHaveLength(0);
    const orphans = await backend.listRefs("mandate:");
    expect(orphans).toHaveLength(1);
    await first.stop();

    // The next start: the orphan is destroyed (after a second pass confirms it), and signing works.
    const restarted = again();
    const keys = await manager(store, restarted, clock);
    await keys.tick();
    expect(await restarted.listRefs("mandate:")).toContain(orphans[0]); // one pass is not enough
    clock.advance(2 * MINUTE);
    await keys.tick();
    const { jwt, kid } = await keys.signJwt("acme", claims(clock, MINUTE));
    const { jwks } = await keys.jwks("acme", "token_signing");
    expect(jwks.keys.map((k) => k.kid)).toContain(kid);
    await jwtVerify(jwt, createLocalJWKSet(jwks), { currentDate: new Date(clock.now()) });
    const rows = await store.db.selectFrom("signing_keys").select("backend_ref").execute();
    const remaining = await restarted.listRefs("mandate:");
    expect(remaining).not.toContain(orphans[0]);
    expect(new Set(remaining)).toEqual(new Set(rows.map((r) => r.backend_ref)));
  }, 60_000);
});

describe.each(engines)("key rotation across replicas on $name", (engine) => {
  it("elects one rotating replica; the others sign with the new key after their next refresh", async () => {
    const opened = await engine.open();
    cleanups.push(opened.dispose);
    const store = await openStore(opened.url);
    const second = await openStore(opened.url);
    await addTenant(store, "acme");
    const kek = randomBytes(32);
    const clock = new ManualClock();
    const a = await manager(store, new SoftwareBackend(store, kek), clock, "replica-a");
    const b = await manager(second, new SoftwareBackend(second, kek), clock, "replica-b");
    await a.tick();
    await b.tick();
    const leases = await store.db.selectFrom("leases").selectAll().execute();
    expect(leases).toEqual([expect.objectContaining({ name: "signer-rotation", holder: "replica-a" })]);

    const before = await b.signJwt("acme", claims(clock, MINUTE));
    // An emergency rotation on the follower (any replica may): the leader sees it at its next round.
    await b.rotate("acme", "token_signing", true, "test");
    await a.tick();
    const after = await a.signJwt("acme", claims(clock, MINUTE));
    expect(after.kid).not.toBe(before.kid);
    const { jwks } = await a.jwks("acme", "token_signing");
    expect(jwks.keys.map((k) => k.kid)).not.toContain(before.kid);

    // The leader stops: its lease is released and the other replica takes the schedule over.
    await a.stop();
    await b.tick();
    const holder = await store.db.selectFrom("leases").select("holder").executeTakeFirst();
    expect(holder?.holder).toBe("replica-b");
  }, 60_000);
});

describe("key backend unreachable at start", () => {
  it("stays not ready and fails closed, retries each round, and signs once the backend answers", async () => {
    const store = await openStore();
    await addTenant(store, "acme");
    const real = new SoftwareBackend(store, randomBytes(32));
    let reachable = false;
    // The real keystore behind a switch standing in for a network HSM that is still starting.
    const flaky = delegating(real, {
      open: async () => {
        if (!reachable) throw new KeyBackendError("UNAVAILABLE", "connection refused");
        await real.open();
      },
    });
    const clock = new ManualClock();
    const keys = await manager(store, flaky, clock);
    expect(keys.status()).toEqual({ ready: false, detail: "connection refused" });
    await expect(keys.signJwt("acme", claims(clock, MINUTE))).rejects.toThrow(
      /signing is unavailable: connection refused/,
    );
    await keys.tick();
    expect(keys.status().ready).toBe(false);
    reachable = true;
    await keys.tick();
    expect(keys.status().ready).toBe(true);
    await expect(keys.signJwt("acme", claims(clock, MINUTE))).resolves.toMatchObject({ alg: "ES256" });
  });
});
