// An AuthZEN evaluation as the decision input of `data.mandate.authz.decision`, version 1, mapped as
// docs/design/authorize.md says: the subject's AuthZEN type gives its kind (user → human, agent →
// agent, anything else → service) and is kept as `subject.type`; `properties` become `attributes`;
// the action is its name, its properties `action_attributes`; the context is the caller's, with
// `time` set here; and the whole evaluation is under `authzen`, verbatim.
import type { Evaluation, JsonObject } from "./requests.ts";

const KINDS: Readonly<Record<string, string>> = { user: "human", agent: "agent" };

export interface InputOptions {
  tenant: string;
  /** The request's X-Request-ID (echoed, or generated): recorded with the decision. */
  requestId: string;
  /** Milliseconds since the epoch: `context.time` (a caller-supplied `time` is not trusted). */
  now: number;
}

export function decisionInput(evaluation: Evaluation, options: InputOptions): JsonObject {
  const { subject, action, resource } = evaluation;
  return {
    version: 1,
    tenant: options.tenant,
    subject: {
      id: subject.id,
      kind: KINDS[subject.type] ?? "service",
      type: subject.type,
      attributes: subject.properties ?? {},
    },
    // An AuthZEN request names no actor chain, client or token: empty, never absent.
    actors: [],
    action: action.name,
    action_attributes: action.properties ?? {},
    resource: { type: resource.type, id: resource.id, attributes: resource.properties ?? {} },
    token: { scopes: [], aud: [], authorization_details: [] },
    context: { ...evaluation.context, time: options.now, request_id: options.requestId },
    authzen: evaluation,
  };
}
