// The Kubernetes manifests as a cluster receives them: every overlay under deploy/k8s/overlays is
// rendered with `kubectl kustomize` (kustomize v2 syntax, so kubectl 1.20 renders it too), each
// resource is validated against the Kubernetes and cert-manager schemas, then against our rules
// (test/helpers/kubernetes-manifests.ts) and what the code accepts (test/helpers/deploy-manifests.ts).
// The last block breaks a copy of the manifests in a temporary directory, one rule at a time, and
// asserts that the rule meant to catch it does, with its message.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { SERVICE_NAMES } from "../services/shared/config.ts";
import {
  type Env,
  expectLoadableEnv,
  expectServiceIdentity,
  expectValidCommand,
  SUPPLIED,
} from "./helpers/deploy-manifests.ts";
import {
  allowedByPolicies,
  configMapViolations,
  type Endpoint,
  kubectlAvailable,
  nameOf,
  type PodTemplate,
  podTemplateOf,
  type Resource,
  render,
  renderAsync,
  schemaViolations,
  uncoveredPods,
  workloadViolations,
} from "./helpers/kubernetes-manifests.ts";

const k8s = join(import.meta.dirname, "..", "deploy", "k8s");
const NAMESPACE = "mandate";
const overlayNames = readdirSync(join(k8s, "overlays"));

/**
 * Who calls whom over gRPC (4461), from the code: the edge forwards to every service it does not host
 * (it hosts Issue); Issue calls the Signer, Audit (appends) and Authorize; every service verifies
 * tokens and reads agent CA bundles through the Signer, and Audit signs checkpoints there. Nothing
 * else may pass between Mandate's pods.
 */
const CALLS: Record<string, readonly string[]> = {
  edge: ["authorize", "introspect", "audit", "signer", "tenants"],
  issue: ["signer", "audit", "authorize"],
  audit: ["signer"],
  authorize: ["signer"],
  introspect: ["signer"],
  tenants: ["signer"],
  signer: [],
  migrate: [],
};

const OUTSIDE: Endpoint = {
  namespace: "ingress",
  namespaceLabels: { "kubernetes.io/metadata.name": "ingress" },
  labels: { app: "ingress-controller" },
};
const DNS: Endpoint = {
  namespace: "kube-system",
  namespaceLabels: { "kubernetes.io/metadata.name": "kube-system" },
  labels: { "k8s-app": "kube-dns" },
};
const POSTGRESQL: Endpoint = { ip: "10.20.0.5" };
const REDIS: Endpoint = { ip: "10.20.0.6" };
const INTERNET: Endpoint = { ip: "203.0.113.7" };

/** Mandate's pods by component, as the namespace's policies see them. */
function podsOf(resources: readonly Resource[]): Map<string, Endpoint> {
  const pods = new Map<string, Endpoint>();
  for (const resource of resources) {
    const labels = podTemplateOf(resource)?.metadata?.labels;
    const component = labels?.["app.kubernetes.io/component"];
    if (labels && component) {
      pods.set(component, {
        namespace: NAMESPACE,
        namespaceLabels: { "kubernetes.io/metadata.name": NAMESPACE },
        labels,
      });
    }
  }
  return pods;
}

/** Where the policies differ from the architecture: traffic they let through or block that they should not. */
function networkViolations(resources: readonly Resource[]): string[] {
  const policies = resources.filter((r) => r.kind === "NetworkPolicy");
  if (policies.length === 0) return [];
  const pods = podsOf(resources);
  const violations = uncoveredPods(resources, NAMESPACE);
  const expectTraffic = (
    allowed: boolean,
    what: string,
    from: Endpoint,
    to: Endpoint,
    port: number,
    protocol: "TCP" | "UDP" = "TCP",
  ) => {
    if (allowedByPolicies(policies, NAMESPACE, { from, to, port, protocol }) !== allowed) {
      violations.push(`NetworkPolicy: ${what} must be ${allowed ? "allowed" : "denied"}`);
    }
  };
  const edge = pods.get("edge") as Endpoint;
  expectTraffic(true, "outside the namespace → edge:4460", OUTSIDE, edge, 4460);
  for (const [component, pod] of pods) {
    if (component !== "edge") expectTraffic(false, `outside the namespace → ${component}:4461`, OUTSIDE, pod, 4461);
    for (const [callee, target] of pods) {
      const calls = (CALLS[component] ?? []).includes(callee);
      expectTraffic(calls, `${component} → ${callee}:4461`, pod, target, 4461);
    }
    expectTraffic(true, `${component} → DNS (UDP 53)`, pod, DNS, 53, "UDP");
    expectTraffic(true, `${component} → PostgreSQL:5432`, pod, POSTGRESQL, 5432);
    expectTraffic(component !== "migrate", `${component} → Redis:6379`, pod, REDIS, 6379);
    expectTraffic(false, `${component} → the internet:443`, pod, INTERNET, 443);
  }
  return violations;
}

/** Every rule, in one list: what `npm test` requires to be empty. */
async function violationsOf(resources: readonly Resource[]): Promise<string[]> {
  return [
    ...(await schemaViolations(resources)),
    ...workloadViolations(resources),
    ...configMapViolations(resources),
    ...networkViolations(resources),
  ];
}

/** Mandate's own expectations of a container: command, environment, probes, service identity. */
function expectRunnable(template: PodTemplate, configMapData: Env, where: string): void {
  const pod = template.spec;
  for (const container of pod.containers) {
    const args = container.args ?? [];
    expectValidCommand(args);
    const env: Env = { ...configMapData };
    for (const entry of container.env ?? []) {
      // Secrets are not in the repository in usable form; a syntactically valid stand-in is used.
      env[entry.name] = entry.value ?? SUPPLIED[entry.name] ?? expect.fail(`${where}: no stand-in for ${entry.name}`);
    }
    expectLoadableEnv(env, `${where} ${container.name}`);
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"] as const) {
      const spec = container[probe] as { grpc?: unknown; exec?: { command?: string[] } } | undefined;
      // gRPC probes cannot speak TLS: the services are probed by `mandate health` inside the pod.
      expect(spec?.grpc, `${where} ${probe}`).toBeUndefined();
      const command = spec?.exec?.command;
      if (command) {
        expect(command.slice(0, 2)).toEqual(["node", "bin/mandate.js"]);
        expectValidCommand(command.slice(2));
      }
    }
    const secret = pod.volumes?.find((v) => v.name === "tls")?.secret?.secretName;
    expectServiceIdentity(args, env, () => secret?.replace(/^mandate-tls-/, ""), where);
  }
}

/** The files a kustomization names (resources and patches). */
function referencedFiles(dir: string): Set<string> {
  const kustomization = parse(readFileSync(join(dir, "kustomization.yaml"), "utf8")) as Record<
    string,
    string[] | undefined
  >;
  return new Set([...(kustomization.resources ?? []), ...(kustomization.patchesStrategicMerge ?? [])]);
}

const canRender = kubectlAvailable();

describe.skipIf(!canRender)("Kubernetes manifests, rendered", () => {
  // A skipped suite is still collected: render only when kubectl runs.
  const rendered = new Map(canRender ? overlayNames.map((name) => [name, render(join(k8s, "overlays", name))]) : []);

  it("has a dev and a production overlay, and every manifest is part of its kustomization", () => {
    expect(overlayNames).toEqual(expect.arrayContaining(["dev", "production"]));
    for (const dir of ["base", ...overlayNames.map((name) => join("overlays", name))]) {
      const files = readdirSync(join(k8s, dir)).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
      expect(referencedFiles(join(k8s, dir)), dir).toEqual(new Set(files));
    }
  });

  describe.each(overlayNames)("overlay %s", (overlay) => {
    const resources = rendered.get(overlay) ?? [];
    const workloads = resources.filter((r) => podTemplateOf(r));
    const deployments = resources.filter((r) => r.kind === "Deployment");

    it("passes the Kubernetes schemas and every rule", async () => {
      expect(await violationsOf(resources)).toEqual([]);
    });

    it("deploys every service, the edge and the migration, in the mandate namespace", () => {
      const args = workloads.map((w) => (podTemplateOf(w)?.spec.containers[0]?.args ?? []).join(" "));
      for (const name of SERVICE_NAMES) expect(args).toContain(`serve ${name}`);
      // The OAuth endpoints are Issue's HTTP face: the edge must host Issue to serve them.
      expect(args).toContain("serve edge issue");
      expect(args).toContain("migrate");
      for (const r of resources.filter((r) => r.kind !== "Namespace"))
        expect(r.metadata.namespace, nameOf(r)).toBe(NAMESPACE);
    });

    it("gives each container a valid command, environment and probes", () => {
      const configMap = resources.find((r) => r.kind === "ConfigMap" && r.metadata.name === "mandate");
      for (const workload of workloads)
        expectRunnable(podTemplateOf(workload) as PodTemplate, configMap?.data ?? {}, nameOf(workload));
    });

    it("issues every mounted certificate (cert-manager) with the SPIFFE ID of its service", () => {
      const certificates = resources.filter((r) => r.kind === "Certificate" && !r.spec.isCA);
      for (const deployment of deployments) {
        const secret = podTemplateOf(deployment)?.spec.volumes?.find((v) => v.name === "tls")?.secret
          ?.secretName as string;
        const certificate = certificates.find((c) => c.spec.secretName === secret);
        expect(certificate, `Certificate for ${secret}`).toBeDefined();
        expect(certificate?.spec.uris).toEqual([
          `spiffe://mandate.local/mandate/${secret.replace(/^mandate-tls-/, "")}`,
        ]);
        expect(certificate?.spec.ipAddresses).toContain("127.0.0.1");
      }
    });

    it("exposes each Deployment through a Service that selects its pods", () => {
      const services = resources.filter((r) => r.kind === "Service");
      for (const deployment of deployments) {
        const labels = podTemplateOf(deployment)?.metadata?.labels ?? {};
        const match = services.find((s) =>
          Object.entries(s.spec.selector).every(([key, value]) => labels[key] === value),
        );
        expect(match, `Service for ${nameOf(deployment)}`).toBeDefined();
      }
    });
  });

  describe.each(overlayNames.filter((name) => name.startsWith("production")))("overlay %s (production)", (overlay) => {
    const resources = rendered.get(overlay) ?? [];
    const deployments = resources.filter((r) => r.kind === "Deployment");
    const ofKind = (kind: string) => resources.filter((r) => r.kind === kind);

    it("keeps at least two pods of every Deployment, spread over nodes, with a disruption budget", () => {
      const autoscalers = ofKind("HorizontalPodAutoscaler");
      for (const deployment of deployments) {
        const name = deployment.metadata.name;
        const autoscaler = autoscalers.find(
          (h) => h.spec.scaleTargetRef.kind === "Deployment" && h.spec.scaleTargetRef.name === name,
        );
        // An autoscaled Deployment sets no replica count, or each `kubectl apply` would undo a scale-out.
        if (autoscaler) expect(deployment.spec.replicas, `${name}: replicas beside an autoscaler`).toBeUndefined();
        expect(autoscaler?.spec.minReplicas ?? deployment.spec.replicas, `${name}: replicas`).toBeGreaterThanOrEqual(2);
        const labels = podTemplateOf(deployment)?.metadata?.labels ?? {};
        const spread: Resource[] = deployment.spec.template.spec.topologySpreadConstraints ?? [];
        expect(
          spread.find((s) => s.topologyKey === "kubernetes.io/hostname" && s.whenUnsatisfiable === "DoNotSchedule"),
          `${name}: spread over nodes`,
        ).toMatchObject({ labelSelector: { matchLabels: deployment.spec.selector.matchLabels } });
        const budgets = ofKind("PodDisruptionBudget").filter((b) =>
          Object.entries(b.spec.selector.matchLabels).every(([k, v]) => labels[k] === v),
        );
        expect(budgets, `${name}: one PodDisruptionBudget`).toHaveLength(1);
      }
      for (const autoscaler of autoscalers) {
        expect(autoscaler.apiVersion).toBe("autoscaling/v2");
        expect(deployments.map((d) => d.metadata.name)).toContain(autoscaler.spec.scaleTargetRef.name);
      }
    });

    it("denies by default and lets in from outside the namespace only the edge", () => {
      const denyAll = ofKind("NetworkPolicy").find(
        (p) => Object.keys(p.spec.podSelector).length === 0 && !p.spec.ingress && !p.spec.egress,
      );
      expect(denyAll?.spec.policyTypes).toEqual(["Ingress", "Egress"]);
      // networkViolations (in "passes every rule") checks every path; here, that it ran on policies.
      expect(networkViolations(resources)).toEqual([]);
      expect(ofKind("NetworkPolicy").length).toBeGreaterThan(1);
    });
  });

  it("production-hsm: the Signer loads the PKCS#11 module from a volume, reads its PIN from a file, and alone reaches the HSM", () => {
    const resources = rendered.get("production-hsm");
    if (!resources) return expect.fail("overlays/production-hsm is missing");
    const signer = podTemplateOf(
      resources.find((r) => r.kind === "Deployment" && r.metadata.name === "signer") as Resource,
    ) as PodTemplate;
    const container = signer.spec.containers[0] as unknown as {
      env: Array<{ name: string; value?: string }>;
      volumeMounts: Array<{ mountPath: string; readOnly?: boolean }>;
    };
    const env = Object.fromEntries(container.env.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      MANDATE_SIGNER_BACKEND: "pkcs11",
      MANDATE_PKCS11_PIN_FILE: "/etc/mandate/pkcs11-pin/pin",
    });
    expect(env).not.toHaveProperty("MANDATE_SIGNER_KEK");
    expect(env).not.toHaveProperty("MANDATE_PKCS11_PIN");
    const moduleDir = (env.MANDATE_PKCS11_MODULE as string).replace(/\/lib\/[^/]+$/, "");
    expect(container.volumeMounts).toContainEqual(expect.objectContaining({ mountPath: moduleDir, readOnly: true }));
    const policies = resources.filter((r) => r.kind === "NetworkPolicy");
    const hsm = { ip: "192.0.2.10" };
    const pods = podsOf(resources);
    expect(allowedByPolicies(policies, NAMESPACE, { from: pods.get("signer") as Endpoint, to: hsm, port: 1792 })).toBe(
      true,
    );
    expect(allowedByPolicies(policies, NAMESPACE, { from: pods.get("edge") as Endpoint, to: hsm, port: 1792 })).toBe(
      false,
    );
  });

  describe("catches a deliberately broken manifest", () => {
    // A copy of deploy/k8s; each case is an overlay on top of production with one breakage.
    let copy = "";
    beforeAll(() => {
      copy = mkdtempSync(join(tmpdir(), "mandate-k8s-"));
      cpSync(k8s, copy, { recursive: true });
    });
    afterAll(() => rmSync(copy, { recursive: true, force: true }));

    function broken(
      name: string,
      patches: Record<string, string>,
      extra: Record<string, string> = {},
    ): Promise<Resource[]> {
      const dir = join(copy, "overlays", `broken-${name}`);
      mkdirSync(dir);
      const files = { ...patches, ...extra };
      for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
      const kustomization = [
        "bases: [../production]",
        Object.keys(patches).length > 0 ? `patchesStrategicMerge: [${Object.keys(patches).join(", ")}]` : "",
        Object.keys(extra).length > 0 ? `resources: [${Object.keys(extra).join(", ")}]` : "",
      ];
      if (name === "latest-tag") kustomization.push("images: [{name: mandate, newTag: latest}]");
      writeFileSync(join(dir, "kustomization.yaml"), kustomization.join("\n"));
      return renderAsync(dir);
    }

    const deployment = (name: string, spec: string) =>
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ${name}, namespace: mandate}\nspec:\n${spec}\n`;
    const container = (name: string, fields: string) =>
      deployment(name, `  template:\n    spec:\n      containers:\n        - name: ${name}\n${fields}`);

    // kubectl 1.20's kustomize leaves an empty document for `$patch: delete`: policies are narrowed instead.
    const policySelecting = (name: string, selector: string) =>
      `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ${name}, namespace: mandate}\nspec: {podSelector: ${selector}}\n`;

    const cases: Array<{
      name: string;
      patches?: Record<string, string>;
      extra?: Record<string, string>;
      message: string;
    }> = [
      {
        name: "writable-root",
        patches: { "p.yaml": container("signer", "          securityContext: {readOnlyRootFilesystem: false}") },
        message: "Deployment/signer: container signer: securityContext.readOnlyRootFilesystem must be true",
      },
      {
        name: "root",
        patches: {
          "p.yaml": deployment(
            "edge",
            "  template:\n    spec:\n      securityContext: {runAsNonRoot: false}\n      containers:\n        - name: edge\n          securityContext: {runAsNonRoot: null}",
          ),
        },
        message: "Deployment/edge: container edge: runAsNonRoot must be true (pod or container securityContext)",
      },
      {
        name: "no-limits",
        patches: { "p.yaml": container("authorize", "          resources: {limits: null}") },
        message: "Deployment/authorize: container authorize: resources.limits.memory must be set",
      },
      {
        name: "no-readiness",
        patches: { "p.yaml": container("introspect", "          readinessProbe: null") },
        message: "Deployment/introspect: container introspect: readinessProbe must be set",
      },
      {
        name: "latest-tag",
        message:
          "Deployment/tenants: container tenants: image mandate:latest uses the latest tag: pin a version or a digest",
      },
      {
        name: "untagged-init",
        patches: {
          "p.yaml": deployment(
            "audit",
            "  template:\n    spec:\n      initContainers:\n        - {name: wait, image: busybox, command: [sleep, '1'], resources: {requests: {cpu: 10m, memory: 8Mi}, limits: {cpu: 10m, memory: 8Mi}}, securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}",
          ),
        },
        message: "Deployment/audit: container wait: image busybox is untagged: pin a version or a digest",
      },
      {
        name: "kek-in-configmap",
        patches: {
          "p.yaml":
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mandate, namespace: mandate}\ndata: {MANDATE_SIGNER_KEK: AAAA}\n",
        },
        message: "ConfigMap/mandate: key MANDATE_SIGNER_KEK names a secret: put it in a Secret",
      },
      {
        name: "pem-in-configmap",
        patches: {
          "p.yaml":
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mandate, namespace: mandate}\ndata:\n  tls.pem: |\n    -----BEGIN EC PRIVATE KEY-----\n    MHcCAQEE\n    -----END EC PRIVATE KEY-----\n",
        },
        message: "ConfigMap/mandate: tls.pem holds a PEM private key: put it in a Secret",
      },
      {
        name: "password-url",
        patches: {
          "p.yaml":
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mandate, namespace: mandate}\ndata: {MANDATE_DATABASE_URL: 'postgres://mandate:hunter2@db:5432/mandate'}\n",
        },
        message: "ConfigMap/mandate: MANDATE_DATABASE_URL holds a URL with a password: put it in a Secret",
      },
      {
        name: "schema",
        patches: { "p.yaml": deployment("edge", "  revisionHistoryLimit: three") },
        message: "Deployment/edge: schema: data/spec/revisionHistoryLimit must be integer",
      },
      {
        name: "open-signer",
        extra: {
          "open.yaml":
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open-signer, namespace: mandate}\nspec:\n  podSelector: {matchLabels: {app.kubernetes.io/component: signer}}\n  policyTypes: [Ingress]\n  ingress: [{}]\n",
        },
        message: "NetworkPolicy: outside the namespace → signer:4461 must be denied",
      },
      {
        name: "no-dns",
        patches: { "p.yaml": policySelecting("dns", "{matchLabels: {app: none}}") },
        message: "NetworkPolicy: migrate → DNS (UDP 53) must be allowed",
      },
      {
        name: "no-default-deny",
        patches: { "p.yaml": policySelecting("default-deny", "{matchLabels: {app: none}}") },
        message: "Deployment/issue: no NetworkPolicy restricts its ingress",
      },
    ];

    // Concurrent: each case waits mostly on its kubectl process.
    // Concurrent tests assert through their own context's expect.
    it.concurrent.for(cases)("$name: $message", async ({ name, patches = {}, extra = {}, message }, context) => {
      const violations = await violationsOf(await broken(name, patches, extra));
      context.expect(violations).toContain(message);
    });
  });
});
