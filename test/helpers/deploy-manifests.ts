// What the manifests under deploy/ must agree on with the code, shared by the compose and the
// Kubernetes checks: every environment a container gets must load as valid configuration, every
// command must be one the CLI knows, every gRPC probe must name a service we register, and every
// process offering internal methods must hold the certificate of a service it runs.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { SERVICE_DESCRIPTORS } from "../../services/runtime/start.ts";
import { ENV_BINDINGS, FILE_ENV_BINDINGS, loadConfig, SERVICE_NAMES } from "../../services/shared/config.ts";
import { accessRuleOf } from "../../services/shared/rpc/access.ts";

export type Env = Record<string, string>;

const knownEnv = new Set([...ENV_BINDINGS, ...FILE_ENV_BINDINGS].map(([name]) => name));
const serviceTypeNames = new Set([...Object.values(SERVICE_DESCRIPTORS).map((s) => s.typeName), ""]);
const serveTargets = new Set<string>([...SERVICE_NAMES, "edge", "all"]);

export function expectValidCommand(args: readonly string[]): void {
  const [command, ...rest] = args;
  expect(["serve", "migrate", "dev", "health", "certs", "admin", "--help"]).toContain(command);
  if (command === "serve") {
    expect(rest.length).toBeGreaterThan(0);
    for (const target of rest) expect(serveTargets, `serve target ${target}`).toContain(target);
  }
  if (command === "health") {
    const service = rest[rest.indexOf("--service") + 1];
    if (rest.includes("--service")) expect(serviceTypeNames, `health --service ${service}`).toContain(service);
  }
}

/** Services whose methods include INTERNAL ones: other Mandate processes call them over mTLS. */
const withInternalMethods = new Set(
  SERVICE_NAMES.filter((name) =>
    SERVICE_DESCRIPTORS[name].methods.some((method) => accessRuleOf(method)?.exposure === "internal"),
  ),
);

/**
 * `mandate serve` refuses to offer internal methods beyond loopback without mTLS, and its certificate
 * must name a service it runs: every serving container gets a certificate, and the right one.
 */
export function expectServiceIdentity(
  args: readonly string[],
  env: Env,
  certificateOf: () => string | undefined,
  where: string,
): void {
  if (args[0] !== "serve") return;
  const targets = args.slice(1);
  if (!targets.some((t) => withInternalMethods.has(t as (typeof SERVICE_NAMES)[number]))) return;
  for (const name of ["MANDATE_TLS_CERT_FILE", "MANDATE_TLS_KEY_FILE", "MANDATE_TLS_CA_FILE"]) {
    expect(env[name], `${where}: ${name}`).toBeTruthy();
  }
  expect(targets, `${where}: its certificate names a service it runs`).toContain(certificateOf());
}

/** Values a deployer supplies (compose interpolation, Kubernetes Secrets): valid stand-ins. */
export const SUPPLIED: Env = {
  MANDATE_DATABASE_URL: "postgres://db/mandate",
  MANDATE_SIGNER_KEK: "A".repeat(43),
};

/** Secret files the configuration reads while it loads (MANDATE_*_FILE): stand-ins with valid URLs. */
const SUPPLIED_FILES: Env = {
  MANDATE_DATABASE_URL_FILE: "postgres://db/mandate",
  MANDATE_REDIS_URL_FILE: "redis://r:6379",
};

function withSecretFiles(env: Env): Env {
  const dir = mkdtempSync(join(tmpdir(), "mandate-manifest-secret-"));
  return Object.fromEntries(
    Object.entries(env).map(([name, value]) => {
      const content = SUPPLIED_FILES[name];
      if (content === undefined) return [name, value];
      const file = join(dir, name);
      writeFileSync(file, content);
      return [name, file];
    }),
  );
}

export function expectLoadableEnv(given: Env, where: string): void {
  const env = Object.fromEntries(
    Object.entries(given).map(([name, value]) => [
      name,
      /^\$\{/.test(value) ? (SUPPLIED[name] ?? expect.fail(`${where}: no stand-in for ${name}`)) : value,
    ]),
  );
  for (const name of Object.keys(env)) {
    if (name.startsWith("MANDATE_")) expect(knownEnv, `${where}: unknown setting ${name}`).toContain(name);
  }
  // A config file must not be picked up from the test's working directory.
  expect(() =>
    loadConfig({ env: { ...withSecretFiles(env), MANDATE_CONFIG: undefined }, file: undefined }),
  ).not.toThrow();
}
