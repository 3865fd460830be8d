// The RPC layer's order of work, with spies: the access gate decides first, and a refused call
// never reaches request validation, the tenant lookup (the store) or the handler. A method without
// an access rule cannot be served at all.
import type { DescService } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, createContextValues, createHandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { GetClientRequestSchema } from "../../gen/mandate/v1/clients_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { createLogger } from "../../services/shared/logger.ts";
import { type AccessGate, CALLER, callerOf } from "../../services/shared/rpc/access.ts";
import { defineService, wrapService } from "../../services/shared/rpc/service.ts";

function harness(gate: AccessGate) {
  const seen: string[] = [];
  const validator = createValidator();
  const spyValidator = {
    validate: ((schema, message) => {
      seen.push("validate");
      return validator.validate(schema, message);
    }) as typeof validator.validate,
  };
  const tenants = {
    async exists() {
      seen.push("store");
      return true;
    },
  };
  const module = defineService(Issue, {
    async getClient(_request, context) {
      seen.push(`handler as ${callerOf(context).kind}`);
      return {};
    },
  });
  const impl = wrapService(module, {
    logger: createLogger("silent"),
    tenants,
    defaultDeadlineMs: 1000,
    access: gate,
    validator: spyValidator as never,
  }) as unknown as Record<string, (request: unknown, context: unknown) => Promise<unknown>>;
  const context = () =>
    createHandlerContext({
      service: Issue,
      method: Issue.method.getClient,
      protocolName: "test",
      requestMethod: "POST",
      url: "/mandate.v1.Issue/GetClient",
      contextValues: createContextValues(),
    });
  const getClient = (tenant: string) =>
    (impl.getClient as (r: unknown, c: unknown) => Promise<unknown>)(
      create(GetClientRequestSchema, { tenant, clientId: "c1" }),
      context(),
    );
  return { seen, getClient };
}

describe("the access gate runs first", () => {
  it("a refused call is never validated, looked up or handled", async () => {
    const { seen, getClient } = harness({
      async admit() {
        seen.push("gate");
        throw new ConnectError("no", Code.Unauthenticated);
      },
    });
    // Invalid on purpose: validation would answer INVALID_ARGUMENT if it ran.
    await expect(getClient("NOT VALID")).rejects.toMatchObject({ code: Code.Unauthenticated });
    expect(seen).toEqual(["gate"]);
  });

  it("an admitted call is validated, then its tenant looked up, then handled as the caller the gate named", async () => {
    const { seen, getClient } = harness({
      async admit() {
        seen.push("gate");
        return { kind: "service", service: "in-process" };
      },
    });
    await getClient("demo");
    expect(seen).toEqual(["gate", "validate", "store", "handler as service"]);
    seen.length = 0;
    await expect(getClient("NOT VALID")).rejects.toMatchObject({ code: Code.InvalidArgument });
    expect(seen).toEqual(["gate", "validate"]);
  });

  it("refuses to build a service with a method that declares no access rule", () => {
    const bare = { ...Tenants, typeName: "test.v1.Bare", methods: Tenants.methods } as unknown as DescService;
    const undeclared = {
      ...bare,
      methods: Tenants.methods.map((m) => ({ ...m, proto: { ...m.proto, options: undefined }, parent: bare })),
    } as unknown as DescService;
    expect(() =>
      wrapService(defineService(undeclared, {}), {
        logger: createLogger("silent"),
        tenants: undefined,
        defaultDeadlineMs: 1000,
        access: { admit: async () => ({ kind: "anonymous" }) },
      }),
    ).toThrow(/declares no \(mandate\.v1\.access\) option/);
    expect(CALLER.defaultValue).toEqual({ kind: "anonymous" });
  });
});
