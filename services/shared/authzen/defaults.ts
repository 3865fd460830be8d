// AuthZEN 1.0 §7.1.1 (Access Evaluations API, default values): the top-level `subject`, `action`,
// `resource` and `context` of an evaluations request are the defaults of each of its evaluations; an
// evaluation's own member replaces the default whole (nothing is merged inside it). One rule for
// Mandate's AuthZEN API (services/authorize/authzen) and the MCP kit's COAZ mapping (services/mcp/coaz).

/** The members of an evaluation (§6.1) that a request's top level gives defaults for. */
export const EVALUATION_MEMBERS = ["subject", "action", "resource", "context"] as const;
export type EvaluationMember = (typeof EVALUATION_MEMBERS)[number];

/** `item`'s evaluation members, each it does not set taken from `defaults`; one neither gives is absent. */
export function withDefaults(
  defaults: Readonly<Partial<Record<EvaluationMember, unknown>>>,
  item: object,
): Partial<Record<EvaluationMember, unknown>> {
  const merged: Partial<Record<EvaluationMember, unknown>> = {};
  for (const member of EVALUATION_MEMBERS) {
    const value = Object.hasOwn(item, member) ? (item as Record<EvaluationMember, unknown>)[member] : defaults[member];
    if (value !== undefined) merged[member] = value;
  }
  return merged;
}
