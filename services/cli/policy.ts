// `mandate policy …`: build (and sign) OPA bundles with Mandate's Rego compiler, evaluate a bundle,
// run the Rego conformance corpus (policy tests, checks and the built-ins' catalogue are
// policy-authoring.ts's); and manage a tenant's policies on a running Mandate over gRPC (push,
// revisions, activate, rollback, data, signing).
import { createPublicKey } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type Command, CommanderError } from "commander";
import { Authorize, type PolicyRevision, PolicyRevisionSchema } from "../../gen/mandate/v1/authorize_pb.js";
import { loadSigningKey, signBundleFiles } from "../authorize/policies/signatures.ts";
import { buildBundle, loadBundle, normaliseEntrypoint, readBundleFiles } from "../authorize/rego/bundle.ts";
import { runConformance } from "../authorize/rego/conformance/run.ts";
import { type CommandFactory, grpcClient, type Print, type TenantOptions, table, tenantRpcCommand } from "./common.ts";
import { builtinsSubcommand, checkSubcommand, reportingCompileErrors, testSubcommand } from "./policy-authoring.ts";

function readJsonFile(file: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(file === "-" ? 0 : file, "utf8"));
  } catch (error) {
    throw new CommanderError(2, "mandate.usage", `cannot read ${what} ${file}: ${(error as Error).message}`);
  }
}

function readText(file: string, what: string): string {
  return readBytes(file, what).toString("utf8");
}

function readBytes(file: string, what: string): Buffer {
  try {
    return readFileSync(file === "-" ? 0 : file);
  } catch (error) {
    throw new CommanderError(2, "mandate.usage", `cannot read ${what} ${file}: ${(error as Error).message}`);
  }
}

export function policyCommand(command: CommandFactory, print: Print): Command {
  return command("policy", "compile Rego to OPA Wasm bundles, test and evaluate policies; manage a tenant's policies")
    .addCommand(buildSubcommand(command, print))
    .addCommand(testSubcommand(command, print))
    .addCommand(checkSubcommand(command, print))
    .addCommand(builtinsSubcommand(command, print))
    .addCommand(evalSubcommand(command, print))
    .addCommand(conformanceSubcommand(command, print))
    .addCommand(signSubcommand(command, print))
    .addCommand(pushSubcommand(print))
    .addCommand(revisionsSubcommand(print))
    .addCommand(activateSubcommand(print))
    .addCommand(rollbackSubcommand(print))
    .addCommand(dataSubcommand(command, print))
    .addCommand(signingSubcommand(command, print));
}

interface BuildOptions {
  entrypoint?: string[];
  out: string;
  revision?: string;
  v0?: boolean;
  json?: boolean;
  signKey?: string;
  keyId?: string;
  signAlg?: string;
}

/** `policy build`: Rego to an OPA bundle with our compiler (signed with --sign-key). */
function buildSubcommand(command: CommandFactory, print: Print): Command {
  return command("build", "compile a policy directory into an OPA bundle (policy.wasm, data.json, .manifest)")
    .argument("[dir]", "directory of .rego files (and data.json files)", ".")
    .option("-e, --entrypoint <pkg/rule...>", "entrypoints (also taken from `# METADATA` entrypoint: true)")
    .option("-o, --out <file>", "bundle to write", "bundle.tar.gz")
    .option("--revision <revision>", "bundle revision (default: a hash of the module)")
    .option("--v0", "read Rego v0 syntax, as opa --v0-compatible")
    .option("--sign-key <file>", "sign the bundle (.signatures.json) with this private key (PEM or JWK)")
    .option("--key-id <id>", "key id of the signature (default: the JWK's kid, else the key's RFC 7638 thumbprint)")
    .option("--sign-alg <alg>", "signature algorithm (default: ES256/ES384/ES512 by curve, RS256, EdDSA)")
    .option("--json", "print the manifest as JSON")
    .action(async (dir: string, options: BuildOptions) => {
      const started = Date.now();
      const built = await reportingCompileErrors(dir, options, () =>
        buildBundle(dir, { entrypoints: options.entrypoint, revision: options.revision, v0: options.v0 }),
      );
      const { bundle } = built;
      const signer = options.signKey ? await signingKeyFrom(options) : undefined;
      const bytes = signer ? await signBundleFiles(await readBundleFiles(built.bytes), signer) : built.bytes;
      writeFileSync(options.out, bytes);
      const summary = {
        bundle: options.out,
        bytes: bytes.length,
        wasm_bytes: bundle.wasm.length,
        modules: Object.keys(bundle.modules).length,
        compile_ms: Date.now() - started,
        manifest: bundle.manifest,
        ...(signer ? { signed_by: signer.keyId, signature_alg: signer.alg, public_jwk: signer.publicJwk } : {}),
      };
      print(options, summary, () =>
        [
          `wrote ${options.out} (${bytes.length} bytes; policy.wasm ${bundle.wasm.length} bytes) in ${summary.compile_ms} ms`,
          `  revision     ${bundle.manifest.revision}`,
          `  entrypoints  ${(bundle.manifest.wasm ?? []).map((w) => w.entrypoint).join(", ")}`,
          ...(signer ? signedLines(signer.keyId, signer.alg) : []),
          `  try: mandate policy eval --bundle ${options.out} --input input.json ${bundle.manifest.wasm?.[0]?.entrypoint ?? ""}`,
        ].join("\n"),
      );
    });
}

function signedLines(keyId: string, alg: string): string[] {
  return [
    `  signed by    ${keyId} (${alg})`,
    "  tenants verify it with its public key: mandate policy signing set --tenant T --jwks PUBLIC_KEY_OR_JWKS",
  ];
}

async function signingKeyFrom(options: { signKey?: string; keyId?: string; signAlg?: string }) {
  const text = readText(options.signKey as string, "signing key");
  try {
    return await loadSigningKey(text, { keyId: options.keyId, alg: options.signAlg });
  } catch (error) {
    throw new CommanderError(
      2,
      "mandate.usage",
      `cannot sign with ${options.signKey}: ${(error as Error).message} (give a private key: PKCS#8/PKCS#1/SEC1 PEM or a JWK with "d")`,
    );
  }
}

/** `policy sign`: (re)sign an existing bundle, e.g. one `opa build` wrote. */
function signSubcommand(command: CommandFactory, print: Print): Command {
  return command("sign", "sign an OPA bundle: write .signatures.json covering every file (OPA's format)")
    .argument("<bundle>", "the bundle (tar.gz)")
    .requiredOption("--sign-key <file>", "private key (PEM or JWK)")
    .option("--key-id <id>", "key id of the signature (default: the JWK's kid, else the key's RFC 7638 thumbprint)")
    .option("--sign-alg <alg>", "signature algorithm (default: by key type)")
    .option("-o, --out <file>", "where to write the signed bundle (default: in place)")
    .option("--json", "print the result as JSON")
    .action(
      async (
        file: string,
        options: { signKey: string; keyId?: string; signAlg?: string; out?: string; json?: boolean },
      ) => {
        const signer = await signingKeyFrom(options);
        const files = await readBundleFiles(readBytes(file, "bundle")).catch((error: Error) => {
          throw new CommanderError(
            2,
            "mandate.usage",
            `${file} is not an OPA bundle (a gzipped tar): ${error.message}`,
          );
        });
        const out = options.out ?? file;
        writeFileSync(out, await signBundleFiles(files, signer));
        const summary = {
          bundle: out,
          signed_by: signer.keyId,
          signature_alg: signer.alg,
          public_jwk: signer.publicJwk,
        };
        print(options, summary, () => [`wrote ${out}`, ...signedLines(signer.keyId, signer.alg)].join("\n"));
      },
    );
}

/** `policy eval`: one entrypoint of a bundle, through @open-policy-agent/opa-wasm. */
function evalSubcommand(command: CommandFactory, print: Print): Command {
  return command("eval", "evaluate an entrypoint of a bundle through @open-policy-agent/opa-wasm")
    .argument("<entrypoint>", "pkg/rule (or data.pkg.rule)")
    .requiredOption("-b, --bundle <file>", "bundle built by `mandate policy build` or `opa build -t wasm`")
    .option("-i, --input <file>", "input document (JSON; - for stdin)")
    .option("-d, --data <file>", "data document replacing the bundle's data.json (JSON)")
    .option("--json", "print the result set as JSON")
    .action(async (entrypoint: string, options: { bundle: string; input?: string; data?: string; json?: boolean }) => {
      const bytes = readFileSync(options.bundle);
      const { policy: loaded, bundle } = await loadBundle(bytes);
      if (options.data) loaded.setData(readJsonFile(options.data, "data") as object);
      const input = options.input ? readJsonFile(options.input, "input") : undefined;
      const name = normaliseEntrypoint(entrypoint);
      if (!(name in loaded.entrypoints)) {
        const known = (bundle.manifest.wasm ?? []).map((w) => w.entrypoint).join(", ");
        throw new CommanderError(
          2,
          "mandate.usage",
          `the bundle has no entrypoint ${name} (it has: ${known || "none"})`,
        );
      }
      const rows = loaded.evaluate(input, name) as Array<{ result: unknown }>;
      print(options, rows, () => (rows.length === 0 ? "undefined" : JSON.stringify(rows[0]?.result, null, 2)));
    });
}

/** `policy conformance`: the YAML case corpus, a pass/fail/unsupported table per folder. */
function conformanceSubcommand(command: CommandFactory, print: Print): Command {
  return command("conformance", "run OPA/regorus-style YAML cases through the compiler and opa-wasm")
    .argument("<dir>", "directory of YAML case files (e.g. third_party/rego-conformance/cases)")
    .option("--json", "print every case's outcome as JSON")
    .action(async (dir: string, options: { json?: boolean }) => {
      const report = await runConformance(dir, (result, done, total) => {
        if (!options.json && (done % 50 === 0 || done === total)) process.stderr.write(`  ${done}/${total} cases\n`);
        if (!options.json && result.outcome === "fail") {
          process.stderr.write(`  FAIL ${result.file}: ${result.note}: ${result.detail ?? ""}\n`);
        }
      });
      const { totals } = report;
      const counted = totals.pass + totals.fail + totals.unsupported;
      const pct = (n: number, of: number) => (of === 0 ? "0.0" : ((100 * n) / of).toFixed(1));
      print(options, report, () => {
        const rows = Object.entries(report.folders).map(
          ([folder, t]) =>
            `${folder.padEnd(48)} ${String(t.pass).padStart(5)} ${String(t.fail).padStart(5)} ${String(t.unsupported).padStart(6)} ${String(t.skipped).padStart(5)}`,
        );
        return [
          `${"folder".padEnd(48)} ${"pass".padStart(5)} ${"fail".padStart(5)} ${"unsup".padStart(6)} ${"skip".padStart(5)}`,
          ...rows,
          "-".repeat(72),
          `${"total".padEnd(48)} ${String(totals.pass).padStart(5)} ${String(totals.fail).padStart(5)} ${String(totals.unsupported).padStart(6)} ${String(totals.skipped).padStart(5)}`,
          `pass ${pct(totals.pass, counted + totals.skipped)}% of all ${counted + totals.skipped} cases, ${pct(totals.pass, counted)}% of the ${counted} not marked skip`,
        ].join("\n");
      });
      if (totals.fail > 0) process.exitCode = 1;
    });
}

// --- A tenant's policies on a running Mandate (gRPC) -----------------------------------------------

function revisionJson(revision: PolicyRevision | undefined): unknown {
  return revision ? toJson(PolicyRevisionSchema, revision) : null;
}

function revisionLine(verb: string, tenant: string, revision: PolicyRevision | undefined): string {
  if (!revision) return `${verb} (no revision)`;
  const state = revision.active ? "active" : "stored, not active";
  const signed = revision.signedBy ? `, signed by ${revision.signedBy}` : ", unsigned";
  return `${verb} revision ${revision.revision} of tenant ${tenant} (${state}${signed}; sha256 ${revision.sha256.slice(0, 16)}…)`;
}

/** `policy push`: a bundle becomes a revision of the tenant (activated with --activate). */
function pushSubcommand(print: Print): Command {
  return tenantRpcCommand("push", "store a bundle as a policy revision of the tenant (verified and loaded first)")
    .argument("<bundle>", "the bundle (tar.gz) from `mandate policy build` or `opa build -t wasm`; - for stdin")
    .option("--activate", "make it the tenant's active policy at once")
    .action(async (file: string, options: TenantOptions & { activate?: boolean }) => {
      const bundle = readBytes(file, "bundle");
      const client = grpcClient(Authorize, options);
      const { revision } = await client.pushPolicy({
        tenant: options.tenant,
        bundle,
        activate: options.activate ?? false,
      });
      print(options, revisionJson(revision), () =>
        [
          revisionLine("stored", options.tenant, revision),
          ...(revision?.active
            ? []
            : [`  activate it: mandate policy activate --tenant ${options.tenant} ${revision?.revision ?? ""}`]),
        ].join("\n"),
      );
    });
}

/** `policy revisions`: the tenant's revisions, newest first. */
function revisionsSubcommand(print: Print): Command {
  return tenantRpcCommand(
    "revisions",
    "list the tenant's policy revisions, newest first, marking the active one",
  ).action(async (options: TenantOptions) => {
    const listed = await grpcClient(Authorize, options).listPolicyRevisions({ tenant: options.tenant });
    const json = { revisions: listed.revisions.map(revisionJson), usesDefault: listed.usesDefault };
    print(options, json, () => {
      const rows = listed.revisions.map((r) => [
        r.active ? "*" : "",
        r.revision,
        r.createTime ? new Date(Number(r.createTime.seconds) * 1000).toISOString() : "",
        r.signedBy || "-",
        r.sha256.slice(0, 16),
      ]);
      const note = listed.usesDefault ? "\n(no revision active: the tenant decides with the default policy)" : "";
      return rows.length === 0
        ? `tenant ${options.tenant} has no revisions: it decides with the default policy (push one: mandate policy push)`
        : `${table(["", "REVISION", "PUSHED", "SIGNED BY", "SHA-256"], rows)}${note}`;
    });
  });
}

/** `policy activate`: a stored revision decides the tenant's requests on every replica. */
function activateSubcommand(print: Print): Command {
  return tenantRpcCommand("activate", "make a stored revision the tenant's active policy on every replica")
    .argument("<revision>", "a revision listed by `mandate policy revisions`")
    .action(async (revision: string, options: TenantOptions) => {
      const response = await grpcClient(Authorize, options).activatePolicy({ tenant: options.tenant, revision });
      print(options, revisionJson(response.revision), () =>
        revisionLine("activated", options.tenant, response.revision),
      );
    });
}

/** `policy rollback`: the revision active before the current one comes back. */
function rollbackSubcommand(print: Print): Command {
  return tenantRpcCommand("rollback", "re-activate the revision that was active before the current one").action(
    async (options: TenantOptions) => {
      const response = await grpcClient(Authorize, options).rollbackPolicy({ tenant: options.tenant });
      print(options, revisionJson(response.revision), () =>
        revisionLine("rolled back to", options.tenant, response.revision),
      );
    },
  );
}

/** `policy data set|get|delete`: the tenant's dynamic data documents. */
function dataSubcommand(command: CommandFactory, print: Print): Command {
  const data = command("data", "a tenant's dynamic data documents (merged into the policy's data at their paths)");
  data.addCommand(
    tenantRpcCommand("set", "set the document at PATH (e.g. bindings/roles) from a JSON file or stdin")
      .argument("<path>", "slash-separated path under data, e.g. bindings/roles")
      .argument("<file>", "JSON document; - for stdin")
      .action(async (path: string, file: string, options: TenantOptions) => {
        const value = fromJson(ValueSchema, readJsonFile(file, "document") as JsonValue);
        await grpcClient(Authorize, options).setPolicyData({ tenant: options.tenant, path, value });
        print(
          options,
          { tenant: options.tenant, path, set: true },
          () => `set data/${path} of tenant ${options.tenant}`,
        );
      }),
  );
  data.addCommand(
    tenantRpcCommand("delete", "remove the document at PATH")
      .argument("<path>", "slash-separated path under data")
      .action(async (path: string, options: TenantOptions) => {
        await grpcClient(Authorize, options).setPolicyData({ tenant: options.tenant, path });
        print(
          options,
          { tenant: options.tenant, path, removed: true },
          () => `removed data/${path} of tenant ${options.tenant}`,
        );
      }),
  );
  data.addCommand(
    tenantRpcCommand("get", "print the tenant's documents").action(async (options: TenantOptions) => {
      const { documents } = await grpcClient(Authorize, options).getPolicyData({ tenant: options.tenant });
      const json = documents.map((d) => ({
        path: d.path,
        value: d.value ? toJson(ValueSchema, d.value) : null,
        updateTime: d.updateTime ? new Date(Number(d.updateTime.seconds) * 1000).toISOString() : null,
      }));
      print(options, json, () =>
        json.length === 0
          ? `tenant ${options.tenant} has no data documents`
          : json.map((d) => `${d.path}\t${JSON.stringify(d.value)}`).join("\n"),
      );
    }),
  );
  return data;
}

interface SigningOptions extends TenantOptions {
  jwks?: string;
  require?: boolean;
  keyId?: string;
}

/** `policy signing set`: the keys the tenant's bundles are verified with, and whether they must be signed. */
function signingSubcommand(command: CommandFactory, print: Print): Command {
  return command("signing", "bundle-signing settings of a tenant").addCommand(
    tenantRpcCommand(
      "set",
      "set the keys bundles are verified with (public keys only) and whether signatures are required",
    )
      .option("--jwks <file>", "a JWK Set (JSON) or a public key PEM; omitted: no keys")
      .option(
        "--key-id <id>",
        "key id for a PEM public key (default: its RFC 7638 thumbprint, as `policy build --sign-key` uses)",
      )
      .option("--require", "refuse unsigned bundles")
      .action(async (options: SigningOptions) => {
        const jwks = options.jwks ? await jwksFrom(options.jwks, options.keyId) : "";
        const requireSignatures = options.require ?? false;
        await grpcClient(Authorize, options).setPolicySigning({ tenant: options.tenant, jwks, requireSignatures });
        const kids = jwks ? (JSON.parse(jwks) as { keys: Array<{ kid?: string }> }).keys.map((k) => k.kid) : [];
        print(
          options,
          { tenant: options.tenant, keyIds: kids, requireSignatures },
          () =>
            `tenant ${options.tenant}: ${kids.length} signing key(s)${kids.length ? ` (${kids.join(", ")})` : ""}; ` +
            (requireSignatures ? "unsigned bundles are refused" : "unsigned bundles are accepted"),
        );
      }),
  );
}

/** A JWK Set file as is, or a PEM public key as a one-key set (kid: --key-id or its thumbprint). */
async function jwksFrom(file: string, keyId: string | undefined): Promise<string> {
  const text = readText(file, "JWK Set");
  if (!text.includes("-----BEGIN")) return text;
  if (/PRIVATE KEY-----/.test(text)) {
    throw new CommanderError(
      2,
      "mandate.usage",
      `${file} holds a private key: give its public key (openssl pkey -in ${file} -pubout) or a JWK Set of public keys`,
    );
  }
  const { exportJWK, calculateJwkThumbprint } = await import("jose");
  const jwk = await exportJWK(createPublicKey(text));
  return JSON.stringify({ keys: [{ ...jwk, kid: keyId ?? (await calculateJwkThumbprint(jwk)), use: "sig" }] });
}
