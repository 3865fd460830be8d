// No container engine runs here, so the manifests under deploy/ are checked against what the code
// accepts: every environment a container gets must load as valid configuration, every command must
// be one the CLI knows, every gRPC probe must name a service we register, and every file must be
// reachable from kustomization.yaml. A renamed setting or service breaks this test, not a rollout.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { SERVICE_DESCRIPTORS } from "../services/runtime/start.ts";
import { ENV_BINDINGS, loadConfig, SERVICE_NAMES } from "../services/shared/config.ts";
import { accessRuleOf } from "../services/shared/rpc/access.ts";

const deploy = join(import.meta.dirname, "..", "deploy");
const knownEnv = new Set(ENV_BINDINGS.map(([name]) => name));
const serviceTypeNames = new Set([...Object.values(SERVICE_DESCRIPTORS).map((s) => s.typeName), ""]);
const serveTargets = new Set<string>([...SERVICE_NAMES, "edge", "all"]);

type Env = Record<string, string>;

function expectValidCommand(args: readonly string[]): void {
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
function expectServiceIdentity(
  args: readonly string[],
  env: Env,
  certificateOf: () => string | undefined,
  where: string,
) {
  if (args[0] !== "serve") return;
  const targets = args.slice(1);
  if (!targets.some((t) => withInternalMethods.has(t as (typeof SERVICE_NAMES)[number]))) return;
  for (const name of ["MANDATE_TLS_CERT_FILE", "MANDATE_TLS_KEY_FILE", "MANDATE_TLS_CA_FILE"]) {
    expect(env[name], `${where}: ${name}`).toBeTruthy();
  }
  expect(targets, `${where}: its certificate names a service it runs`).toContain(certificateOf());
}

/** Values a deployer supplies (compose interpolation, Kubernetes Secrets): valid stand-ins. */
const SUPPLIED: Env = {
  MANDATE_DATABASE_URL: "postgres://db/mandate",
  MANDATE_SIGNER_KEK: "A".repeat(43),
};

function expectLoadableEnv(given: Env, where: string): void {
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
  expect(() => loadConfig({ env: { ...env, MANDATE_CONFIG: undefined }, file: undefined })).not.toThrow();
}

/** The parts of a Kubernetes pod spec (and its containers) these checks read. */
interface Probe {
  grpc?: unknown;
  exec?: { command?: string[] };
}
interface Container {
  name: string;
  args: string[];
  env?: Array<{ name: string; value?: string }>;
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
}
interface Pod {
  securityContext: { runAsNonRoot?: boolean };
  containers: Container[];
  volumes?: Array<{ name: string; secret?: { secretName?: string } }>;
}

function expectRunnableContainer(container: Container, pod: Pod, configMapData: Env): void {
  expectValidCommand(container.args);
  expect(container.securityContext?.readOnlyRootFilesystem, container.name).toBe(true);
  expect(container.securityContext?.allowPrivilegeEscalation, container.name).toBe(false);
  const env: Env = { ...configMapData };
  for (const entry of container.env ?? []) {
    // Secrets are not in the repository in usable form; a syntactically valid stand-in is used.
    env[entry.name] =
      entry.value ?? SUPPLIED[entry.name] ?? expect.fail(`${container.name}: no stand-in for ${entry.name}`);
  }
  expectLoadableEnv(env, container.name);
  for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"] as const) {
    // gRPC probes cannot speak TLS: the services are probed by `mandate health` inside the pod.
    expect(container[probe]?.grpc, `${container.name} ${probe}`).toBeUndefined();
    const command = container[probe]?.exec?.command as string[] | undefined;
    if (command) {
      expect(command.slice(0, 2)).toEqual(["node", "bin/mandate.js"]);
      expectValidCommand(command.slice(2));
    }
  }
  const secret = pod.volumes?.find((v: { name: string }) => v.name === "tls")?.secret?.secretName as string | undefined;
  expectServiceIdentity(container.args, env, () => secret?.replace(/^mandate-tls-/, ""), container.name);
}

describe("docker compose", () => {
  const compose = parse(readFileSync(join(deploy, "compose.yaml"), "utf8"), { merge: true }) as {
    services: Record<string, { image?: string; command?: string[]; environment?: Env }>;
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
    expect(service.environment?.MANDATE_DATABASE_URL).toMatch(/^postgres:\/\//);
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

describe("kubernetes", () => {
  const dir = join(deploy, "k8s");
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
  // biome-ignore lint/suspicious/noExplicitAny: manifests are free-form YAML; the test inspects their shape
  const docs: any[] = files.flatMap((f) =>
    parseAllDocuments(readFileSync(join(dir, f), "utf8")).map((d) => {
      expect(d.errors, f).toEqual([]);
      return d.toJS();
    }),
  );
  const configMap = docs.find((d) => d.kind === "ConfigMap" && d.metadata.name === "mandate");
  const workloads = docs.filter((d) => d.kind === "Deployment" || d.kind === "Job");

  it("lists every manifest in kustomization.yaml", () => {
    const kustomization = parse(readFileSync(join(dir, "kustomization.yaml"), "utf8")) as { resources: string[] };
    expect(new Set(kustomization.resources)).toEqual(new Set(files.filter((f) => f !== "kustomization.yaml")));
  });

  it("deploys every service and the edge", () => {
    const args = workloads.map((w) => w.spec.template.spec.containers[0].args.join(" "));
    for (const name of SERVICE_NAMES) expect(args).toContain(`serve ${name}`);
    expect(args).toContain("serve edge issue");
    expect(args).toContain("migrate");
  });

  it("gives each container a valid command, environment, probes and a non-root, read-only runtime", () => {
    for (const workload of workloads) {
      const pod = workload.spec.template.spec as Pod;
      expect(pod.securityContext.runAsNonRoot, workload.metadata.name).toBe(true);
      for (const container of pod.containers) expectRunnableContainer(container, pod, configMap?.data ?? {});
    }
  });

  it("issues every mounted certificate (cert-manager) with the SPIFFE ID of its service", () => {
    const certificates = docs.filter((d) => d.kind === "Certificate" && !d.spec.isCA);
    for (const workload of workloads.filter((w) => w.kind === "Deployment")) {
      const secret = workload.spec.template.spec.volumes.find((v: { name: string }) => v.name === "tls")?.secret
        ?.secretName as string;
      const certificate = certificates.find((c) => c.spec.secretName === secret);
      expect(certificate, `Certificate for ${secret}`).toBeDefined();
      expect(certificate.spec.uris).toEqual([`spiffe://mandate.local/mandate/${secret.replace(/^mandate-tls-/, "")}`]);
      expect(certificate.spec.ipAddresses).toContain("127.0.0.1");
    }
  });

  it("exposes each service's gRPC port through a Service that selects its pods", () => {
    const services = docs.filter((d) => d.kind === "Service");
    for (const workload of workloads.filter((w) => w.kind === "Deployment")) {
      const labels = workload.spec.template.metadata.labels;
      const match = services.find((s) =>
        Object.entries(s.spec.selector).every(([key, value]) => labels[key] === value),
      );
      expect(match, `Service for ${workload.metadata.name}`).toBeDefined();
    }
  });
});
