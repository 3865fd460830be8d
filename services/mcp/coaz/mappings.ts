// Stage 2b: the binding's default mappings ("Default Mappings"), as data in the binding's own JSON
// form, and the pass-through set. A method in neither is denied (binding "Unknown Methods").
import type { JsonObject } from "@bufbuild/protobuf";
import type { JsonRpcRequest } from "../types.ts";

/** The subject-identity claim absent any designation (binding "The Subject-Identity Claim"). */
export const DEFAULT_SUBJECT_CLAIM = "sub";

/** `resource` of the methods that target this MCP server as a whole. */
const SERVER: JsonObject = { type: "mcp_server", id: "$token.aud" };
const TASK: JsonObject = { type: "task", id: "$params.taskId" };
const RESOURCE: JsonObject = { type: "resource", id: "$params.uri" };

/** Per method: the resource and any context beyond the shared `agent` (binding "Default Mappings"). */
const PER_METHOD: Readonly<Record<string, { resource: JsonObject; context?: JsonObject }>> = {
  initialize: { resource: SERVER, context: { protocol_version: "$params.protocolVersion" } },
  "tools/list": { resource: SERVER },
  "tools/call": { resource: { type: "tool", id: "$params.name" } },
  "resources/list": { resource: SERVER },
  "resources/read": { resource: RESOURCE },
  "resources/subscribe": { resource: RESOURCE },
  "resources/unsubscribe": { resource: RESOURCE },
  "prompts/list": { resource: SERVER },
  "prompts/get": { resource: { type: "prompt", id: "$params.name" } },
  // The binding writes the id as "$params.ref.type == 'ref/prompt' ? $params.ref.name : $params.ref.uri":
  // a `$` inside an expression is not CEL (only the leading one marks it), so the inner ones are dropped.
  "completion/complete": {
    resource: {
      type: "$params.ref.type == 'ref/prompt' ? 'prompt' : 'resource'",
      id: "$params.ref.type == 'ref/prompt' ? params.ref.name : params.ref.uri",
    },
  },
  "logging/setLevel": { resource: SERVER, context: { level: "$params.level" } },
  "tasks/get": { resource: TASK },
  "tasks/result": { resource: TASK },
  "tasks/cancel": { resource: TASK },
  "tasks/list": { resource: SERVER },
};

/** The methods with a default mapping. */
export const MAPPED_METHODS: readonly string[] = Object.keys(PER_METHOD);

// CEL keywords and reserved words (cel-spec langdef "Syntax"): not usable after `token.`.
const CEL_RESERVED = new Set(
  "as break const continue else false for function if import in let loop package namespace null return true var void while".split(
    " ",
  ),
);

/** `$token.<claim>` for the designated subject-identity claim, indexed when it is no CEL identifier. */
export function subjectIdExpression(claim: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(claim) && !CEL_RESERVED.has(claim)) return `$token.${claim}`;
  return `$token[${JSON.stringify(claim)}]`;
}

/** The shared default subject (binding "Default Mappings"), anchored to the designated claim. */
export function defaultSubject(claim: string = DEFAULT_SUBJECT_CLAIM): JsonObject {
  return { type: "identity", id: subjectIdExpression(claim) };
}

/** The shared default context: the agent from the token, omitted when the token names none. */
export const DEFAULT_AGENT = "$token.?client_id";

/** The default mapping of a method, `evaluation` envelope, or undefined when the binding has none. */
export function defaultMapping(method: string, claim: string = DEFAULT_SUBJECT_CLAIM): JsonObject | undefined {
  const shape = Object.hasOwn(PER_METHOD, method) ? PER_METHOD[method] : undefined;
  if (!shape) return undefined;
  return {
    evaluation: {
      subject: defaultSubject(claim),
      context: { agent: DEFAULT_AGENT, ...shape.context },
      action: { name: method },
      resource: shape.resource,
    },
  };
}

/**
 * Binding "Pass-through Operations": `ping`, and notifications (`notifications/*`, which carry no `id`).
 * A `notifications/*` method sent with an `id` is a request, not a notification, so it is not passed.
 */
export function isPassThrough(message: Pick<JsonRpcRequest, "method" | "id">): boolean {
  if (message.method === "ping") return true;
  return message.method.startsWith("notifications/") && message.id === undefined;
}
