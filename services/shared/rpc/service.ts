// One implementation per RPC, shared by every transport. A service module returns a partial
// Connect `ServiceImpl`; `wrapService` turns it into the complete implementation both the native
// gRPC server (grpc-js) and the HTTP edge (Connect, gRPC-Web) register:
//   who may call, from the method's (mandate.v1.access) rule  -> UNAUTHENTICATED / PERMISSION_DENIED
//     (first, before anything in the request is looked at; see access.ts)
//   request validation from the proto's buf.validate rules  -> INVALID_ARGUMENT naming the field
//   tenant must be registered                                -> NOT_FOUND
//   server-side default deadline                             -> DEADLINE_EXCEEDED
//   a span, a duration metric and a log line per call; internals never leak (INTERNAL)
//   methods whose feature has not landed                     -> UNIMPLEMENTED
import type { IncomingMessage, ServerResponse } from "node:http";
import type { DescMessage, DescService } from "@bufbuild/protobuf";
import { createValidator, type Validator } from "@bufbuild/protovalidate";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { context as otelContext, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { Code, ConnectError, invalidArgument, notFound, toPublicError, unimplemented } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { histogram, tracer } from "../telemetry.ts";
import { messageTextFault } from "../text.ts";
import { type AccessGate, type AccessRule, accessRuleOf, CALLER, type ClientAuthenticatorHook } from "./access.ts";

/** What a service module provides: its descriptor and the methods it implements so far. */
export interface ServiceModule<S extends DescService = DescService> {
  service: S;
  impl: Partial<ServiceImpl<S>>;
  /** Background work of the service (e.g. the audit writer's outbox drain), run while the process serves. */
  lifecycle?: Lifecycle | undefined;
  /** HTTP endpoints the service serves at the edge besides its RPCs (the OAuth server); false: not mine. */
  http?: HttpHandler | undefined;
  /** Authenticates the OAuth client named in a request, for methods whose access rule says so. */
  authenticateClient?: ClientAuthenticatorHook | undefined;
  /** Checks for /readyz beyond the service's health: name → "ok", or what is wrong. */
  readiness?: (() => Promise<Record<string, string>>) | undefined;
}

export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export interface Lifecycle {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function defineService<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
  lifecycle?: Lifecycle,
): ServiceModule<S> {
  return { service, impl, lifecycle };
}

/** Answers whether a tenant is registered. */
export interface TenantLookup {
  exists(tenantId: string): Promise<boolean>;
}

export interface WrapOptions {
  logger: Logger;
  tenants: TenantLookup | undefined;
  defaultDeadlineMs: number;
  /** Who may call: the network gate for transports, IN_PROCESS for the in-memory one. */
  access: AccessGate;
  validator?: Validator;
}

type AnyImpl = (request: unknown, context: HandlerContext) => unknown;

const sharedValidator = createValidator();

const rpcDuration = histogram("rpc.server.duration", {
  description: "Duration of RPCs handled, by method and status",
  unit: "ms",
});

/** The complete, wrapped implementation of a service module. */
export function wrapService<S extends DescService>(module: ServiceModule<S>, options: WrapOptions): ServiceImpl<S> {
  const validator = options.validator ?? sharedValidator;
  const wrapped: Record<string, AnyImpl> = {};
  for (const method of module.service.methods) {
    const impl = (module.impl as Record<string, AnyImpl | undefined>)[method.localName];
    const path = `${module.service.typeName}/${method.name}`;
    const rule: AccessRule | undefined = accessRuleOf(method);
    // Default deny, decided when the service is built: a method without an access rule never serves.
    if (!rule) throw new Error(`${path} declares no (mandate.v1.access) option: say who may call it in proto/`);
    const core: AnyImpl = impl ?? (() => Promise.reject(unimplemented(path)));
    const admit = async (request: unknown, context: HandlerContext) => {
      const args = { method, rule, request, context, authenticateClient: module.authenticateClient };
      const caller = await options.access.admit(args);
      context.values.set(CALLER, caller);
      validateRequest(validator, method.input, request);
      await requireTenant(options.tenants, module.service, request);
      return rule.exposure === "admin" && rule.readOnly && options.access.audited
        ? () => options.access.audited?.(args, caller)
        : undefined;
    };
    if (method.methodKind === "unary") {
      wrapped[method.localName] = (request, context) =>
        observe(path, context, options.logger, async () => {
          const audit = await admit(request, context);
          const response = await withDeadline(
            Promise.resolve(core(request, context)),
            context,
            options.defaultDeadlineMs,
          );
          await audit?.();
          return response;
        });
    } else if (method.methodKind === "server_streaming") {
      wrapped[method.localName] = (request, context) =>
        (async function* () {
          try {
            const audit = await admit(request, context);
            await audit?.();
            yield* core(request, context) as AsyncIterable<unknown>;
          } catch (error) {
            const { error: publicError, internal } = toPublicError(error);
            if (internal) options.logger.error({ err: error, rpc: path }, "stream failed with an internal error");
            throw publicError;
          }
        })();
    } else {
      throw new Error(`${path}: ${method.methodKind} RPCs are not supported by Mandate's transports`);
    }
  }
  return wrapped as unknown as ServiceImpl<S>;
}

function validateRequest(validator: Validator, schema: DescMessage, request: unknown): void {
  // Strings must be text (no lone surrogate, which JSON can spell, no NUL): refused here, naming the
  // field, for every transport, before anything stores or signs them.
  const fault = messageTextFault(schema, request);
  if (fault) throw invalidArgument([{ field: fault.field, description: fault.problem, reason: "string.text" }]);
  const result = validator.validate(schema, request as never);
  if (result.kind === "valid") return;
  if (result.kind === "error") throw invalidArgument([{ field: "(request)", description: result.error.message }]);
  throw invalidArgument(
    result.violations.map((violation) => ({
      field:
        violation.field.map((f) => ("localName" in f ? (f.name ?? f.localName) : String(f))).join(".") || "(request)",
      description: violation.message,
      reason: violation.ruleId,
    })),
  );
}

/** Requests that name a tenant must name a registered one; the Tenants service itself is exempt. */
async function requireTenant(tenants: TenantLookup | undefined, service: DescService, request: unknown): Promise<void> {
  if (!tenants || service.typeName === "mandate.v1.Tenants") return;
  const tenant = (request as { tenant?: unknown }).tenant;
  if (typeof tenant !== "string" || tenant === "") return;
  if (!(await tenants.exists(tenant))) throw notFound("tenant", tenant);
}

async function withDeadline<T>(work: Promise<T>, context: HandlerContext, defaultDeadlineMs: number): Promise<T> {
  const timeoutMs = context.timeoutMs() ?? defaultDeadlineMs;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ConnectError(`deadline of ${timeoutMs} ms exceeded`, Code.DeadlineExceeded)),
      Math.max(0, timeoutMs),
    );
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

async function observe<T>(path: string, context: HandlerContext, logger: Logger, run: () => Promise<T>): Promise<T> {
  const parent = propagation.extract(ROOT_CONTEXT, context.requestHeader, {
    keys: (headers) => [...headers.keys()],
    get: (headers, key) => headers.get(key) ?? undefined,
  });
  const started = performance.now();
  const span = tracer.startSpan(
    path,
    {
      kind: SpanKind.SERVER,
      attributes: {
        "rpc.system.name": "grpc",
        "rpc.method": path,
        "rpc.protocol": context.protocolName,
      },
    },
    parent,
  );
  // The handler runs inside the server span, so store spans and log lines join the caller's trace.
  return otelContext.with(trace.setSpan(parent, span), async () => {
    let code = 0; // OK
    try {
      return await run();
    } catch (error) {
      const { error: publicError, internal } = toPublicError(error);
      code = publicError.code;
      span.setStatus({ code: SpanStatusCode.ERROR, message: publicError.rawMessage });
      if (internal) {
        span.recordException(error as Error);
        logger.error({ err: error, rpc: path }, "rpc failed with an internal error");
      } else {
        logger.debug({ rpc: path, code: Code[publicError.code], reason: publicError.rawMessage }, "rpc refused");
      }
      throw publicError;
    } finally {
      const elapsed = performance.now() - started;
      span.setAttribute("rpc.grpc.status_code", code);
      span.end();
      rpcDuration.record(elapsed, { "rpc.method": path, "rpc.grpc.status_code": code, protocol: context.protocolName });
    }
  });
}
