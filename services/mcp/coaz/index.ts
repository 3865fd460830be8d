// The COAZ-MCP mapping stage (issue 19): a JSON-RPC message and the validated token's claims in, the
// AuthZEN request to send out (or pass-through), the subject and agent anchored to the token.
// Pipeline, each stage testable alone: expression.ts (literals, CEL) → mappings.ts (defaults) →
// declared.ts (envelopes, x-authzen-mapping) → map.ts (selection, AuthZEN shape, anchoring).
//
// Where the binding leaves a choice, this stage takes the strict one:
// - subject.id must equal the designated claim (`sub`, or MapOptions.subjectClaim) for every decision;
//   the binding's override case (a mapping taking subject.id from elsewhere, SHOULD warn) is refused
//   unless MapOptions.onUnanchoredSubject is given, which is then called with the warning;
// - context.agent, when a mapping sets it, must be one of the token's agent claims (`client_id`,
//   `act.sub`); when it is left out it is filled from the token (framework "Trust-Anchored Fields");
// - an `evaluations` envelope needs 1 to 100 entries and may not ask permit_on_first_permit, since the
//   binding allows a message only when every decision permits;
// - `$token.aud` is this server's configured resource identifier, never the raw (array) claim;
// - a `notifications/*` method sent with an id is a request, not a notification: denied, not passed;
// - an unmapped method (including resources/templates/list and the server-initiated ones) throws
//   CoazMethodDenied (JSON-RPC -32001), any mapping failure CoazMappingError (-32602).

export {
  type CompiledMapping,
  compileMapping,
  declaredMappingOf,
  declaredMappingsFromToolsList,
  MAPPING_MEMBER,
  MAX_EVALUATIONS,
} from "./declared.ts";
export {
  ABSENT,
  compileExpression,
  compileTemplate,
  type ExpressionInput,
  type Resolved,
  resolveServerAudience,
  type Template,
} from "./expression.ts";
export { CoazMethodDenied, DEFAULT_AGENT_CLAIMS, expandEvaluations, type MapOptions, mapMessage } from "./map.ts";
export {
  DEFAULT_SUBJECT_CLAIM,
  defaultMapping,
  defaultSubject,
  isPassThrough,
  MAPPED_METHODS,
  subjectIdExpression,
} from "./mappings.ts";
