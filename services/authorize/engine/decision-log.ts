// A decision's log entry (`authz.decision.v1`, built by shared/audit-events.ts): who it was about as
// audit parties (humans become salted references in the log), the input without those parties' ids
// and without every path of the decision-log mask (config.authorize.decisionLogMask), and the
// SHA-256 of the whole input as evaluated (RFC 8785 canonical JSON), so a holder of the original
// input can prove what was decided without the log keeping it.
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import { decisionMade, type OutboxEvent, type OutboxParties, type Party } from "../../shared/audit-events.ts";
import type { DecisionInput, InputParty } from "./decision-input.ts";
import type { Obligation } from "./normalise.ts";
import type { Reason } from "./reasons.ts";

export interface DecisionRecord {
  decisionId: string;
  allow: boolean;
  reasons: Reason[];
  obligations: Obligation[];
  policyRevision: string;
}

export function decisionEvent(
  record: DecisionRecord,
  input: DecisionInput,
  options: { mask: readonly string[]; callerRequestId?: string | undefined },
): OutboxEvent {
  const mandateId = input.token?.mandate_id;
  return decisionMade({
    ...record,
    parties: partiesOf(input),
    action: input.action,
    resource: { type: input.resource?.type ?? "", ...(input.resource?.id ? { id: input.resource.id } : {}) },
    inputSha256: inputDigest(input),
    input: maskedInput(input, options.mask),
    ...(mandateId ? { mandateId } : {}),
    ...(options.callerRequestId ? { requestId: options.callerRequestId } : {}),
  });
}

/** SHA-256 (base64url) of the input's canonical JSON (RFC 8785), before anything is masked. */
export function inputDigest(input: DecisionInput): string {
  const text = canonicalize(input);
  if (text === undefined) throw new Error("the decision input is not serialisable");
  return createHash("sha256").update(text, "utf8").digest("base64url");
}

/** The subject, actors and client as audit parties (PARTY_KIND_*); nobody (a refused token) is left out. */
export function partiesOf(input: DecisionInput): OutboxParties {
  // Inputs built elsewhere (AuthZEN) may leave collections out: read defensively.
  const actors = (input.actors ?? []).filter((actor) => actor.id).map(auditParty);
  return {
    ...(input.subject?.id ? { subject: auditParty(input.subject) } : {}),
    ...(actors.length > 0 ? { actors } : {}),
    ...(input.client?.id ? { client: auditParty(input.client) } : {}),
  };
}

function auditParty(party: InputParty): Party {
  return { id: party.id, kind: `PARTY_KIND_${party.kind.toUpperCase()}` };
}

/**
 * The input as logged: a copy without the parties' ids (they travel as parties, where the log
 * redacts humans) nor a human's attributes, without the verbatim AuthZEN request, and without each
 * masked path. Paths are JSON Pointers (RFC 6901: `~1` is `/`, `~0`
 * is `~`); `*` stands for every member or element at its level.
 */
export function maskedInput(input: DecisionInput, mask: readonly string[]): Record<string, unknown> {
  // Copies only what changes (the top level, the parties, the nodes along each masked path): the
  // input itself is left untouched, without the cost of a deep clone per decision.
  let copy: Record<string, unknown> = { ...(input as unknown as Record<string, unknown>) };
  for (const name of ["subject", "client"] as const) if (name in copy) copy[name] = loggedParty(copy[name]);
  if (Array.isArray(copy.actors)) copy.actors = copy.actors.map(loggedParty);
  // An AuthZEN request is also kept verbatim under `authzen` (subject id and all): it repeats what the
  // mapped input holds, so it is never logged.
  delete copy.authzen;
  for (const path of mask) copy = removePath(copy, pointerSegments(path)) as Record<string, unknown>;
  return copy;
}

/** A party as logged: no id; and no attributes for a person (email, name, groups... are personal data). */
function loggedParty(party: unknown): unknown {
  if (!isContainer(party) || Array.isArray(party)) return party;
  const { id: _id, ...rest } = party as Record<string, unknown>;
  if (rest.kind === "human") delete rest.attributes;
  return rest;
}

function pointerSegments(path: string): string[] {
  return path
    .split("/")
    .slice(1)
    .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/** `node` without what `segments` points at: a copy along the path, the rest shared. */
function removePath(node: unknown, segments: readonly string[]): unknown {
  const [head, ...rest] = segments;
  if (head === undefined || !isContainer(node)) return node;
  const out = (Array.isArray(node) ? [...node] : { ...node }) as Record<string, unknown>;
  const keys = head === "*" ? Object.keys(out) : [head];
  for (const key of keys.reverse()) {
    if (!Object.hasOwn(out, key)) continue;
    if (rest.length > 0) out[key] = removePath(out[key], rest);
    else removeMember(out, key);
  }
  return out;
}

function removeMember(node: object, key: string): void {
  if (Array.isArray(node)) {
    const index = Number(key);
    if (Number.isInteger(index) && index >= 0 && index < node.length) node.splice(index, 1);
  } else {
    delete (node as Record<string, unknown>)[key];
  }
}

function isContainer(value: unknown): value is object {
  return typeof value === "object" && value !== null;
}
