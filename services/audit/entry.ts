// What one log entry is: an event in the `mandate.v1.AuditEvent` shape (proto3 JSON), wrapped with
// its sequence number, tenant and record time, serialised as canonical JSON (RFC 8785) so that any
// verifier re-derives the exact bytes that were hashed. Human identifiers never enter an entry:
// they are replaced by a salted commitment whose salt lives in `audit_subjects`, so a person can be
// erased (their salt deleted) without breaking a single hash.
import { createHash, randomBytes } from "node:crypto";
import canonicalize from "canonicalize";

/** Version of the entry format; verifiers refuse versions they do not know. */
export const ENTRY_VERSION = 1;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A party as events name it (proto3 JSON of mandate.v1.Party). */
export interface PartyJson {
  id: string;
  kind: string;
  attributes?: Record<string, Json>;
}

/** An event as the Audit service receives it (proto3 JSON of mandate.v1.AuditEvent). */
export interface EventJson {
  type: string;
  subject?: PartyJson;
  actors?: PartyJson[];
  client?: PartyJson;
  resource?: { type: string; id?: string; attributes?: Record<string, Json> };
  action?: string;
  outcome?: string;
  reason?: string;
  mandateId?: string;
  requestId?: string;
  traceId?: string;
  eventTime?: string;
  details?: Record<string, Json>;
}

export interface EntryBody {
  v: number;
  tenant: string;
  seq: number;
  recordTime: string;
  event: Record<string, Json>;
}

/** Looks up (or makes) the salt of a personal identifier, within the writer's transaction. */
export type SaltFor = (value: string) => Promise<string>;

export function newSalt(): string {
  return randomBytes(16).toString("base64url");
}

/** The reference an entry carries for a human: "h:" + base64url(SHA-256(salt || id)). */
export function humanRef(salt: string, id: string): string {
  return `h:${createHash("sha256").update(salt).update("\u0000").update(id).digest("base64url")}`;
}

/** The event as stored: human parties reduced to their commitment (attributes of humans are not logged). */
export async function redactEvent(
  event: EventJson,
  saltFor: SaltFor,
): Promise<{ event: Record<string, Json>; subject: string | null; actors: string[] }> {
  const party = async (p: PartyJson | undefined): Promise<Record<string, Json> | undefined> => {
    if (!p) return undefined;
    if (p.kind !== "PARTY_KIND_HUMAN") return { ...p } as Record<string, Json>;
    return { kind: p.kind, ref: humanRef(await saltFor(p.id), p.id) };
  };
  const refOf = (p: Record<string, Json> | undefined) => (p ? String(p.ref ?? p.id) : null);
  const subject = await party(event.subject);
  const actors = await Promise.all((event.actors ?? []).map(party));
  const client = await party(event.client);
  const stored: Record<string, Json> = { ...(event as unknown as Record<string, Json>) };
  if (subject) stored.subject = subject;
  if (actors.length > 0) stored.actors = actors as Json[];
  if (client) stored.client = client;
  return { event: stored, subject: refOf(subject), actors: actors.map((a) => refOf(a) as string) };
}

/** The canonical bytes that are hashed into the tree (RFC 8785). */
export function serializeEntry(body: EntryBody): string {
  const text = canonicalize(body);
  if (text === undefined) throw new Error("audit entry is not serialisable");
  return text;
}

/** Event types as the contract allows them (`^[a-z][a-z0-9_.]*\.v[0-9]+$`). */
const EVENT_TYPE = /^[a-z][a-z0-9_.]*\.v[0-9]+$/;

/**
 * Why an event cannot enter the log as it is, or undefined when it can: every string must be
 * well-formed Unicode, since the entry is canonical JSON (RFC 8785 §3.2.2.2 refuses lone surrogates).
 */
export function unencodable(value: unknown, path = "event", depth = 0): string | undefined {
  if (depth > 64) return `${path} is nested too deeply`;
  if (typeof value === "string") return value.isWellFormed() ? undefined : `${path} is not well-formed Unicode`;
  if (typeof value === "number") return Number.isFinite(value) ? undefined : `${path} is not a finite number`;
  if (value === null || typeof value === "boolean" || value === undefined) return undefined;
  if (Array.isArray(value)) return unencodableItem(value, path, depth);
  if (typeof value === "object") return unencodableMember(Object.entries(value), path, depth);
  return `${path} is a ${typeof value}, which JSON cannot hold`;
}

function unencodableItem(items: readonly unknown[], path: string, depth: number): string | undefined {
  for (let i = 0; i < items.length; i++) {
    const problem = unencodable(items[i], `${path}[${i}]`, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

function unencodableMember(members: Iterable<[string, unknown]>, path: string, depth: number): string | undefined {
  for (const [key, inner] of members) {
    if (!key.isWellFormed()) return `a key in ${path} is not well-formed Unicode`;
    const problem = unencodable(inner, `${path}.${key}`, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * The defined degraded form of an event that cannot be logged as it is: its type (when valid), id
 * and time, and in place of everything else the reason and the SHA-256 of what was stored (`raw`,
 * as UTF-8; JSON.stringify makes any string well-formed), so the log moves on and the loss is
 * visible and bounded — the next entry records the incident itself.
 */
export function degradedEvent(
  original: { type?: unknown; requestId?: unknown; eventTime?: unknown; outcome?: unknown },
  raw: string,
  reason: string,
): EventJson {
  const wellFormed = (v: unknown, max: number): v is string =>
    typeof v === "string" && v.isWellFormed() && v.length <= max;
  const time = wellFormed(original.eventTime, 64) && !Number.isNaN(Date.parse(original.eventTime));
  return {
    type: wellFormed(original.type, 128) && EVENT_TYPE.test(original.type) ? original.type : "audit.unencodable.v1",
    ...(wellFormed(original.requestId, 128) ? { requestId: original.requestId } : {}),
    ...(time ? { eventTime: original.eventTime as string } : {}),
    ...(wellFormed(original.outcome, 32) ? { outcome: original.outcome } : {}),
    details: { degraded: true, reason, original_sha256: createHash("sha256").update(raw, "utf8").digest("base64url") },
  };
}

/** The incident record that follows a degraded entry. */
export function degradationIncident(degraded: EventJson, seq: number): EventJson {
  return {
    type: "audit.entry_degraded.v1",
    outcome: "OUTCOME_FAILURE",
    reason: String(degraded.details?.reason ?? "unencodable event"),
    details: {
      degraded_seq: seq,
      original_type: degraded.type,
      original_sha256: degraded.details?.original_sha256 ?? null,
    },
  };
}
