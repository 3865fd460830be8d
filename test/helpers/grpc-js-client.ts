// An independent @grpc/grpc-js client: it loads our .proto sources with @grpc/proto-loader and
// shares no code with the server (which is built from protobuf-es descriptors).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

const definition = protoLoader.loadSync(
  [
    "mandate/v1/tenants.proto",
    "mandate/v1/authorize.proto",
    "mandate/v1/introspect.proto",
    "mandate/v1/issue.proto",
    "mandate/v1/audit.proto",
    "mandate/v1/signer.proto",
    "grpc/health/v1/health.proto",
  ],
  {
    includeDirs: [`${root}proto`, `${root}third_party/proto`],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  },
);
const reflectionDefinition = protoLoader.loadSync("grpc/reflection/v1/reflection.proto", {
  includeDirs: [fileURLToPath(new URL("../../node_modules/@grpc/reflection/build/proto", import.meta.url))],
});

// biome-ignore lint/suspicious/noExplicitAny: proto-loader packages are untyped by design
type Loaded = any;
const loaded = grpc.loadPackageDefinition(definition) as Loaded;
const reflection = grpc.loadPackageDefinition(reflectionDefinition) as Loaded;

export type UntypedClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export type ServiceName = "Tenants" | "Authorize" | "Introspect" | "Issue" | "Audit" | "Signer";

/** Channel credentials: TLS trusting `caFile` (with a client certificate when given), or plaintext. */
export function channelCredentials(caFile?: string, client?: { cert: string; key: string }): grpc.ChannelCredentials {
  if (!caFile) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(
    readFileSync(caFile),
    client ? readFileSync(client.key) : null,
    client ? readFileSync(client.cert) : null,
  );
}

export function grpcClient(
  service: ServiceName,
  address: string,
  options: grpc.ClientOptions = {},
  caFile?: string,
): UntypedClient {
  return new loaded.mandate.v1[service](address, channelCredentials(caFile), options);
}

export function healthClient(address: string, caFile?: string): UntypedClient {
  return new loaded.grpc.health.v1.Health(address, channelCredentials(caFile));
}

export function reflectionClient(address: string, caFile?: string): UntypedClient {
  return new reflection.grpc.reflection.v1.ServerReflection(address, channelCredentials(caFile));
}

/** Calls a unary method; resolves with the response or rejects with the grpc ServiceError. */
export function unary<T = Record<string, unknown>>(
  client: UntypedClient,
  method: string,
  request: unknown,
  options: grpc.CallOptions = {},
  metadata: grpc.Metadata = new grpc.Metadata(),
): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = client[method];
    if (!fn) throw new Error(`no method ${method}`);
    fn.call(client, request, metadata, options, (error: grpc.ServiceError | null, response: T) =>
      error ? reject(error) : resolve(response),
    );
  });
}

export async function expectGrpcError(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error("expected the call to fail");
}

/** Decodes google.rpc details from `grpc-status-details-bin`. */
export function statusDetails(error: grpc.ServiceError) {
  const raw = error.metadata?.get("grpc-status-details-bin")[0];
  if (!raw) return { fieldViolations: [], reasons: [] };
  const status = fromBinary(StatusSchema, raw as Buffer);
  const fieldViolations = status.details.flatMap((any) => anyUnpack(any, BadRequestSchema)?.fieldViolations ?? []);
  const reasons = status.details.flatMap((any) => {
    const info = anyUnpack(any, ErrorInfoSchema);
    return info ? [info.reason] : [];
  });
  return { code: status.code, fieldViolations, reasons };
}
