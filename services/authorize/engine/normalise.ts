// The policy's answer as a decision (docs/design/authorize.md, "The decision"): the result set of
// `data.mandate.authz.decision` must hold exactly one object whose `allow` is a boolean. Reasons
// and obligations may be strings or objects: a string reason is {code: "policy", message}, a
// string obligation {type}. Anything else is a deny with `policy_result_invalid` — an allow is only
// ever an allow the policy stated in full, with every obligation it attached.
import type { JsonObject } from "@bufbuild/protobuf";
import { type Failure, failure, type Reason } from "./reasons.ts";

export interface Obligation {
  type: string;
  parameters?: JsonObject;
}

export interface PolicyDecision {
  allow: boolean;
  reasons: Reason[];
  obligations: Obligation[];
}

export type Normalised = { ok: true; decision: PolicyDecision } | { ok: false; reason: Failure };

/** Most reasons and obligations one decision may carry. */
export const MAX_DECISION_ITEMS = 100;

export function normaliseResult(resultSet: unknown): Normalised {
  const single = singleResult(resultSet);
  if (!single.ok) return invalid(single.problem);
  const value = single.value;
  if (!isObject(value)) return invalid("the decision is not an object");
  if (typeof value.allow !== "boolean") return invalid("the decision's allow is not a boolean");
  const reasons = listOf(value.reasons, "reasons", reasonOf);
  if (typeof reasons === "string") return invalid(reasons);
  const obligations = listOf(value.obligations, "obligations", obligationOf);
  if (typeof obligations === "string") return invalid(obligations);
  return { ok: true, decision: { allow: value.allow, reasons, obligations } };
}

/** opa-wasm's result set: `[{result: value}]`; none (undefined decision) or several are invalid. */
function singleResult(resultSet: unknown): { ok: true; value: unknown } | { ok: false; problem: string } {
  if (!Array.isArray(resultSet) || resultSet.length === 0) return { ok: false, problem: "the policy gave no decision" };
  if (resultSet.length > 1) return { ok: false, problem: "the policy gave several decisions" };
  const [first] = resultSet as unknown[];
  if (!isObject(first) || !("result" in first)) return { ok: false, problem: "the policy gave no decision" };
  return { ok: true, value: first.result };
}

/** Items of an optional list; a string says what is wrong. */
function listOf<T>(value: unknown, name: string, item: (entry: unknown) => T | undefined): T[] | string {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return `the decision's ${name} is not a list`;
  if (value.length > MAX_DECISION_ITEMS) return `the decision has more than ${MAX_DECISION_ITEMS} ${name}`;
  const items: T[] = [];
  for (const entry of value) {
    const normalised = item(entry);
    if (normalised === undefined) return `the decision's ${name} hold an entry of the wrong shape`;
    items.push(normalised);
  }
  return items;
}

/** "text" → {code: "policy", message: "text"}; {code, message?} as given. */
function reasonOf(entry: unknown): Reason | undefined {
  if (typeof entry === "string") return { code: "policy", message: entry };
  if (!isObject(entry) || typeof entry.code !== "string" || entry.code === "") return undefined;
  if (entry.message !== undefined && typeof entry.message !== "string") return undefined;
  return { code: entry.code, message: entry.message ?? "" };
}

/** "type" → {type}; {type, ...parameters} → {type, parameters}. */
function obligationOf(entry: unknown): Obligation | undefined {
  if (typeof entry === "string") return entry ? { type: entry } : undefined;
  if (!isObject(entry) || typeof entry.type !== "string" || entry.type === "") return undefined;
  const { type, ...parameters } = entry;
  return Object.keys(parameters).length > 0 ? { type, parameters: parameters as JsonObject } : { type };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(message: string): Normalised {
  return { ok: false, reason: failure("policy_result_invalid", message) };
}
