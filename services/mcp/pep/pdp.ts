// What the guard asks of a PDP beyond the contract's Pdp (../types.ts): the questions of every
// message of one HTTP request at once. Authorize in access-token mode needs this: a request's DPoP
// proof is single use (RFC 9449 §11.1), and Authorize verifies it once per call (a BatchCheck shares
// the verification between its checks), so one protected request must be one Authorize call.
import type {
  AuthzenEvaluation,
  EvaluationsSemantic,
  Pdp,
  PdpDecision,
  UsageCharge,
  VerifiedCaller,
} from "../types.ts";

/** The evaluations of one JSON-RPC message, with its usage charge when it has one. */
export interface PdpQuestion {
  evaluations: AuthzenEvaluation[];
  semantic?: EvaluationsSemantic | undefined;
  charge?: UsageCharge | undefined;
}

/** A Pdp that decides several messages in one round trip and can count a mandate's usage. */
export interface BatchingPdp extends Pdp {
  /** Whether `charge` is counted (Authorize's CheckRequest.consume); an AuthZEN PDP cannot. */
  readonly countsUsage: boolean;
  /** One list of decisions per question, in order. */
  evaluateAll(caller: VerifiedCaller, questions: PdpQuestion[]): Promise<PdpDecision[][]>;
}

export function isBatchingPdp(pdp: Pdp): pdp is BatchingPdp {
  return typeof (pdp as Partial<BatchingPdp>).evaluateAll === "function";
}
