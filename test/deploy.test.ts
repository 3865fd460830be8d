// The compose file checked against what the code accepts (test/helpers/deploy-manifests.ts): every
// environment a container gets must load as valid configuration, every command must be one the CLI
// knows, and every serving container holds its service's certificate. A renamed setting or service
// breaks this test, not a deployment. The Kubernetes manifests are rendered and checked in
// deploy-k8s.test.ts.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { SERVICE_NAMES } from "../services/shared/config.ts";
import { type Env, expectLoadableEnv, expectServiceIdentity, expectValidCommand } from "./helpers/deploy-manifests.ts";

const deploy = join(import.meta.dirname, "..", "deploy");

describe("docker compose", () => {
  const compose = parse(readFileSync(join(deploy, "compose.yaml"), "utf8"), { merge: true }) as {
    services: Record<string, { image?: string; command?: string[]; environment?: Env; secrets?: string[] }>;
  };
  const mandateServices = Object.entries(compose.services).filter(([, s]) => s.image?.startsWith("mandate:"));

  it("runs every service, the edge and the migration from the one image", () => {
    const commands = mandateServices.map(([, s]) => (s.command ?? []).join(" "));
    for (const name of SERVICE_NAMES) expect(commands).toContain(`serve ${name}`);
    // The OAuth endpoints are Issue's HTTP face: the edge must host Issue to serve them.
    expect(commands).toContain("serve edge issue");
    expect(commands).toContain("migrate");
  });

  it.each(mandateServices)("%s has a valid command and environment", (name, service) => {
    expectValidCommand(service.command ?? []);
    expectLoadableEnv(service.environment ?? {}, `compose ${name}`);
    // The database URL (and its password) from a secret file, never in the environment.
    expect(service.environment?.MANDATE_DATABASE_URL).toBeUndefined();
    expect(service.environment?.MANDATE_DATABASE_URL_FILE).toBe("/run/secrets/database_url");
    expect(service.secrets).toContain("database_url");
    expectServiceIdentity(
      service.command ?? [],
      service.environment ?? {},
      () => /\/certs\/([a-z]+)\.pem$/.exec(service.environment?.MANDATE_TLS_CERT_FILE ?? "")?.[1],
      `compose ${name}`,
    );
  });

  it("makes the certificates the services use, and runs the CLI with the admin's credentials", () => {
    const commands = mandateServices.map(([, s]) => (s.command ?? []).join(" "));
    expect(commands.some((c) => c.startsWith("certs dev-ca --out /certs"))).toBe(true);
    expect(compose.services.cli?.environment?.MANDATE_ADMIN_FILE).toBe("/admin/admin.json");
  });
});
