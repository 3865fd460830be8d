// Bundled by esbuild into the page the browser test loads: a real gRPC-Web client
// (@connectrpc/connect-web) calling Mandate's edge from Chromium.
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";

/** `headers` authenticate the call (authorization, and a DPoP proof made for it by the test). */
async function getTenant(baseUrl: string, tenant: string, headers: Record<string, string>) {
  const client = createClient(Tenants, createGrpcWebTransport({ baseUrl }));
  try {
    const response = await client.getTenant({ tenant }, { headers });
    return { ok: true, id: response.tenant?.id, displayName: response.tenant?.displayName };
  } catch (error) {
    const e = ConnectError.from(error);
    return {
      ok: false,
      code: e.code,
      message: e.rawMessage,
      fields: e.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => v.field)),
    };
  }
}

(globalThis as unknown as { getTenant: typeof getTenant }).getTenant = getTenant;
