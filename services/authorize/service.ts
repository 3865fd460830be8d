// mandate.v1.Authorize: policy decisions. Check and BatchCheck build the decision input
// (engine/decision-input.ts) — in access-token mode from the token, verified as Introspect verifies
// it (engine/token-subject.ts) — and the decision engine evaluates the tenant's Rego policy compiled
// to Wasm (engine/). Every decision is an answer: whatever fails along the way is a deny with its
// reason code, never an RPC error. Policies come from the registry (policies/registry.ts), which
// also serves the policy admin RPCs (policies/admin-rpcs.ts); the AuthZEN API (authzen/) on the
// edge decides with the same engine.
import { existsSync } from "node:fs";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  Authorize,
  type BatchCheckRequest,
  type CheckRequest,
  type ConsumptionResultSchema,
  type DecisionSchema,
} from "../../gen/mandate/v1/authorize_pb.js";
import type { Config } from "../shared/config.ts";
import type { ServiceDeps } from "../shared/deps.ts";
import { invalidArgument } from "../shared/errors.ts";
import { type ConsumeResult, MandateUsage } from "../shared/mandates/usage.ts";
import { TokenInspector } from "../shared/oauth/inspector.ts";
import { defineService, type ServiceModule } from "../shared/rpc/service.ts";
import { uuidV7 } from "../shared/uuid-v7.ts";
import { authzenHttp, enginePolicy } from "./authzen/index.ts";
import type { Decision } from "./engine/decider.ts";
import { type DecisionInput, decisionInput } from "./engine/decision-input.ts";
import { DecisionEngine } from "./engine/engine.ts";
import { DecisionMandates } from "./engine/mandate.ts";
import { PolicyMissingError, type PolicySource } from "./engine/policy-source.ts";
import { type TokenSubject, type TokenSubjectDeps, tokenSubject } from "./engine/token-subject.ts";
import { policyAdminRpcs } from "./policies/admin-rpcs.ts";
import { loadDefaultPolicy, PolicyRegistry, resolveDefaultPolicy } from "./policies/registry.ts";

type DecisionMessage = MessageInitShape<typeof DecisionSchema>;

export function authorizeService(deps: ServiceDeps): ServiceModule<typeof Authorize> {
  const { config, store, clock, signing, logger, replay } = deps;
  const now = () => clock.now();
  const registry = new PolicyRegistry({ store, config, logger, clock });
  const engine = new DecisionEngine({
    source: registrySource(registry, config),
    store,
    logger,
    settings: config.authorize,
    now,
    defaultPolicy: async () => {
      await registry.start();
      return { ...(await loadDefaultPolicy(config.authorize.defaultPolicy)), version: 0 };
    },
  });
  const tokens: TokenSubjectDeps = {
    inspector: TokenInspector.ofTenants({
      store,
      signing,
      publicBaseUrl: config.publicBaseUrl,
      revocations: deps.revocations,
      now,
    }),
    replay,
    skewMs: config.oauth.clockSkew,
    now,
    onError: (error) => logger.error({ err: error }, "an access token could not be verified"),
  };

  const mandates = new DecisionMandates(store, new MandateUsage(store, clock));

  /** One decision; `subjects` shares token verification between the checks of one batch. */
  async function decide(request: CheckRequest, subjects: TokenSubjects): Promise<DecisionMessage> {
    const time = now();
    const options = { time, requestId: request.requestId || uuidV7(time) };
    const log = { callerRequestId: request.requestId || undefined };
    let input: DecisionInput;
    if (request.accessToken) {
      const subject = await subjects.of(request);
      input = decisionInput(request, { ...options, fromToken: subject.ok ? subject.parties : undefined });
      if (!subject.ok) return toMessage(engine.refuse(request.tenant, input, subject.reason, log));
    } else {
      input = decisionInput(request, options);
    }
    const mandateId = input.token.mandate_id;
    if (!mandateId) {
      requireMandate(input, "consume");
      return toMessage(await engine.decide(request.tenant, input, log));
    }
    // A mandate: one read (its chain and counters), refused before the policy when it cannot be used.
    const checked = await mandates.check(input, mandateId);
    if (!checked.ok) return toMessage(engine.refuse(request.tenant, input, checked.reason, log));
    const decided = { ...input, mandate: checked.mandate };
    const settle = decided.consume ? mandates.settle(decided, checked.standing, decided.consume) : undefined;
    return toMessage(await engine.decide(request.tenant, decided, { ...log, settle }));
  }

  /**
   * A batch's consumptions without a mandate are refused before any check is decided (nor any
   * consumption counted): the batch is one invalid request, not partly decided.
   */
  async function requireBatchMandates(request: BatchCheckRequest, subjects: TokenSubjects): Promise<void> {
    for (const [i, check] of request.checks.entries()) {
      if (!(check.consume && check.accessToken)) continue;
      const subject = await subjects.of(check);
      if (subject.ok && !subject.parties.token.mandate_id) {
        throw consumeWithoutMandate(`checks[${i}].consume`);
      }
    }
  }

  const module = defineService(
    Authorize,
    {
      ...policyAdminRpcs(registry),
      async check(request) {
        return { decision: await decide(request, new TokenSubjects(tokens)) };
      },
      async batchCheck(request: BatchCheckRequest) {
        // In request order, each with its own decision id; the batch's checks share one tenant (validated).
        // Each check's consumption is its own: counted when that check is allowed, independent of the others.
        const subjects = new TokenSubjects(tokens);
        await requireBatchMandates(request, subjects);
        const decisions: DecisionMessage[] = [];
        for (const check of request.checks) decisions.push(await decide(check, subjects));
        return { decisions };
      },
    },
    {
      async start() {
        // The default policy compiles in the background: /readyz says not ready until it has loaded.
        registry.start().catch((error: unknown) => logger.error({ err: error }, "the policy registry did not start"));
        engine.start();
      },
      async stop() {
        await engine.stop();
        await registry.stop();
      },
    },
  );
  return {
    ...module,
    // The AuthZEN Authorization API on the edge (authzen/): the same engine and policies.
    http: authzenHttp(deps, enginePolicy(engine, registry), replay),
    readiness: async () => engine.readiness(),
  };
}

/**
 * Access-token verification per request, shared by the checks of one batch that present the same
 * token with the same DPoP proof (one protected request asking several questions): a proof is
 * single use (RFC 9449 §11.1), so verifying it once per check would refuse every check but the first.
 */
class TokenSubjects {
  readonly #deps: TokenSubjectDeps;
  readonly #seen = new Map<string, Promise<TokenSubject>>();
  constructor(deps: TokenSubjectDeps) {
    this.#deps = deps;
  }

  of(request: CheckRequest): Promise<TokenSubject> {
    const { tenant, accessToken, dpop, expectedAudience, clientCertificate } = request;
    const certificate = Buffer.from(clientCertificate).toString("base64url");
    const proof = [dpop?.proof, dpop?.httpMethod, dpop?.httpUri];
    const key = JSON.stringify([tenant, accessToken, ...proof, expectedAudience, certificate]);
    let subject = this.#seen.get(key);
    if (!subject) {
      subject = tokenSubject(this.#deps, {
        tenant,
        accessToken,
        dpop,
        clientCertificate: clientCertificate.length > 0 ? clientCertificate : undefined,
        expectedAudience: expectedAudience || undefined,
      });
      this.#seen.set(key, subject);
    }
    return subject;
  }
}

/**
 * The registry as the engine reads it. With no default policy configured where it says, a tenant
 * has no policy to fall back on: its decisions are `policy_missing` rather than `policy_error`.
 */
function registrySource(registry: PolicyRegistry, config: Config): PolicySource {
  return {
    // The registry starts with the service; a call that arrives first (the listener opens before the
    // lifecycles start) waits for it rather than failing.
    active: (tenant) =>
      registry
        .start()
        .then(() => registry.active(tenant))
        .catch((error: unknown) => {
          throw defaultPolicyMissing(config) ? new PolicyMissingError("no policy", { cause: error }) : error;
        }),
    onChange: (listener) => registry.onChange(listener),
  };
}

function defaultPolicyMissing(config: Config): boolean {
  try {
    return !existsSync(resolveDefaultPolicy(config.authorize.defaultPolicy));
  } catch {
    return true;
  }
}

/**
 * A consumption counts against a mandate: with none (a verified access token without `mandate_id`;
 * without a token, rule check.consume_needs_mandate refuses it first) the request is malformed, not
 * a question a policy could answer — allowing it would report usage that was never counted.
 */
function requireMandate(input: DecisionInput, field: string): void {
  if (input.consume && !input.token.mandate_id) throw consumeWithoutMandate(field);
}

function consumeWithoutMandate(field: string) {
  return invalidArgument([
    {
      field,
      description: "the access token carries no mandate_id: there is no mandate to count the consumption against",
      reason: "CONSUME_WITHOUT_MANDATE",
    },
  ]);
}

function toMessage(decision: Decision): DecisionMessage {
  return {
    allow: decision.allow,
    reasons: decision.reasons,
    obligations: decision.obligations,
    decisionId: decision.decisionId,
    policyRevision: decision.policyRevision,
    decideTime: timestampFromMs(decision.decideTime),
    ...(decision.consumption ? { consumption: consumptionMessage(decision.consumption) } : {}),
  };
}

function consumptionMessage(result: ConsumeResult): MessageInitShape<typeof ConsumptionResultSchema> {
  return {
    mandateId: result.mandateId,
    meter: result.meter,
    amount: result.amount,
    replayed: result.replayed,
    counters: result.counters.map((counter) => ({
      mandateId: counter.mandateId,
      meter: counter.meter,
      ...(counter.periodMs > 0 ? { period: durationFromMs(counter.periodMs) } : {}),
      used: counter.used,
      maximum: counter.maximum,
    })),
  };
}
