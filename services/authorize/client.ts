// AuthorizeClient: how an internal service (or a resource server) asks Authorize for decisions over
// native gRPC with @grpc/grpc-js. Every call has a deadline; only UNAVAILABLE is retried (the
// request never reached a server that could decide), with jittered exponential backoff inside the
// deadline; every other status is the answer. An optional decision cache, off by default, keyed by
// the whole request, remembers decisions for a few seconds — never for a request that carries an
// access token, since its DPoP proof is single use and its token may be revoked at any moment.
import { create, type DescMethod, fromBinary, type MessageInitShape, toBinary, toJsonString } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  Authorize,
  type BatchCheckRequestSchema,
  type CheckRequest,
  CheckRequestSchema,
  type Decision,
} from "../../gen/mandate/v1/authorize_pb.js";

export type CheckInput = MessageInitShape<typeof CheckRequestSchema>;

export interface AuthorizeClientOptions {
  /** host:port of Authorize's native gRPC listener. */
  address: string;
  /** TLS (with a client certificate for mTLS) or, on loopback only, plaintext. Default: plaintext. */
  credentials?: grpc.ChannelCredentials;
  /** The caller's Mandate access token (scope `mandate:authorize`), or a function that returns a current one. */
  token: string | (() => string | Promise<string>);
  /** Per-call deadline, retries included. Default 1000 ms. */
  deadlineMs?: number;
  /** Attempts after the first when the server is UNAVAILABLE. Default 2. */
  retries?: number;
  /** Remember decisions for `ttlMs` (at most `maxEntries`). Off when unset. */
  cache?: { ttlMs: number; maxEntries?: number };
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
}

type Unary = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

function definition(method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${Authorize.typeName}/${method.name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (message) => Buffer.from(toBinary(method.input, message as never)),
    requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
    responseSerialize: (message) => Buffer.from(toBinary(method.output, message as never)),
    responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
  };
}

const AuthorizeGrpcClient = grpc.makeGenericClientConstructor(
  {
    check: definition(Authorize.method.check),
    batchCheck: definition(Authorize.method.batchCheck),
  },
  Authorize.typeName,
);

const BACKOFF_MS = 25;

type AuthorizeStub = grpc.Client & Record<"check" | "batchCheck", Unary>;

export class AuthorizeClient {
  readonly #client: AuthorizeStub;
  readonly #token: () => string | Promise<string>;
  readonly #deadlineMs: number;
  readonly #retries: number;
  readonly #cache: DecisionCache | undefined;

  constructor(options: AuthorizeClientOptions) {
    this.#client = new AuthorizeGrpcClient(
      options.address,
      options.credentials ?? grpc.credentials.createInsecure(),
      options.channelOptions ?? {},
    ) as unknown as AuthorizeStub;
    const token = options.token;
    this.#token = typeof token === "string" ? () => token : token;
    this.#deadlineMs = options.deadlineMs ?? 1000;
    this.#retries = options.retries ?? 2;
    this.#cache = options.cache
      ? new DecisionCache(options.cache.ttlMs, options.cache.maxEntries ?? 10_000)
      : undefined;
  }

  /** One decision. Rejects with the grpc ServiceError when Authorize answers with a status. */
  async check(input: CheckInput): Promise<Decision> {
    const request = create(CheckRequestSchema, input);
    const key = this.#cache && !request.accessToken ? cacheKey(request) : undefined;
    const cached = key ? this.#cache?.get(key) : undefined;
    if (cached) return cached;
    const response = (await this.#call("check", request)) as { decision?: Decision };
    if (!response.decision) throw new Error("Authorize answered without a decision");
    if (key) this.#cache?.set(key, response.decision);
    return response.decision;
  }

  /** Up to 100 decisions of one tenant, in request order. */
  async batchCheck(tenant: string, checks: CheckInput[]): Promise<Decision[]> {
    const request = create(Authorize.method.batchCheck.input as typeof BatchCheckRequestSchema, { tenant, checks });
    const response = (await this.#call("batchCheck", request)) as { decisions: Decision[] };
    return response.decisions;
  }

  close(): void {
    this.#client.close();
  }

  async #call(method: "check" | "batchCheck", request: unknown): Promise<unknown> {
    const deadline = Date.now() + this.#deadlineMs;
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${await this.#token()}`);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once(method, request, metadata, deadline);
      } catch (error) {
        const wait = BACKOFF_MS * 2 ** attempt * (0.5 + Math.random());
        const retryable = (error as grpc.ServiceError).code === grpc.status.UNAVAILABLE;
        if (!retryable || attempt >= this.#retries || Date.now() + wait >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  #once(method: "check" | "batchCheck", request: unknown, metadata: grpc.Metadata, deadline: number) {
    return new Promise<unknown>((resolve, reject) => {
      this.#client[method](request, metadata, { deadline }, (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  }
}

/** The request as canonical bytes: same question, same key (JSON with fields in schema order). */
function cacheKey(request: CheckRequest): string {
  return toJsonString(CheckRequestSchema, request, { useProtoFieldName: true });
}

/** Decisions remembered until `ttlMs` after they were made; the oldest leave first when full. */
class DecisionCache {
  readonly #entries = new Map<string, { decision: Decision; expiresAt: number }>();
  readonly ttlMs: number;
  readonly maxEntries: number;
  constructor(ttlMs: number, maxEntries: number) {
    this.ttlMs = ttlMs;
    this.maxEntries = maxEntries;
  }

  get(key: string): Decision | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.decision;
  }

  set(key: string, decision: Decision): void {
    if (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, { decision, expiresAt: Date.now() + this.ttlMs });
  }
}
