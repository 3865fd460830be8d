// `mandate health`: a running Mandate's gRPC health, per service (grpc.health.v1).
import { createClient } from "@connectrpc/connect";
import type { Command } from "commander";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { addressOption, type CommonOptions, command, print, transportTo } from "./common.ts";

export function healthCommand(): Command {
  return command("health", "check a running Mandate's gRPC health, per service")
    .addOption(addressOption)
    .option("--service <name>", 'only this service, e.g. mandate.v1.Signer ("" for the process): a probe')
    .option("--json", "print as JSON")
    .action(async (options: CommonOptions & { service?: string }) => {
      const rows = await healthRows(options);
      print(options, rows, () => rows.map((r) => `${r.status.padEnd(12)} ${r.service}`).join("\n"));
      if (rows.some((r) => r.status !== "SERVING")) process.exitCode = 1;
    });
}

/** Every service's status, or only --service's. */
async function healthRows(options: CommonOptions & { service?: string }) {
  // grpc.health.v1 answers anyone who can connect (load balancers): no credentials needed.
  const client = createClient(Health, transportTo(options));
  if (options.service === undefined) {
    const { statuses } = await client.list({}, { timeoutMs: 5000 });
    return Object.entries(statuses).map(([service, s]) => ({
      service: service || "(server)",
      status: ServingStatus[s.status],
    }));
  }
  const checked = await client.check({ service: options.service }, { timeoutMs: 5000 });
  return [{ service: options.service || "(server)", status: ServingStatus[checked.status] }];
}
