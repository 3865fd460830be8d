import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  runMandate,
  startDevProcess,
  startMandateProcess,
  tempAdminFile,
  tempDatabaseUrl,
} from "./helpers/mandate-process.ts";

const BIN = new URL("../bin/mandate.js", import.meta.url).pathname;

const VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
  .version;

describe("mandate CLI", () => {
  it.each([
    [],
    ["dev"],
    ["serve"],
    ["migrate"],
    ["tenants"],
    ["tenants", "list"],
    ["health"],
    ["admin", "bootstrap"],
    ["admin", "token"],
    ["certs", "dev-ca"],
  ])("has --help and --version on `mandate %s`", async (...args) => {
    const words = args.flat();
    const help = await runMandate([...words, "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: mandate/);
    const version = await runMandate([...words, "--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe(VERSION);
  });

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
      applied: expect.arrayContaining(["0001_tenants_and_audit_outbox", "0005_oauth_server"]),
    });
    const applied = (JSON.parse(first.stdout) as { applied: string[] }).applied;
    const second = await runMandate(["migrate", "--database", database, "--json"]);
    expect(JSON.parse(second.stdout)).toMatchObject({ applied: [], current: applied.at(-1) });
  });

  it("manages tenants and reports health of a running server as JSON", async () => {
    const dev = await startDevProcess();
    const cli = (args: string[]) => runMandate(args, { MANDATE_ADMIN_FILE: dev.adminFile });
    try {
      const address = dev.summary.grpc as string;
      const created = await cli([
        "tenants",
        "create",
        "acme",
        "--display-name",
        "Acme Corp",
        "--address",
        address,
        "--json",
      ]);
      expect(created.code, created.stderr).toBe(0);
      expect(JSON.parse(created.stdout)).toMatchObject({ id: "acme", displayName: "Acme Corp" });
      const listed = await cli(["tenants", "list", "--address", address, "--json"]);
      expect(JSON.parse(listed.stdout).map((t: { id: string }) => t.id)).toEqual(["acme", "demo", "platform"]);
      const missing = await cli(["tenants", "get", "nope", "--address", address]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('NotFound: tenant "nope" does not exist');
      const health = await runMandate(["health", "--address", address, "--json"]);
      expect(health.code).toBe(0);
      expect(JSON.parse(health.stdout)).toContainEqual({ service: "mandate.v1.Signer", status: "SERVING" });
    } finally {
      await dev.stop();
    }
  });

  it("works with no flags after `npm start`, and says what to do without the admin file", async () => {
    // As a new user: the default ports and files, in a fresh working directory.
    const cwd = mkdtempSync(join(tmpdir(), "mandate-cwd-"));
    const dev = await startMandateProcess(["dev"], { MANDATE_ADMIN_FILE: "", MANDATE_DATABASE_URL: "" }, cwd);
    try {
      expect(dev.summary.grpc).toBe("127.0.0.1:4461");
      expect(statSync(join(cwd, ".mandate/admin.json")).mode & 0o777).toBe(0o600);
      const run = (args: string[]) => runMandate(args, { MANDATE_ADMIN_FILE: "" }, cwd);
      const created = await run(["tenants", "create", "acme"]);
      expect(created.code, created.stderr).toBe(0);
      const client = await run([
        "clients",
        "create",
        "--tenant",
        "acme",
        "--grant-type",
        "client_credentials",
        "--json",
      ]);
      expect(client.code, client.stderr).toBe(0);
      expect(JSON.parse(client.stdout)).toMatchObject({ tenant: "acme", grantTypes: ["client_credentials"] });
      // The admin token the CLI got was signed with the platform tenant's first key.
      const keys = await run(["keys", "list", "--tenant", "platform"]);
      expect(keys.code, keys.stderr).toBe(0);
      expect(keys.stdout).toMatch(/active\s+token_signing\s+ES256/);
      expect((await run(["health"])).code).toBe(0);
      // Nothing of the admin's secret reaches the output.
      const secret = JSON.parse(readFileSync(join(cwd, ".mandate/admin.json"), "utf8")).client_secret as string;
      expect(dev.stderr()).not.toContain(secret);

      rmSync(join(cwd, ".mandate/admin.json"));
      const refused = await run(["tenants", "list"]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("no admin credentials at");
      expect(refused.stderr).toContain("mandate admin bootstrap");
      // A token that is not Mandate's: the server refuses it and the CLI says how to fix it.
      const wrong = await run(["tenants", "list", "--token", "not-a-token"]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toContain("Unauthenticated");
      expect(wrong.stderr).toContain("--token");
    } finally {
      await dev.stop();
    }
  });

  it("tells the user what to do when no server is running", async () => {
    const result = await runMandate(["tenants", "list", "--address", "127.0.0.1:1", "--token", "any"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("is Mandate running?");
  });

  it("never prints a password it was given (MANDATE_DEV_PASSWORD)", async () => {
    const password = "a password the user chose 7f3a";
    const child = spawn(
      process.execPath,
      [BIN, "dev", "--http-port", "0", "--grpc-port", "0", "--database", tempDatabaseUrl()],
      {
        env: { ...process.env, MANDATE_DEV_PASSWORD: password, MANDATE_ADMIN_FILE: tempAdminFile() },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner:\n${output}`)), 20_000);
      child.stdout.on("data", () => {
        if (output.includes("Press Ctrl+C")) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill("SIGTERM");
    expect(output).toContain("alice / (the password in MANDATE_DEV_PASSWORD)");
    expect(output).not.toContain(password);
  });

  it("drains and exits 0 on SIGTERM", async () => {
    const dev = await startDevProcess();
    expect(await dev.stop()).toBe(0);
    expect(dev.stderr()).toContain("SIGTERM: draining in-flight calls");
  });
});
