// OPA bundles and the `mandate policy` commands, run as a user runs them (the real CLI in a child
// process): build a bundle from policies/default, read its layout back, evaluate it, run the
// policy tests (a failing test makes the exit code non-zero), and refuse broken policies with
// positioned errors.
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import {
  annotatedEntrypoints,
  buildBundle,
  loadBundle,
  readBundle,
  writeBundle,
} from "../../services/authorize/rego/bundle.ts";
import { parseModules } from "../../services/authorize/rego/compile.ts";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const POLICY = join(ROOT, "policies/default");
const mandate = (...args: string[]) =>
  run(process.execPath, [join(ROOT, "bin/mandate.js"), ...args], { cwd: ROOT }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

const input = {
  version: 1,
  tenant: "acme",
  subject: { id: "alice", kind: "human", attributes: { clearance: 2 } },
  actors: [{ id: "agent-1", kind: "agent", attributes: { tenant: "acme" } }],
  action: "orders.read",
  resource: { type: "order", id: "o-1", attributes: { audience: "https://orders", classification: 1 } },
  token: { scopes: ["orders.read"], aud: ["https://orders"], authorization_details: [] },
  mandate: { expires_at: 2000, uses_remaining: 1 },
  context: { time: 1000 },
};

describe("OPA bundles", () => {
  it("builds the OPA layout: /.manifest, /data.json, /policy.wasm and the sources", async () => {
    const { bytes } = await buildBundle(POLICY, { revision: "r1" });
    const bundle = await readBundle(bytes);
    expect(bundle.manifest).toEqual({
      revision: "r1",
      roots: ["mandate"],
      wasm: [{ entrypoint: "mandate/authz/decision", module: "/policy.wasm" }],
      rego_version: 1,
    });
    expect(bundle.data).toEqual({ limits: { max_chain: 3 } });
    expect(Object.keys(bundle.modules).sort()).toEqual(["authz.rego", "authz_test.rego"]);
    const { policy } = await loadBundle(bytes);
    expect(policy.evaluate(input, "mandate/authz/decision")).toEqual([
      { result: { allow: true, reasons: [], obligations: [] } },
    ]);
  });

  it("loads a bundle laid out as `opa build -t wasm` writes it (no sources, explicit module path)", async () => {
    const { bundle } = await buildBundle(POLICY);
    const opaStyle = await writeBundle({
      manifest: { revision: "", roots: [""], wasm: [{ entrypoint: "mandate/authz/decision", module: "/policy.wasm" }] },
      data: { limits: { max_chain: 0 } },
      wasm: bundle.wasm,
      modules: {},
    });
    const { policy } = await loadBundle(opaStyle);
    const [row] = policy.evaluate(input, "mandate/authz/decision") as Array<{ result: { reasons: unknown[] } }>;
    expect(row?.result.reasons).toEqual([{ code: "chain_too_long", message: "the delegation chain is too long" }]);
  });

  it("takes entrypoints from # METADATA annotations", () => {
    const modules = {
      "a.rego":
        "package a\n\n# METADATA\n# title: x\n# entrypoint: true\nallow := true\n\n# METADATA\n# scope: package\n# entrypoint: true\n",
    };
    expect(annotatedEntrypoints(modules, parseModules(modules))).toEqual(["a/allow", "a"]);
  });

  it("refuses a corrupt bundle with an error, not a crash", async () => {
    await expect(readBundle(Buffer.from("not a bundle"))).rejects.toThrow();
    const empty = await writeBundle({
      manifest: { revision: "", roots: [""] },
      data: {},
      wasm: new Uint8Array(),
      modules: {},
    });
    await expect(loadBundle(empty)).rejects.toThrow();
  });
});

describe("mandate policy", () => {
  it("build → eval, with --json", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mandate-policy-"));
    const out = join(dir, "bundle.tar.gz");
    const built = await mandate("policy", "build", POLICY, "-o", out, "--json");
    expect(built.code).toBe(0);
    expect(JSON.parse(built.stdout).manifest.wasm).toEqual([
      { entrypoint: "mandate/authz/decision", module: "/policy.wasm" },
    ]);
    writeFileSync(join(dir, "input.json"), JSON.stringify({ ...input, action: "orders.delete" }));
    const evaluated = await mandate(
      "policy",
      "eval",
      "--bundle",
      out,
      "--input",
      join(dir, "input.json"),
      "--json",
      "data.mandate.authz.decision",
    );
    expect(evaluated.code).toBe(0);
    expect(JSON.parse(evaluated.stdout)).toEqual([
      {
        result: {
          allow: false,
          reasons: [{ code: "scope_missing", message: "the action is outside the token's scopes" }],
          obligations: [],
        },
      },
    ]);
    const unknown = await mandate("policy", "eval", "--bundle", out, "nope/rule");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/the bundle has no entrypoint nope\/rule \(it has: mandate\/authz\/decision\)/);
  }, 60_000);

  it("test: passes the shipped policy's tests; a failing test fails the command", async () => {
    const ok = await mandate("policy", "test", POLICY, "--json");
    expect(ok.code).toBe(0);
    const results = JSON.parse(ok.stdout) as Array<{ name: string; outcome: string }>;
    expect(results.length).toBeGreaterThanOrEqual(7);
    expect(results.every((r) => r.outcome === "pass")).toBe(true);

    const dir = mkdtempSync(join(tmpdir(), "mandate-policy-"));
    cpSync(POLICY, dir, { recursive: true });
    writeFileSync(
      join(dir, "broken_test.rego"),
      "package mandate.authz\nimport rego.v1\ntest_wrong if decision.allow with input as {}\n",
    );
    const failed = await mandate("policy", "test", dir);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/FAIL {2}data\.mandate\.authz\.test_wrong/);
  }, 60_000);

  it("build refuses a broken policy with OPA-style positioned errors", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mandate-policy-"));
    writeFileSync(join(dir, "p.rego"), "package p\nimport rego.v1\nallow if { x > 1 }\n");
    const result = await mandate("policy", "build", dir, "-e", "p/allow", "-o", join(dir, "b.tar.gz"));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /p\.rego:3:12: rego_unsafe_var_error: var x is unsafe\n {2}allow if { x > 1 }\n {13}\^/,
    );
    const none = await mandate("policy", "build", dir);
    expect(none.stderr).toMatch(/no entrypoints|error/);
  }, 60_000);

  it("--help describes the commands", async () => {
    const help = await mandate("policy", "--help");
    expect(help.stdout).toMatch(/build.*\n.*test|build[\s\S]*test[\s\S]*eval[\s\S]*conformance/);
    expect(readFileSync(join(ROOT, "policies/default/authz.rego"), "utf8")).toMatch(/entrypoint: true/);
  });
});
