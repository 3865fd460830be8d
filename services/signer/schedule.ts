// The key schedule, as pure functions of the key records and the time. A key's state is never
// stored: it follows from its timestamps, so every replica computes the same signing key and the
// same JWKS from the same rows, and a test can replay days of rotation by moving a clock.
//
//   publish_at ≤ activate_at < retire_at ≤ unpublish_at − overlap
//   pending (published, not yet signing) → active (signing) → retired (published, not signing)
//   → expired (left the JWKS; the private key is destroyed next) ; revoked: out of the JWKS at once.
//
// Two rules carry the guarantees: a key is published at least `prepublish` before it signs (so
// caches that refetch within that window know it before any token carries it), and it stays
// published `overlap` after it stops signing, where `overlap` also bounds every signed token's
// lifetime (enforced at signing), so no token outlives its key in the JWKS.
import type { JWK } from "jose";
import type { KeyPurposeName } from "../shared/signing.ts";
import type { SigningAlgorithm } from "./backends/backend.ts";

export type KeyStateName = "pending" | "active" | "retired" | "expired" | "revoked" | "destroyed";

export interface KeyRecord {
  id: string;
  tenant: string;
  purpose: KeyPurposeName;
  kid: string;
  alg: SigningAlgorithm;
  backend: string;
  ref: string;
  publicJwk: JWK;
  createdAt: number;
  publishAt: number;
  activateAt: number;
  retireAt: number;
  unpublishAt: number;
  revokedAt: number | null;
  destroyedAt: number | null;
}

export interface Timing {
  intervalMs: number;
  prepublishMs: number;
  overlapMs: number;
}

export function keyState(key: KeyRecord, now: number): KeyStateName {
  if (key.destroyedAt !== null && key.destroyedAt <= now) return "destroyed";
  if (key.revokedAt !== null && key.revokedAt <= now) return "revoked";
  if (now < key.activateAt) return "pending";
  if (now < key.retireAt) return "active";
  if (now < key.unpublishAt) return "retired";
  return "expired";
}

/** Whether the key is in the JWKS at `now`. */
export function isPublished(key: KeyRecord, now: number): boolean {
  const state = keyState(key, now);
  return key.publishAt <= now && (state === "pending" || state === "active" || state === "retired");
}

/** The key that signs at `now`, if any. */
export function signingKey(keys: readonly KeyRecord[], now: number): KeyRecord | undefined {
  let found: KeyRecord | undefined;
  for (const key of keys) {
    if (keyState(key, now) !== "active" || key.publishAt > now) continue;
    // Ties (two replicas racing a rotation) break on the id so every replica picks the same key.
    if (!found || key.activateAt > found.activateAt || (key.activateAt === found.activateAt && key.id > found.id)) {
      found = key;
    }
  }
  return found;
}

const STATE_ORDER: Record<KeyStateName, number> = {
  active: 0,
  pending: 1,
  retired: 2,
  expired: 3,
  revoked: 4,
  destroyed: 5,
};

/** The published keys at `now`: the signing key first, then the next one, then retired ones. */
export function publishedKeys(keys: readonly KeyRecord[], now: number): KeyRecord[] {
  return keys
    .filter((key) => isPublished(key, now))
    .sort((a, b) => STATE_ORDER[keyState(a, now)] - STATE_ORDER[keyState(b, now)] || b.activateAt - a.activateAt);
}

export type RotationStep =
  | {
      kind: "create";
      reason: "bootstrap" | "successor" | "emergency";
      publishAt: number;
      activateAt: number;
      retireAt: number;
      unpublishAt: number;
    }
  | {
      kind: "reschedule";
      id: string;
      reason: "promote" | "extend" | "retire";
      activateAt: number;
      retireAt: number;
      unpublishAt: number;
    }
  | { kind: "revoke"; id: string }
  | { kind: "destroy"; id: string; ref: string };

function newKey(reason: "bootstrap" | "successor" | "emergency", publishAt: number, activateAt: number, t: Timing) {
  const retireAt = activateAt + t.intervalMs;
  return { kind: "create", reason, publishAt, activateAt, retireAt, unpublishAt: retireAt + t.overlapMs } as const;
}

function promote(key: KeyRecord, now: number, t: Timing): RotationStep {
  const retireAt = now + t.intervalMs;
  return {
    kind: "reschedule",
    id: key.id,
    reason: "promote",
    activateAt: now,
    retireAt,
    unpublishAt: retireAt + t.overlapMs,
  };
}

/** Published keys waiting to sign, the earliest first. */
function waiting(keys: readonly KeyRecord[], now: number): KeyRecord[] {
  return keys
    .filter((key) => keyState(key, now) === "pending" && key.publishAt <= now)
    .sort((a, b) => a.activateAt - b.activateAt);
}

/** What the rotation leader does at `now` to keep one tenant purpose on schedule. */
export function planRotation(keys: readonly KeyRecord[], now: number, t: Timing): RotationStep[] {
  const current = signingKey(keys, now);
  const steps = current ? planSuccession(keys, current, now, t) : planRestart(keys, now, t);
  return [...steps, ...plannedDestructions(keys, now)];
}

/** While a key signs: a successor, pre-published in time, once the current key nears retirement. */
function planSuccession(keys: readonly KeyRecord[], current: KeyRecord, now: number, t: Timing): RotationStep[] {
  const successor = keys.find((key) => key.id !== current.id && keyState(key, now) === "pending");
  if (successor || now < current.retireAt - t.prepublishMs) return [];
  // Late (e.g. after downtime): keep the current key signing until its successor has been
  // published for the full pre-publication window, rather than switch to an unknown key.
  const activateAt = Math.max(current.retireAt, now + t.prepublishMs);
  const steps: RotationStep[] = [];
  if (activateAt > current.retireAt) steps.push(extend(current, activateAt, t));
  steps.push(newKey("successor", now, activateAt, t));
  return steps;
}

/** While no key signs: the next published one signs, else a retired one again, else the first key. */
function planRestart(keys: readonly KeyRecord[], now: number, t: Timing): RotationStep[] {
  const next = waiting(keys, now)[0];
  if (next) return [promote(next, now, t)];
  const fallback = keys
    .filter((key) => keyState(key, now) === "retired")
    .sort((a, b) => b.activateAt - a.activateAt)[0];
  if (fallback) {
    // Nothing signs (the service was down past the whole schedule) but a retired key is still
    // published: it signs again until a successor has been pre-published.
    const retireAt = now + t.prepublishMs;
    return [extend(fallback, retireAt, t), newKey("successor", now, retireAt, t)];
  }
  // First key of a tenant purpose: no verifier can hold tokens of this tenant yet.
  return [newKey("bootstrap", now, now, t)];
}

/** Keeps `key` signing until `retireAt`, published through the overlap after it. */
function extend(key: KeyRecord, retireAt: number, t: Timing): RotationStep {
  return {
    kind: "reschedule",
    id: key.id,
    reason: "extend",
    activateAt: key.activateAt,
    retireAt,
    unpublishAt: retireAt + t.overlapMs,
  };
}

/** Keys out of the JWKS for good (expired or revoked) whose private half is still to be destroyed. */
function plannedDestructions(keys: readonly KeyRecord[], now: number): RotationStep[] {
  const steps: RotationStep[] = [];
  for (const key of keys) {
    const state = keyState(key, now);
    if (key.destroyedAt === null && (state === "expired" || state === "revoked")) {
      steps.push({ kind: "destroy", id: key.id, ref: key.ref });
    }
  }
  return steps;
}

/**
 * Emergency rotation: the current key stops signing now — retired (still published through the
 * overlap, so tokens it signed keep verifying) or, with `revoke`, revoked (out of the JWKS at once,
 * so every token it signed fails). A pre-published successor takes over when there is one (verifiers
 * already know it); otherwise a new key signs at once.
 */
export function planEmergencyRotation(
  keys: readonly KeyRecord[],
  now: number,
  t: Timing,
  revoke: boolean,
): RotationStep[] {
  const steps: RotationStep[] = [];
  const current = signingKey(keys, now);
  if (current && revoke) steps.push({ kind: "revoke", id: current.id });
  else if (current) {
    steps.push({
      kind: "reschedule",
      id: current.id,
      reason: "retire",
      activateAt: current.activateAt,
      retireAt: now,
      unpublishAt: now + t.overlapMs,
    });
  }
  const next = waiting(keys, now)[0];
  steps.push(next ? promote(next, now, t) : newKey("emergency", now, now, t));
  return steps;
}

/**
 * Every key of the purpose still out is revoked and a new one signs at once: for the agent CA's
 * intermediates when the root that certified them is revoked (a pre-published successor was
 * certified by that root too, so none of them may issue again).
 */
export function planRevokeAll(keys: readonly KeyRecord[], now: number, t: Timing): RotationStep[] {
  const steps: RotationStep[] = [];
  for (const key of keys) {
    const state = keyState(key, now);
    if (state === "pending" || state === "active" || state === "retired") steps.push({ kind: "revoke", id: key.id });
  }
  steps.push(newKey("emergency", now, now, t));
  return steps;
}

/** How long a JWKS response may be cached: well inside the pre-publication window, at most 5 minutes. */
export function jwksMaxAgeSeconds(t: Timing): number {
  return Math.max(0, Math.min(300, Math.floor(t.prepublishMs / 2 / 1000)));
}
