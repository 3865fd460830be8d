// Starts `mandate` as a real child process (the CLI users run), reads the --json startup summary
// for its ephemeral ports, and stops it with SIGTERM.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { type DevCa, makeDevCa } from "../../services/cli/certs.ts";
import { freePort } from "../../services/shared/net/free-port.ts";

export { freePort };

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
  /** Where `mandate dev` wrote the platform-admin client's credentials (MANDATE_ADMIN_FILE). */
  adminFile: string;
  stderr: () => string;
  stop(): Promise<number | null>;
}

/** A fresh credentials-file path, so processes of one test run never share an admin. */
export function tempAdminFile(): string {
  return join(mkdtempSync(join(tmpdir(), "mandate-admin-")), "admin.json");
}

export function tempDatabaseUrl(): string {
  return `sqlite:${join(mkdtempSync(join(tmpdir(), "mandate-test-")), "mandate.db")}`;
}

/**
 * `args` with `options` added before the `--` that ends its options (at the end when there is none).
 * Operands that are random identifiers go after `--`: a base64url client id starts with "-" once in
 * 64, and a command line would read it as an unknown option.
 */
export function addOptions(args: string[], options: string[]): string[] {
  const end = args.indexOf("--");
  return end < 0 ? [...args, ...options] : [...args.slice(0, end), ...options, ...args.slice(end)];
}

/**
 * `mandate dev` runs one worker per core by default: test servers run one (in this process) unless a
 * test passes --workers or MANDATE_WORKERS, so the suite does not start every server N times.
 */
const ONE_WORKER = { MANDATE_WORKERS: "1" };

export function runMandate(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...ONE_WORKER, ...env },
      cwd,
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

const START_TIMEOUT_MS = 45_000;

export async function startMandateProcess(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<MandateProcess> {
  // MANDATE_ADMIN_FILE: "" keeps the default (.mandate/admin.json under `cwd`), as a user gets it.
  const adminFile = env.MANDATE_ADMIN_FILE ?? tempAdminFile();
  const child = spawn(process.execPath, [BIN, ...args, "--json"], {
    env: { ...process.env, MANDATE_LOG_LEVEL: "warn", ...ONE_WORKER, ...env, MANDATE_ADMIN_FILE: adminFile },
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (d) => (stderr += d));
  const summary = await new Promise<Summary>((resolve, reject) => {
    // Generous: two loaded cores may take half a minute to load every module; a hung start is killed.
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`mandate ${args.join(" ")} did not start in ${START_TIMEOUT_MS / 1000} s:\n${stderr}`));
    }, START_TIMEOUT_MS);
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
    adminFile,
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
  /** The platform-admin credentials file (test/helpers/admin.ts turns it into call credentials). */
  adminFile: string;
  /** The CA of the gRPC port's certificate, when it serves TLS (split mode). */
  caFile?: string | undefined;
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
    adminFile: dev.adminFile,
    stop: async () => void (await dev.stop()),
  };
}

/** The environment that gives a process the certificate of `service` from a dev CA. */
export function tlsEnv(ca: DevCa, service: string): Record<string, string> {
  const files = ca.services[service];
  if (!files) throw new Error(`the dev CA has no certificate for ${service}`);
  return {
    MANDATE_TLS_CA_FILE: ca.ca,
    MANDATE_TLS_CERT_FILE: files.cert,
    MANDATE_TLS_KEY_FILE: files.key,
    MANDATE_TLS_TRUST_DOMAIN: ca.trustDomain,
  };
}

/**
 * Split mode as deployed: the services in one process, the edge (with Issue, the OAuth server's home)
 * in another, service-to-service calls over mTLS with certificates from `mandate certs dev-ca`, and
 * one public base URL for both, so both agree on the issuers.
 */
export async function startSplit(env: Record<string, string> = {}): Promise<Deployment> {
  // The edge's port is chosen before the services start (the public base URL names it); another
  // test process may bind it meanwhile. Then everything starts again on a new port.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startSplitOnce(env);
    } catch (error) {
      if (attempt >= 3 || !String((error as Error).message).includes("EADDRINUSE")) throw error;
    }
  }
}

async function startSplitOnce(env: Record<string, string>): Promise<Deployment> {
  const database = tempDatabaseUrl();
  const adminFile = tempAdminFile();
  const ca = await makeDevCa(mkdtempSync(join(tmpdir(), "mandate-ca-")), "mandate.test");
  const port = await freePort();
  const shared = {
    // Outside `mandate dev` the software keystore needs a key-encryption key from configuration.
    MANDATE_SIGNER_KEK: randomBytes(32).toString("base64url"),
    MANDATE_PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    MANDATE_ADMIN_FILE: adminFile,
    ...env,
  };
  for (const args of [["migrate"], ["admin", "bootstrap"]]) {
    const done = await runMandate([...args, "--database", database], shared);
    if (done.code !== 0) throw new Error(`mandate ${args.join(" ")} failed: ${done.stderr}`);
  }
  const services = await startMandateProcess(["serve", "all", "--grpc-port", "0", "--database", database], {
    ...shared,
    ...tlsEnv(ca, "signer"),
  });
  const grpcAddress = services.summary.grpc as string;
  const addresses = Object.fromEntries(
    ["AUTHORIZE", "INTROSPECT", "ISSUE", "AUDIT", "SIGNER", "TENANTS"].map((name) => [
      `MANDATE_${name}_ADDRESS`,
      grpcAddress,
    ]),
  );
  // As deployed: the edge also hosts Issue, whose HTTP face is the OAuth server; it signs through
  // the Signer in the other process, as "issue".
  const edge = await startMandateProcess(
    ["serve", "edge", "issue", "--http-port", String(port), "--grpc-port", "0", "--database", database],
    { ...shared, ...tlsEnv(ca, "issue"), ...addresses },
  ).catch(async (error: unknown) => {
    await services.stop();
    throw error;
  });
  // Seed the tenant the shared tests use, through the services process, as the platform admin.
  const seeded = await runMandate(["tenants", "create", "demo", "--address", grpcAddress], {
    ...shared,
    MANDATE_TLS_CA_FILE: ca.ca,
  });
  if (seeded.code !== 0) throw new Error(`seeding failed: ${seeded.stderr}`);
  return {
    name: "split (mandate serve all + mandate serve edge, mTLS)",
    grpcAddress,
    httpUrl: edge.summary.http as string,
    adminFile,
    caFile: ca.ca,
    stop: async () => {
      await edge.stop();
      await services.stop();
    },
  };
}
