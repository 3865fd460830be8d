// Errors every service raises: gRPC status codes with google.rpc details (BadRequest naming the
// field, ErrorInfo with a stable reason). Both transports (grpc-js and Connect/gRPC-Web) carry
// them unchanged. Anything else thrown becomes INTERNAL with a generic message: internals never
// leak to callers.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, ResourceInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

export { Code, ConnectError };

/** `domain` of every ErrorInfo detail Mandate sends. */
export const ERROR_DOMAIN = "mandate.v1";

export interface FieldViolation {
  field: string;
  description: string;
  reason?: string;
}

function errorInfo(reason: string, metadata: Record<string, string> = {}) {
  return { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }) };
}

export function invalidArgument(violations: FieldViolation[], message?: string): ConnectError {
  const summary = message ?? violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  return new ConnectError(summary, Code.InvalidArgument, undefined, [
    {
      desc: BadRequestSchema,
      value: create(BadRequestSchema, {
        fieldViolations: violations.map((v) => ({
          field: v.field,
          description: v.description,
          reason: v.reason ?? "",
        })),
      }),
    },
    errorInfo("INVALID_ARGUMENT"),
  ]);
}

export function notFound(resourceType: string, resourceName: string, message?: string): ConnectError {
  return new ConnectError(message ?? `${resourceType} "${resourceName}" does not exist`, Code.NotFound, undefined, [
    { desc: ResourceInfoSchema, value: create(ResourceInfoSchema, { resourceType, resourceName }) },
    errorInfo("NOT_FOUND"),
  ]);
}

export function alreadyExists(resourceType: string, resourceName: string): ConnectError {
  return new ConnectError(`${resourceType} "${resourceName}" already exists`, Code.AlreadyExists, undefined, [
    { desc: ResourceInfoSchema, value: create(ResourceInfoSchema, { resourceType, resourceName }) },
    errorInfo("ALREADY_EXISTS"),
  ]);
}

export function unimplemented(methodPath: string): ConnectError {
  return new ConnectError(
    `${methodPath} is not implemented in this version of Mandate`,
    Code.Unimplemented,
    undefined,
    [errorInfo("NOT_IMPLEMENTED", { method: methodPath })],
  );
}

export function resourceExhausted(message: string, reason = "RESOURCE_EXHAUSTED"): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted, undefined, [errorInfo(reason)]);
}

export function unavailable(message: string, reason = "UNAVAILABLE"): ConnectError {
  return new ConnectError(message, Code.Unavailable, undefined, [errorInfo(reason)]);
}

/** The caller's proof of possession (e.g. a DPoP proof) is missing or wrong: UNAUTHENTICATED with a reason. */
export function unauthenticated(message: string, reason: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated, undefined, [errorInfo(reason)]);
}

export function failedPrecondition(message: string, reason: string): ConnectError {
  return new ConnectError(message, Code.FailedPrecondition, undefined, [errorInfo(reason)]);
}

/** Normalises anything thrown by a handler into the error the caller may see. */
export function toPublicError(error: unknown): { error: ConnectError; internal: boolean } {
  if (error instanceof ConnectError)
    return { error, internal: error.code === Code.Internal || error.code === Code.Unknown };
  if (error instanceof Error && error.name === "AbortError") {
    return {
      error: new ConnectError("the call was cancelled or its deadline passed", Code.DeadlineExceeded),
      internal: false,
    };
  }
  return {
    error: new ConnectError(
      "internal error; the server log has details under this call's trace id",
      Code.Internal,
      undefined,
      [errorInfo("INTERNAL")],
    ),
    internal: true,
  };
}
