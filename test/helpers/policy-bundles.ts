// Small policy bundles for the policy registry, signature and reload suites: one tiny Rego policy
// (compiled once per process) whose decision names the bundle's revision and reads data, so an
// answer tells which revision and which data decided it.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Bundle, buildBundle, writeBundle } from "../../services/authorize/rego/bundle.ts";

export const TEST_POLICY = `package mandate.authz

import rego.v1

default allow := false

allow := data.flags.allow

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": [{"code": "revision", "message": data.meta.revision}],
	"obligations": [],
}
`;

let compiled: Promise<Bundle> | undefined;

/** The test policy compiled (once). */
export function testPolicy(): Promise<Bundle> {
  compiled ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "mandate-policy-"));
    writeFileSync(join(dir, "authz.rego"), TEST_POLICY);
    return (await buildBundle(dir)).bundle;
  })();
  return compiled;
}

/** A bundle of the test policy under `revision`; its data says the revision (data.meta.revision). */
export async function testBundle(
  revision: string,
  data: Record<string, unknown> = {},
  modules?: Record<string, string>,
): Promise<Buffer> {
  const policy = await testPolicy();
  return writeBundle({
    manifest: { ...policy.manifest, revision },
    data: { meta: { revision }, ...data },
    wasm: policy.wasm,
    modules: modules ?? policy.modules,
  });
}

/** A bundle whose module lacks the decision entrypoint. */
export async function bundleWithoutDecision(revision: string): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "mandate-policy-"));
  writeFileSync(
    join(dir, "other.rego"),
    "package other\n\nimport rego.v1\n\n# METADATA\n# entrypoint: true\nallow := true\n",
  );
  return (await buildBundle(dir, { revision })).bytes;
}

/** A fresh temporary directory holding the given policy files (name → text), as a policy author's source tree. */
export function policyDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "mandate-policy-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}
