// Traces and metrics reach a configured OTLP/HTTP endpoint (a local capture server standing in for a
// collector: the exporter is the real @opentelemetry one).
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { Tenants } from "../gen/mandate/v1/tenants_pb.js";
import { adminClient } from "./helpers/admin.ts";
import { startDevProcess } from "./helpers/mandate-process.ts";

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  return req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw;
}

describe("telemetry", () => {
  it("exports RPC, HTTP and store spans and metrics over OTLP when configured", async () => {
    const received: Record<string, string[]> = { "/v1/traces": [], "/v1/metrics": [] };
    const collector = createServer(async (req, res) => {
      const text = (await body(req)).toString("latin1");
      received[req.url ?? ""]?.push(text);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    const dev = await startDevProcess({
      MANDATE_OTLP_ENDPOINT: endpoint,
    });
    try {
      const client = adminClient(Tenants, dev.summary.grpc as string, dev.adminFile);
      await client.getTenant({ tenant: "demo" });
      await fetch(`${dev.summary.http}/healthz`);
    } finally {
      expect(await dev.stop()).toBe(0);
      collector.close();
    }
    const traces = received["/v1/traces"]?.join("\n") ?? "";
    expect(traces).toContain("mandate.v1.Tenants/GetTenant");
    expect(traces).toContain("store.select");
    expect(traces).toContain("GET /healthz");
    const metrics = received["/v1/metrics"]?.join("\n") ?? "";
    expect(metrics).toContain("rpc.server.duration");
    expect(metrics).toContain("mandate.store.query.duration");
    // Each process its own instance (replicas, `serve --workers` workers): service.instance.id = host/pid.
    expect(metrics).toContain("service.instance.id");
    expect(metrics).toContain(`/${dev.child.pid}`);
  });
});
