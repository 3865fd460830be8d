// In-process unary calls through direct-transport.ts: the handler gets a copy of the request, the
// caller a message; errors arrive as ConnectErrors with their code and details, as over the router
// transport; methods without a unary handler and streams go through the router transport.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type HandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Introspect } from "../../gen/mandate/v1/introspect_pb.js";
import { GetTenantRequestSchema, Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { directTransport } from "../../services/shared/rpc/direct-transport.ts";

function tenantsClient(impl: object) {
  const router = createRouterTransport((routes) => routes.service(Tenants, impl as never));
  return createClient(Tenants, directTransport(Tenants, impl, router));
}

describe("the direct in-process transport", () => {
  it("hands the handler a copy of the request and the caller a message, with headers both ways", async () => {
    let seen: { tenant: string; header: string | null; protocol: string } | undefined;
    const client = tenantsClient({
      getTenant(request: { tenant: string }, context: HandlerContext) {
        seen = { tenant: request.tenant, header: context.requestHeader.get("x-probe"), protocol: context.protocolName };
        request.tenant = "changed-by-the-handler";
        context.responseHeader.set("x-answer", "42");
        return { tenant: { id: "acme", displayName: "Acme" } };
      },
    });
    const request = create(GetTenantRequestSchema, { tenant: "acme" });
    let answered: Headers | undefined;
    const response = await client.getTenant(request, {
      headers: { "x-probe": "yes" },
      onHeader: (header) => {
        answered = header;
      },
    });
    expect(seen).toEqual({ tenant: "acme", header: "yes", protocol: "in-process" });
    expect(request.tenant).toBe("acme");
    expect(response.tenant?.displayName).toBe("Acme");
    expect(response.$typeName).toBe("mandate.v1.GetTenantResponse");
    expect(answered?.get("x-answer")).toBe("42");
  });

  it("passes on a ConnectError's code and details, and turns any other throw into a ConnectError", async () => {
    const info = create(ErrorInfoSchema, { reason: "TENANT_NOT_FOUND", domain: "mandate" });
    const refusing = tenantsClient({
      getTenant() {
        throw new ConnectError("no tenant acme", Code.NotFound, undefined, [{ desc: ErrorInfoSchema, value: info }]);
      },
    });
    const refused = await refusing.getTenant({ tenant: "acme" }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.NotFound);
    expect((refused as ConnectError).findDetails(ErrorInfoSchema)[0]?.reason).toBe("TENANT_NOT_FOUND");

    const crashing = tenantsClient({
      getTenant() {
        throw new Error("boom");
      },
    });
    const crashed = await crashing.getTenant({ tenant: "acme" }).catch((error: unknown) => error);
    expect(crashed).toBeInstanceOf(ConnectError);
  });

  it("answers UNIMPLEMENTED for a method without a handler, through the router transport", async () => {
    const client = tenantsClient({});
    const error = await client.listTenants({}).catch((e: unknown) => e);
    expect((error as ConnectError).code).toBe(Code.Unimplemented);
  });

  it("streams through the router transport", async () => {
    const impl = {
      async *watchRevocations(request: { tenant: string }) {
        yield { sequence: 1n, entries: [] };
        yield { sequence: request.tenant === "acme" ? 2n : 0n, entries: [] };
      },
    };
    const router = createRouterTransport((routes) => routes.service(Introspect, impl as never));
    const client = createClient(Introspect, directTransport(Introspect, impl, router));
    const sequences: bigint[] = [];
    for await (const message of client.watchRevocations({ tenant: "acme" })) sequences.push(message.sequence);
    expect(sequences).toEqual([1n, 2n]);
  });
});
