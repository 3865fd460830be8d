// Renders the kustomize overlays under deploy/k8s with `kubectl kustomize` and checks what a cluster
// would be given: every resource against the Kubernetes (and cert-manager) JSON schemas of the
// kubernetes-models packages, then our own rules. Each rule reports a violation as a sentence naming
// the resource, so a test can assert that a given breakage is caught by the rule meant to catch it.
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";

/** A rendered Kubernetes object: free-form, read through the narrow shapes below. */
// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form YAML; the rules inspect their shape
export type Resource = Record<string, any> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
};

type Labels = Record<string, string>;

export interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: Array<{ name: string; value?: string }>;
  startupProbe?: unknown;
  securityContext?: {
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    runAsNonRoot?: boolean;
    capabilities?: { drop?: string[] };
  };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: unknown;
  livenessProbe?: unknown;
}

export interface PodTemplate {
  metadata?: { labels?: Labels };
  spec: {
    securityContext?: { runAsNonRoot?: boolean };
    containers: Container[];
    initContainers?: Container[];
    volumes?: Array<{ name: string; secret?: { secretName?: string } }>;
  };
}

const execFileAsync = promisify(execFile);

export const KUBECTL = process.env.MANDATE_KUBECTL ?? "kubectl";

/**
 * Whether kubectl runs here, for skipping the rendering tests without it. With
 * MANDATE_REQUIRE_KUBECTL=1 (CI) a missing kubectl throws instead, so the checks cannot silently vanish.
 */
export function kubectlAvailable(): boolean {
  try {
    execFileSync(KUBECTL, ["version", "--client"], { stdio: "ignore" });
    return true;
  } catch {
    if (process.env.MANDATE_REQUIRE_KUBECTL === "1") {
      throw new Error(
        `MANDATE_REQUIRE_KUBECTL=1 but ${KUBECTL} does not run: apt-get install -y kubernetes-client (or set MANDATE_KUBECTL to a kubectl binary)`,
      );
    }
    return false;
  }
}

/** `kubectl kustomize <dir>`, parsed. Newer kubectl warns on stderr about the kustomize v2 fields we keep for 1.20. */
export function render(dir: string): Resource[] {
  return parseRendered(
    dir,
    execFileSync(KUBECTL, ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }),
  );
}

/** As render, without blocking: renders run side by side. */
export async function renderAsync(dir: string): Promise<Resource[]> {
  return parseRendered(dir, (await execFileAsync(KUBECTL, ["kustomize", dir], { encoding: "utf8" })).stdout);
}

function parseRendered(dir: string, out: string): Resource[] {
  return parseAllDocuments(out).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${dir}: ${doc.errors[0]?.message}`);
    const resource = doc.toJS() as Resource | null;
    // kubectl 1.20's kustomize renders a resource removed by `$patch: delete` as `{}`, which it cannot apply.
    if (!resource?.kind || !resource.metadata?.name)
      throw new Error(`${dir}: a rendered document has no kind or name: ${doc}`);
    return resource;
  });
}

export const nameOf = (r: Resource): string => `${r.kind}/${r.metadata.name}`;

/** The pod template of a workload, or undefined for other kinds. */
export function podTemplateOf(r: Resource): PodTemplate | undefined {
  return ["Deployment", "StatefulSet", "DaemonSet", "Job"].includes(r.kind)
    ? (r.spec?.template as PodTemplate)
    : undefined;
}

// --- Schemas ---------------------------------------------------------------------------------------

/** The module of kubernetes-models (or a CRD package) holding the model for an apiVersion and kind. */
function modelModule(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "cert-manager.io") return `@kubernetes-models/cert-manager/cert-manager.io/${version}/${kind}`;
  return group === "" ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`;
}

type Model = new (data: Resource) => { validate(): void };

/** Schema violations: unknown kinds, and the first error the schema finds in each resource. */
export async function schemaViolations(resources: readonly Resource[]): Promise<string[]> {
  const violations: string[] = [];
  for (const resource of resources) {
    const { apiVersion, kind } = resource;
    let model: Model | undefined;
    try {
      model = ((await import(modelModule(apiVersion, kind))) as Record<string, Model>)[kind];
    } catch {
      model = undefined;
    }
    if (!model) {
      violations.push(`${nameOf(resource)}: no schema for ${apiVersion} ${kind}`);
      continue;
    }
    try {
      new model(resource).validate();
    } catch (error) {
      violations.push(`${nameOf(resource)}: schema: ${(error as Error).message}`);
    }
  }
  return violations;
}

// --- Workload rules --------------------------------------------------------------------------------

/** An image with a tag other than `latest`, or a digest: what runs is what was reviewed. */
function imageViolation(image: string | undefined): string | undefined {
  if (!image) return "has no image";
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return undefined;
  const tag = /:([\w][\w.-]{0,127})$/.exec(image.slice(image.lastIndexOf("/") + 1))?.[1];
  if (!tag) return `image ${image} is untagged: pin a version or a digest`;
  if (tag === "latest") return `image ${image} uses the latest tag: pin a version or a digest`;
  return undefined;
}

/** Non-root, read-only root filesystem, no privilege escalation, no capabilities. */
function securityViolations(c: Container, pod: PodTemplate["spec"]): string[] {
  const security = c.securityContext ?? {};
  const violations: string[] = [];
  if ((security.runAsNonRoot ?? pod.securityContext?.runAsNonRoot) !== true) {
    violations.push("runAsNonRoot must be true (pod or container securityContext)");
  }
  if (security.readOnlyRootFilesystem !== true) violations.push("securityContext.readOnlyRootFilesystem must be true");
  if (security.allowPrivilegeEscalation !== false)
    violations.push("securityContext.allowPrivilegeEscalation must be false");
  if (!security.capabilities?.drop?.includes("ALL"))
    violations.push("securityContext.capabilities.drop must include ALL");
  return violations;
}

/** CPU and memory requests and limits: scheduling, and a ceiling for a runaway process. */
function resourceViolations(c: Container): string[] {
  return (["requests", "limits"] as const).flatMap((kind) =>
    ["cpu", "memory"]
      .filter((name) => !c.resources?.[kind]?.[name])
      .map((name) => `resources.${kind}.${name} must be set`),
  );
}

/**
 * Every container (init containers too) secured, bounded and pinned; readiness and liveness probes
 * on the long-running ones (not a Job's, which runs to completion).
 */
export function workloadViolations(resources: readonly Resource[]): string[] {
  return resources.flatMap((resource) => {
    const template = podTemplateOf(resource);
    if (!template) return [];
    const pod = template.spec;
    const probed = resource.kind !== "Job";
    const containers = [
      ...(pod.initContainers ?? []).map((c) => ({ c, probed: false })),
      ...pod.containers.map((c) => ({ c, probed })),
    ];
    return containers.flatMap(({ c, probed }) => {
      const found = [...securityViolations(c, pod), ...resourceViolations(c)];
      if (probed && !c.readinessProbe) found.push("readinessProbe must be set");
      if (probed && !c.livenessProbe) found.push("livenessProbe must be set");
      const image = imageViolation(c.image);
      if (image) found.push(image);
      return found.map((violation) => `${nameOf(resource)}: container ${c.name}: ${violation}`);
    });
  });
}

// --- Secrets never in ConfigMaps -------------------------------------------------------------------

/** Keys naming a secret value (a `_FILE` key holds a path to one, which is fine). */
const SECRET_KEY =
  /(^|[_.-])(kek|password|passwd|secret|pin|token|private[_.-]?key|api[_.-]?key|credentials?)($|[_.-])/i;
const SECRET_VALUES: Array<[RegExp, string]> = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a PEM private key"],
  [/^[a-z][a-z0-9+.-]*:\/\/[^/@\s:]+:[^/@\s]+@/i, "a URL with a password"],
];

/** ConfigMaps hold settings anyone with read access to the namespace sees: secrets belong in Secrets. */
export function configMapViolations(resources: readonly Resource[]): string[] {
  const violations: string[] = [];
  for (const resource of resources.filter((r) => r.kind === "ConfigMap")) {
    for (const [key, value] of Object.entries((resource.data ?? {}) as Record<string, string>)) {
      if (SECRET_KEY.test(key) && !/_FILE$/i.test(key)) {
        violations.push(`${nameOf(resource)}: key ${key} names a secret: put it in a Secret`);
      }
      for (const [pattern, what] of SECRET_VALUES) {
        if (pattern.test(String(value)))
          violations.push(`${nameOf(resource)}: ${key} holds ${what}: put it in a Secret`);
      }
    }
  }
  return violations;
}

// --- Network policies ------------------------------------------------------------------------------

/** Where traffic comes from or goes to: a pod (with its namespace's labels), or an address outside the cluster. */
export type Endpoint = { namespace: string; namespaceLabels: Labels; labels: Labels } | { ip: string };

export interface Traffic {
  from: Endpoint;
  to: Endpoint;
  port: number;
  protocol?: "TCP" | "UDP";
}

interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: Array<{ key: string; operator: "In" | "NotIn" | "Exists" | "DoesNotExist"; values?: string[] }>;
}
interface Peer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}
interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: Array<{ port?: number | string; protocol?: string; endPort?: number }>;
}

function selects(selector: LabelSelector, labels: Labels): boolean {
  const byLabel = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return (
    byLabel &&
    (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
      if (operator === "In") return key in labels && values.includes(labels[key] as string);
      if (operator === "NotIn") return !(key in labels && values.includes(labels[key] as string));
      if (operator === "Exists") return key in labels;
      return !(key in labels);
    })
  );
}

function ipv4(address: string): number {
  return address.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipv4(ip) / size) === Math.floor(ipv4(base as string) / size);
}

/** NetworkPolicy peer semantics (networking.k8s.io/v1): pod and namespace selectors, or an ipBlock. */
function peerMatches(peer: Peer, endpoint: Endpoint, policyNamespace: string): boolean {
  if ("ip" in endpoint) {
    return (
      peer.ipBlock !== undefined &&
      inCidr(endpoint.ip, peer.ipBlock.cidr) &&
      !(peer.ipBlock.except ?? []).some((c) => inCidr(endpoint.ip, c))
    );
  }
  if (peer.ipBlock) return false;
  const namespaceOk = peer.namespaceSelector
    ? selects(peer.namespaceSelector, endpoint.namespaceLabels)
    : endpoint.namespace === policyNamespace;
  return namespaceOk && (peer.podSelector ? selects(peer.podSelector, endpoint.labels) : true);
}

function portMatches(rule: Rule, port: number, protocol: string): boolean {
  if (!rule.ports || rule.ports.length === 0) return true;
  return rule.ports.some(
    (p) =>
      (p.protocol ?? "TCP") === protocol &&
      (p.port === undefined || (Number(p.port) <= port && port <= (p.endPort ?? Number(p.port)))),
  );
}

/**
 * Whether the policies of `namespace` let `traffic` through: the destination's ingress (when it is
 * a pod there) and the source's egress (when it is a pod there) must each be unrestricted or allow it.
 */
export function allowedByPolicies(policies: readonly Resource[], namespace: string, traffic: Traffic): boolean {
  const protocol = traffic.protocol ?? "TCP";
  const direction = (pod: Endpoint, type: "Ingress" | "Egress", peer: Endpoint): boolean => {
    if ("ip" in pod || pod.namespace !== namespace) return true;
    const covering = policies.filter((p) => {
      const types: string[] =
        p.spec.policyTypes ?? (type === "Ingress" ? ["Ingress"] : p.spec.egress ? ["Egress"] : []);
      return types.includes(type) && selects(p.spec.podSelector ?? {}, pod.labels);
    });
    if (covering.length === 0) return true;
    return covering.some((p) =>
      ((type === "Ingress" ? p.spec.ingress : p.spec.egress) ?? []).some((rule: Rule) => {
        const peers = type === "Ingress" ? rule.from : rule.to;
        return (
          portMatches(rule, traffic.port, protocol) &&
          (!peers || peers.length === 0 || peers.some((x) => peerMatches(x, peer, p.metadata.namespace ?? namespace)))
        );
      }),
    );
  };
  return direction(traffic.to, "Ingress", traffic.from) && direction(traffic.from, "Egress", traffic.to);
}

/** Pods in `namespace` not selected by any policy for ingress or egress: unprotected by a default deny. */
export function uncoveredPods(resources: readonly Resource[], namespace: string): string[] {
  const policies = resources.filter((r) => r.kind === "NetworkPolicy");
  const uncovered: string[] = [];
  for (const resource of resources) {
    const labels = podTemplateOf(resource)?.metadata?.labels ?? {};
    if (!podTemplateOf(resource)) continue;
    for (const type of ["Ingress", "Egress"]) {
      const covered = policies.some(
        (p) =>
          p.metadata.namespace === namespace &&
          (p.spec.policyTypes ?? ["Ingress"]).includes(type) &&
          selects(p.spec.podSelector ?? {}, labels),
      );
      if (!covered) uncovered.push(`${nameOf(resource)}: no NetworkPolicy restricts its ${type.toLowerCase()}`);
    }
  }
  return uncovered;
}
