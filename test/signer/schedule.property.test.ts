// The rotation schedule's guarantees, checked on random histories (time jumps of any size, including
// downtime far past the whole schedule, and emergency rotations with and without revocation).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  isPublished,
  type KeyRecord,
  keyState,
  planEmergencyRotation,
  planRotation,
  type RotationStep,
  signingKey,
  type Timing,
} from "../../services/signer/schedule.ts";

const HOUR = 3_600_000;
const timing: Timing = { intervalMs: 24 * HOUR, prepublishMs: 6 * HOUR, overlapMs: HOUR };

function apply(keys: KeyRecord[], steps: RotationStep[], now: number, counter: { n: number }): void {
  for (const step of steps) {
    if (step.kind === "create") {
      const id = `k${String(counter.n++).padStart(4, "0")}`;
      keys.push({
        id,
        tenant: "t",
        purpose: "token_signing",
        kid: id,
        alg: "ES256",
        backend: "software",
        ref: id,
        publicJwk: {},
        createdAt: now,
        publishAt: step.publishAt,
        activateAt: step.activateAt,
        retireAt: step.retireAt,
        unpublishAt: step.unpublishAt,
        revokedAt: null,
        destroyedAt: null,
      });
    } else {
      const key = keys.find((k) => k.id === step.id) as KeyRecord;
      if (step.kind === "reschedule") Object.assign(key, step);
      else if (step.kind === "revoke") key.revokedAt = now;
      else key.destroyedAt = now;
    }
  }
}

const event = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 8 * HOUR }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("downtime" as const), ms: fc.integer({ min: HOUR, max: 200 * HOUR }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("rotate" as const), revoke: fc.boolean() }) },
);

type Event = typeof event extends fc.Arbitrary<infer E> ? E : never;

/** Plays one event of a history; returns the time after it. */
function play(keys: KeyRecord[], e: Event, start: number, counter: { n: number }): number {
  if (e.kind === "rotate") {
    apply(keys, planEmergencyRotation(keys, start, timing, e.revoke), start, counter);
    return start;
  }
  // The leader runs the schedule at least every 10 minutes, except across downtime.
  let now = start;
  const end = now + e.ms;
  const step = e.kind === "downtime" ? e.ms : 10 * 60_000;
  while (now < end) {
    now = Math.min(end, now + step);
    apply(keys, planRotation(keys, now, timing), now, counter);
  }
  return now;
}

/** After a round: one published key signs (noted in `signedBy`), and every key's timestamps keep their order. */
function expectOneSigningKey(keys: KeyRecord[], now: number, signedBy: Map<string, number[]>): void {
  const current = signingKey(keys, now);
  expect(current, "a key signs after every schedule round").toBeDefined();
  if (!current) return;
  expect(isPublished(current, now)).toBe(true);
  const times = signedBy.get(current.id) ?? [];
  times.push(now);
  signedBy.set(current.id, times);
  const active = keys.filter((k) => keyState(k, now) === "active");
  expect(active.length).toBe(1);
  for (const key of keys) {
    expect(key.publishAt).toBeLessThanOrEqual(key.activateAt);
    expect(key.unpublishAt - key.retireAt).toBeGreaterThanOrEqual(timing.overlapMs);
  }
}

/**
 * Every signature a key made lies inside its activity window, and the key stayed published at least
 * `overlap` past it (unless revoked).
 */
function expectSignaturesInsideWindows(keys: KeyRecord[], signedBy: Map<string, number[]>): void {
  for (const [id, times] of signedBy) {
    const key = keys.find((k) => k.id === id) as KeyRecord;
    for (const t of times) {
      expect(t).toBeGreaterThanOrEqual(key.activateAt);
      if (key.revokedAt === null) expect(key.unpublishAt).toBeGreaterThanOrEqual(t + timing.overlapMs);
    }
  }
}

describe("rotation schedule", () => {
  it("keeps one published signing key, pre-publishes successors and keeps retired keys through the overlap", () => {
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 60 }), (events) => {
        const keys: KeyRecord[] = [];
        const counter = { n: 0 };
        let now = Date.UTC(2026, 0, 1);
        const signedBy = new Map<string, number[]>(); // kid -> times it signed
        apply(keys, planRotation(keys, now, timing), now, counter);
        for (const e of events) {
          now = play(keys, e, now, counter);
          expectOneSigningKey(keys, now, signedBy);
        }
        expectSignaturesInsideWindows(keys, signedBy);
      }),
      { numRuns: 300 },
    );
  });

  it("publishes a scheduled successor a full pre-publication window before it signs", () => {
    const keys: KeyRecord[] = [];
    const counter = { n: 0 };
    let now = Date.UTC(2026, 0, 1);
    for (let i = 0; i < 6 * 24 * 7; i++) {
      apply(keys, planRotation(keys, now, timing), now, counter);
      now += 10 * 60_000;
    }
    const successors = keys.slice(1);
    expect(successors.length).toBeGreaterThanOrEqual(6);
    for (const key of successors) expect(key.activateAt - key.publishAt).toBeGreaterThanOrEqual(timing.prepublishMs);
    expect(keys.filter((k) => k.destroyedAt !== null).length).toBeGreaterThanOrEqual(5);
  });

  it("after downtime past the whole schedule, re-extends a still-published key instead of signing with an unknown one", () => {
    const keys: KeyRecord[] = [];
    const counter = { n: 0 };
    const start = Date.UTC(2026, 0, 1);
    apply(keys, planRotation(keys, start, timing), start, counter);
    apply(keys, planRotation(keys, start + 18 * HOUR, timing), start + 18 * HOUR, counter); // successor
    const later = start + 48 * HOUR + 30 * 60_000; // successor retired 30 min ago, still published
    apply(keys, planRotation(keys, later, timing), later, counter);
    const current = signingKey(keys, later) as KeyRecord;
    expect(current.id).toBe("k0001");
    const next = keys.find((k) => keyState(k, later) === "pending") as KeyRecord;
    expect(next.activateAt - next.publishAt).toBe(timing.prepublishMs);
  });
});
