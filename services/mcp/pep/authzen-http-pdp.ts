// AuthzenHttpPdp: any AuthZEN 1.0 PDP over HTTP (authorization-api-1_0 §6 Access Evaluation API,
// §7 Access Evaluations API) — e.g. Mandate's own `{publicBaseUrl}/t/{tenant}` (README "Policy
// decisions": POST /access/v1/evaluation and /access/v1/evaluations, for a caller holding
// `mandate:authorize`). The PDP decides what the mapping says; it never sees the caller's access
// token, so the subject is the one stage 2 anchored to the verified token. The AuthZEN API carries no
// consumption: with this PDP a mandate's usage is not counted (`countsUsage` false).
// Unreachable, slow, non-2xx or malformed answers are PdpUnavailable (COAZ-MCP -32603, fail closed).
import type { JsonObject } from "@bufbuild/protobuf";
import { type AuthzenEvaluation, type Pdp, type PdpDecision, PdpUnavailable, type VerifiedCaller } from "../types.ts";
import type { BatchingPdp, PdpQuestion } from "./pdp.ts";

export interface AuthzenHttpPdpOptions {
  /** The PDP's base URL; the API is at `{base}/access/v1/...` (AuthZEN §11 metadata's endpoints). */
  baseUrl: string;
  /** The PEP's own credential for the PDP, e.g. a client-credentials token with `mandate:authorize`. */
  token?: (() => string | Promise<string>) | undefined;
  /** Per request. Default 2000 ms. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

interface WireDecision {
  decision: boolean;
  context?: JsonObject;
}

export class AuthzenHttpPdp implements BatchingPdp {
  readonly countsUsage = false;
  readonly #options: AuthzenHttpPdpOptions;
  readonly #base: string;

  constructor(options: AuthzenHttpPdpOptions) {
    this.#options = options;
    this.#base = options.baseUrl.replace(/\/+$/, "");
  }

  async evaluate(
    _caller: VerifiedCaller,
    evaluations: AuthzenEvaluation[],
    options?: Parameters<Pdp["evaluate"]>[2],
  ): Promise<PdpDecision[]> {
    if (evaluations.length === 0) return [];
    if (evaluations.length === 1) {
      const answer = await this.#post("/access/v1/evaluation", evaluations[0] as AuthzenEvaluation);
      return [decisionOf(answer)];
    }
    const semantic = options?.semantic ?? "execute_all";
    // §7: each entry complete (defaults already expanded by stage 2), the semantic in options.
    const answer = await this.#post("/access/v1/evaluations", {
      evaluations: evaluations as unknown as JsonObject[],
      options: { evaluations_semantic: semantic },
    });
    const list = (answer as { evaluations?: unknown }).evaluations;
    if (!Array.isArray(list) || list.length === 0 || list.length > evaluations.length) {
      throw new PdpUnavailable("the AuthZEN PDP answered an invalid evaluations response");
    }
    const decisions = list.map(decisionOf);
    // §7.1.2: a short-circuiting semantic answers up to the deciding evaluation; the ones it did not
    // evaluate are not permits (the COAZ-MCP binding allows a message only if every one permits).
    const skipped: PdpDecision = { decision: false, context: { reason: "not evaluated" } };
    while (decisions.length < evaluations.length) decisions.push(skipped);
    if (semantic === "execute_all" && list.length !== evaluations.length) {
      throw new PdpUnavailable("the AuthZEN PDP answered fewer decisions than asked");
    }
    return decisions;
  }

  async evaluateAll(caller: VerifiedCaller, questions: PdpQuestion[]): Promise<PdpDecision[][]> {
    return Promise.all(
      questions.map((question) =>
        this.evaluate(caller, question.evaluations, { semantic: question.semantic ?? "execute_all" }),
      ),
    );
  }

  async #post(path: string, body: unknown): Promise<unknown> {
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
    let response: Response;
    try {
      const token = await this.#options.token?.();
      if (token) headers.authorization = `Bearer ${token}`;
      response = await (this.#options.fetch ?? fetch)(`${this.#base}${path}`, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        redirect: "error",
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? 2000),
      });
    } catch (error) {
      throw new PdpUnavailable("the AuthZEN PDP did not answer", { cause: error });
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new PdpUnavailable(`the AuthZEN PDP answered HTTP ${response.status}`);
    }
    try {
      return await response.json();
    } catch (error) {
      throw new PdpUnavailable("the AuthZEN PDP answered something other than JSON", { cause: error });
    }
  }
}

/** AuthZEN §6.2: `decision` is a boolean; `context` an optional object (reasons, obligations...). */
function decisionOf(answer: unknown): PdpDecision {
  const wire = answer as Partial<WireDecision> | null;
  if (typeof wire !== "object" || wire === null || typeof wire.decision !== "boolean") {
    throw new PdpUnavailable("the AuthZEN PDP answered without a boolean decision");
  }
  const context = isObject(wire.context) ? wire.context : undefined;
  // Mandate's AuthZEN context says {type, parameters}; the kit's obligations are flat ({type, acr_values...}).
  const obligations = Array.isArray(context?.obligations)
    ? context.obligations
        .filter(isObject)
        .map((o) => (isObject(o.parameters) ? { ...o.parameters, type: o.type ?? null } : o))
    : undefined;
  return { decision: wire.decision, ...(context ? { context } : {}), ...(obligations ? { obligations } : {}) };
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
