import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { runMandate, startDevProcess, tempDatabaseUrl } from "./helpers/mandate-process.ts";

const VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
  .version;

describe("mandate CLI", () => {
  it.each([[], ["dev"], ["serve"], ["migrate"], ["tenants"], ["tenants", "list"], ["health"]])(
    "has --help and --version on `mandate %s`",
    async (...args) => {
      const words = args.flat();
      const help = await runMandate([...words, "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/^Usage: mandate/);
      const version = await runMandate([...words, "--version"]);
      expect(version.code).toBe(0);
      expect(version.stdout.trim()).toBe(VERSION);
    },
  );

  it("reports bad configuration by key and exits 2", async () => {
    const result = await runMandate(["migrate"], {
      MANDATE_DATABASE_URL: "sqlite:/tmp/x.db",
      MANDATE_GRPC_PORT: "seventy",
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("grpc.port (from env MANDATE_GRPC_PORT)");
  });

  it("refuses an unknown serve target with a usage error", async () => {
    const result = await runMandate(["serve", "everything"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown target everything");
  });

  it("migrates with --json output, and serve refuses an unmigrated database", async () => {
    const database = tempDatabaseUrl();
    const refused = await runMandate(["serve", "tenants", "--grpc-port", "0", "--database", database]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("run `mandate migrate` first");
    const first = await runMandate(["migrate", "--database", database, "--json"]);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({
      engine: "sqlite",
      applied: [
        "0001_tenants_and_audit_outbox",
        "0002_signer",
        "0003_audit_log",
        "0004_oauth_clients",
        "0005_oauth_server",
      ],
    });
    const second = await runMandate(["migrate", "--database", database, "--json"]);
    expect(JSON.parse(second.stdout)).toMatchObject({ applied: [], current: "0005_oauth_server" });
  });

  it("manages tenants and reports health of a running server as JSON", async () => {
    const dev = await startDevProcess();
    try {
      const address = dev.summary.grpc as string;
      const created = await runMandate([
        "tenants",
        "create",
        "acme",
        "--display-name",
        "Acme Corp",
        "--address",
        address,
        "--json",
      ]);
      expect(created.code).toBe(0);
      expect(JSON.parse(created.stdout)).toMatchObject({ id: "acme", displayName: "Acme Corp" });
      const listed = await runMandate(["tenants", "list", "--address", address, "--json"]);
      expect(JSON.parse(listed.stdout).map((t: { id: string }) => t.id)).toEqual(["acme", "demo"]);
      const missing = await runMandate(["tenants", "get", "nope", "--address", address]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('NotFound: tenant "nope" does not exist');
      const health = await runMandate(["health", "--address", address, "--json"]);
      expect(health.code).toBe(0);
      expect(JSON.parse(health.stdout)).toContainEqual({ service: "mandate.v1.Signer", status: "SERVING" });
    } finally {
      await dev.stop();
    }
  });

  it("tells the user what to do when no server is running", async () => {
    const result = await runMandate(["tenants", "list", "--address", "127.0.0.1:1"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("is Mandate running?");
  });

  it("drains and exits 0 on SIGTERM", async () => {
    const dev = await startDevProcess();
    expect(await dev.stop()).toBe(0);
    expect(dev.stderr()).toContain("SIGTERM: draining in-flight calls");
  });
});
