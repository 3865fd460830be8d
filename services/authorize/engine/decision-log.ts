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
  const copy = structuredClone(input) as unknown as Record<string, unknown>;
  for (const party of [copy.subject, copy.client, ...((copy.actors as unknown[] | undefined) ?? [])]) {
    if (!isContainer(party)) continue;
    const fields = party as Record<string, unknown>;
    delete fields.id;
    // A person's attributes (email, name, groups...) are personal data: the log keeps people only as
    // erasable salted references, so they are not copied into the payload.
    if (fields.kind === "human") delete fields.attributes;
  }
  // An AuthZEN request is also kept verbatim under `authzen` (subject id and all): it repeats what the
  // mapped input holds, so it is never logged.
  delete copy.authzen;
  for (const path of mask) removePath(copy, pointerSegments(path));
  return copy;
}

function pointerSegments(path: string): string[] {
  return path
    .split("/")
    .slice(1)
    .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function removePath(node: unknown, segments: readonly string[]): void {
  const [head, ...rest] = segments;
  if (head === undefined || !isContainer(node)) return;
  const keys = head === "*" ? Object.keys(node) : [head];
  for (const key of keys.reverse()) {
    if (!Object.hasOwn(node, key)) continue;
    if (rest.length > 0) removePath((node as Record<string, unknown>)[key], rest);
    else removeMember(node, key);
  }
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
