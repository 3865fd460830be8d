// AuthorizePdp: AuthZEN evaluations decided by Mandate's Authorize in ACCESS-TOKEN MODE. Each check
// carries the caller's access token, its DPoP proof, its client certificate and this MCP server as
// `expected_audience`, so Authorize verifies the token itself (as Introspect does) and the policy
// sees the verified parties, the actor chain and the mandate — never a subject the mapping claims.
//
// DPoP (RFC 9449 §11.1, a proof is single use per verifier): the resource server (stage 1) checks
// the proof against ITS replay memory, then Authorize checks the same proof against ITS own. That is
// sound as long as the two memories are distinct (the resource server's default MemoryReplayCache,
// or a Redis other than Mandate's: both use the key `mandate:replay:dpop:{jkt}:{jti}`, so sharing
// Mandate's Redis would make every DPoP request a replay — a deny, never an allow). A proof can
// reach Authorize only once, so all the questions of one HTTP request go in ONE call (`evaluateAll`:
// a BatchCheck, whose checks share one token verification): asking twice with one proof would be
// refused as a replay, and a replayed HTTP request is already refused by the resource server.
//
// Mapping to Authorize: action = evaluation.action.name (its pattern checked first: an action
// Authorize cannot represent is a COAZ mapping error, -32602, not a PDP failure); resource =
// {type, id, attributes: properties}; context = evaluation.context plus, under `authzen`, what the
// AuthZEN request said besides: the mapped subject (`authzen.subject`, informational only — the
// policy's subject is the token's) and the action's properties (`authzen.action_properties`).
import type { JsonObject } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { Authorize, Decision } from "../../../gen/mandate/v1/authorize_pb.js";
import type { CheckInput } from "../../authorize/client.ts";
import {
  type AuthzenEvaluation,
  CoazMappingError,
  type Pdp,
  type PdpDecision,
  PdpUnavailable,
  type UsageCharge,
  type VerifiedCaller,
} from "../types.ts";
import type { BatchingPdp, PdpQuestion } from "./pdp.ts";

/** What AuthorizePdp needs of Authorize: services/authorize/client.ts AuthorizeClient has exactly this. */
export interface AuthorizeDecider {
  check(input: CheckInput): Promise<Decision>;
  batchCheck(tenant: string, checks: CheckInput[]): Promise<Decision[]>;
}

/** A Connect client of mandate.v1.Authorize (in process, gRPC or gRPC-web) as an AuthorizeDecider. */
export function connectAuthorize(client: Client<typeof Authorize>): AuthorizeDecider {
  return {
    async check(input) {
      const { decision } = await client.check(input);
      if (!decision) throw new Error("Authorize answered without a decision");
      return decision;
    },
    async batchCheck(tenant, checks) {
      return (await client.batchCheck({ tenant, checks })).decisions;
    },
  };
}

export interface AuthorizePdpOptions {
  /** Authorize over any transport: an AuthorizeClient (grpc-js) or connectAuthorize(client). */
  authorize: AuthorizeDecider;
  /** The tenant whose policy decides (the tenant that issued the MCP server's tokens). */
  tenant: string;
  /** This MCP server's canonical URI (RFC 8707): a token without it in `aud` is a deny. */
  audience: string;
}

/** The context member carrying what of the AuthZEN request Authorize's CheckRequest has no field for. */
export const AUTHZEN_CONTEXT_KEY = "authzen";

// proto/mandate/v1/authorize.proto CheckRequest.action and common.proto Resource.type / id.
const ACTION_PATTERN = /^[A-Za-z0-9_.:/*-]{1,256}$/;
const RESOURCE_TYPE_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]{0,127}$/;
const RESOURCE_ID_MAX = 1024;
/** BatchCheck's limit (authorize.proto BatchCheckRequest.checks max_items). */
const MAX_CHECKS = 100;

export class AuthorizePdp implements BatchingPdp {
  readonly countsUsage = true;
  readonly #options: AuthorizePdpOptions;

  constructor(options: AuthorizePdpOptions) {
    this.#options = options;
  }

  async evaluate(
    caller: VerifiedCaller,
    evaluations: AuthzenEvaluation[],
    options?: Parameters<Pdp["evaluate"]>[2],
  ): Promise<PdpDecision[]> {
    const [decisions] = await this.evaluateAll(caller, [{ evaluations, ...options }]);
    return decisions ?? [];
  }

  /**
   * Every question in one Authorize call. Authorize decides every check (execute_all is what any
   * semantic needs for an all-permit answer). A question's charge rides on its first evaluation:
   * counted once, when that check is allowed; over the limit, that check is the deny
   * `mandate_usage_exhausted`, so the message is refused and nothing is charged. Authorize counts
   * each check on its own, so a message mapped to several evaluations is charged when its first is
   * allowed even if a later one is denied (over-counted, never under-counted); a second call would
   * need the proof again.
   */
  async evaluateAll(caller: VerifiedCaller, questions: PdpQuestion[]): Promise<PdpDecision[][]> {
    const checks = questions.flatMap((question) =>
      question.evaluations.map((evaluation, i) =>
        this.#check(caller, evaluation, i === 0 ? question.charge : undefined),
      ),
    );
    if (checks.length === 0) return questions.map(() => []);
    if (checks.length > MAX_CHECKS) {
      throw new CoazMappingError(`one request may ask at most ${MAX_CHECKS} authorization questions`);
    }
    const decisions = await this.#decide(checks);
    let next = 0;
    return questions.map((question) => question.evaluations.map(() => pdpDecision(decisions[next++] as Decision)));
  }

  async #decide(checks: CheckInput[]): Promise<Decision[]> {
    const { authorize, tenant } = this.#options;
    let decisions: Decision[];
    try {
      decisions =
        checks.length === 1
          ? [await authorize.check(checks[0] as CheckInput)]
          : await authorize.batchCheck(tenant, checks);
    } catch (error) {
      throw new PdpUnavailable("Authorize did not answer", { cause: error });
    }
    if (decisions.length !== checks.length || decisions.some((decision) => !decision)) {
      throw new PdpUnavailable(`Authorize answered ${decisions.length} decisions for ${checks.length} questions`);
    }
    return decisions;
  }

  #check(caller: VerifiedCaller, evaluation: AuthzenEvaluation, charge: UsageCharge | undefined): CheckInput {
    const { action, resource, subject } = evaluation;
    if (!ACTION_PATTERN.test(action.name)) {
      throw new CoazMappingError(`the action "${printable(action.name)}" is not a valid Authorize action`);
    }
    if (!RESOURCE_TYPE_PATTERN.test(resource.type)) {
      throw new CoazMappingError(
        `the resource type "${printable(resource.type)}" is not a valid Authorize resource type`,
      );
    }
    if (resource.id.length > RESOURCE_ID_MAX) throw new CoazMappingError("the resource id is too long");
    const authzen: JsonObject = {
      subject: {
        type: subject.type,
        id: subject.id,
        ...(subject.properties ? { properties: subject.properties } : {}),
      },
      ...(action.properties ? { action_properties: action.properties } : {}),
    };
    return {
      tenant: this.#options.tenant,
      accessToken: caller.token,
      expectedAudience: this.#options.audience,
      ...(caller.dpop ? { dpop: { ...caller.dpop, httpUri: caller.dpop.httpUri.split(/[?#]/)[0] } } : {}),
      ...(caller.clientCertificate ? { clientCertificate: caller.clientCertificate } : {}),
      action: action.name,
      resource: {
        type: resource.type,
        id: resource.id,
        ...(resource.properties ? { attributes: resource.properties } : {}),
      },
      context: { ...evaluation.context, [AUTHZEN_CONTEXT_KEY]: authzen },
      ...(charge
        ? {
            consume: {
              meter: charge.meter,
              amount: charge.amount,
              idempotencyKey: charge.idempotencyKey,
              onlyIfLimited: charge.onlyIfLimited ?? false,
            },
          }
        : {}),
    };
  }
}

/** Authorize's decision, AuthZEN-shaped: reasons, decision id, revision, obligations and consumption in context. */
export function pdpDecision(decision: Decision): PdpDecision {
  const obligations: JsonObject[] = decision.obligations.map((o) => ({ ...o.parameters, type: o.type }));
  const context: JsonObject = {
    reasons: decision.reasons.map((reason) => ({ code: reason.code, message: reason.message })),
    decision_id: decision.decisionId,
    ...(decision.policyRevision ? { policy_revision: decision.policyRevision } : {}),
    ...(obligations.length > 0 ? { obligations } : {}),
    ...(decision.consumption
      ? {
          consumption: {
            mandate_id: decision.consumption.mandateId,
            meter: decision.consumption.meter,
            amount: decision.consumption.amount,
            replayed: decision.consumption.replayed,
          },
        }
      : {}),
  };
  return { decision: decision.allow, context, obligations };
}

function printable(value: string): string {
  return value.slice(0, 64).replace(/[^\x20-\x7e]/g, "?");
}
