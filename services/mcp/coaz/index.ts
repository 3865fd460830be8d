// The COAZ-MCP mapping stage (issue 19): a JSON-RPC message and the validated token's claims in, the
// AuthZEN request to send out (or pass-through), the subject and agent anchored to the token.
// Pipeline, each stage testable alone: expression.ts (literals, CEL) → mappings.ts (defaults) →
// declared.ts (envelopes, x-authzen-mapping) → map.ts (selection, AuthZEN shape, anchoring).

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
