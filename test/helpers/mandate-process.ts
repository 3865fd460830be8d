// Starts `mandate` as a real child process (the CLI users run), reads the --json startup summary
// for its ephemeral ports, and stops it with SIGTERM.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BIN = new URL("../../bin/mandate.js", import.meta.url).pathname;

export interface Summary {
  grpc: string | null;
  http: string | null;
  database: string | null;
  services: string[];
}

export interface MandateProcess {
  summary: Summary;
  child: ChildProcess;
  stderr: () => string;
  stop(): Promise<number | null>;
}

export function tempDatabaseUrl(): string {
  return `sqlite:${join(mkdtempSync(join(tmpdir(), "mandate-test-")), "mandate.db")}`;
}

export function runMandate(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

export async function startMandateProcess(args: string[], env: Record<string, string> = {}): Promise<MandateProcess> {
  const child = spawn(process.execPath, [BIN, ...args, "--json"], {
    env: { ...process.env, MANDATE_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (d) => (stderr += d));
  const summary = await new Promise<Summary>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`mandate ${args.join(" ")} did not start in 20 s:\n${stderr}`)),
      20_000,
    );
    child.stdout?.on("data", (d) => {
      stdout += d;
      // The summary is the first JSON document on stdout (pretty-printed, ends with "}\n").
      const end = stdout.indexOf("\n}\n");
      if (stdout.startsWith("{") && end >= 0) {
        clearTimeout(timer);
        resolve(JSON.parse(stdout.slice(0, end + 2)) as Summary);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`mandate ${args.join(" ")} exited with ${code}:\n${stderr}`));
    });
  });
  return {
    summary,
    child,
    stderr: () => stderr,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once("exit", (code) => resolve(code));
        child.kill("SIGTERM");
      }),
  };
}

/** The two wirings that must pass the same tests. */
export interface Deployment {
  name: string;
  grpcAddress: string;
  httpUrl: string;
  stop(): Promise<void>;
}

/** `mandate dev` on ephemeral ports and a fresh SQLite database. */
export function startDevProcess(
  env: Record<string, string> = {},
  database = tempDatabaseUrl(),
): Promise<MandateProcess> {
  return startMandateProcess(["dev", "--http-port", "0", "--grpc-port", "0", "--database", database], env);
}

export async function startAllInOne(env: Record<string, string> = {}): Promise<Deployment> {
  const dev = await startDevProcess(env);
  return {
    name: "all-in-one (mandate dev)",
    grpcAddress: dev.summary.grpc as string,
    httpUrl: dev.summary.http as string,
    stop: async () => void (await dev.stop()),
  };
}

export async function startSplit(env: Record<string, string> = {}): Promise<Deployment> {
  const database = tempDatabaseUrl();
  const migrated = await runMandate(["migrate", "--database", database]);
  if (migrated.code !== 0) throw new Error(`migrate failed: ${migrated.stderr}`);
  // Outside `mandate dev` the software keystore needs a key-encryption key from configuration.
  const kek = { MANDATE_SIGNER_KEK: randomBytes(32).toString("base64url") };
  const services = await startMandateProcess(["serve", "all", "--grpc-port", "0", "--database", database], {
    ...kek,
    ...env,
  });
  const grpcAddress = services.summary.grpc as string;
  const addresses = Object.fromEntries(
    ["AUTHORIZE", "INTROSPECT", "ISSUE", "AUDIT", "SIGNER", "TENANTS"].map((name) => [
      `MANDATE_${name}_ADDRESS`,
      grpcAddress,
    ]),
  );
  // As deployed: the edge also hosts Issue, whose HTTP face is the OAuth server.
  const edge = await startMandateProcess(
    ["serve", "edge", "issue", "--http-port", "0", "--grpc-port", "0", "--database", database],
    { ...kek, ...env, ...addresses },
  );
  // Seed the tenant the shared tests use, through the services process.
  const seeded = await runMandate(["tenants", "create", "demo", "--address", grpcAddress]);
  if (seeded.code !== 0) throw new Error(`seeding failed: ${seeded.stderr}`);
  return {
    name: "split (mandate serve all + mandate serve edge)",
    grpcAddress,
    httpUrl: edge.summary.http as string,
    stop: async () => {
      await edge.stop();
      await services.stop();
    },
  };
}
