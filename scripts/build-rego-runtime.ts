// Builds the Rego compiler's Wasm runtime (AssemblyScript) into gen/rego/runtime.wasm. The compiler
// links every policy onto this prebuilt module, so asc runs once here, never per policy.
// `--check` rebuilds in memory and fails when the committed file is stale.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import asc from "assemblyscript/asc";

const entry = fileURLToPath(new URL("../services/authorize/rego/runtime/index.ts", import.meta.url));
const target = fileURLToPath(new URL("../gen/rego/runtime.wasm", import.meta.url));

export async function buildRuntime(): Promise<Uint8Array> {
  const out = join(mkdtempSync(join(tmpdir(), "mandate-rego-runtime-")), "runtime.wasm");
  const { error, stderr } = await asc.main([
    entry,
    "--outFile",
    out,
    "--runtime",
    "stub",
    "--importMemory",
    "--noExportMemory",
    "-O3",
    "--converge",
  ]);
  if (error) throw new Error(`asc failed: ${error.message}\n${stderr.toString()}`);
  return readFileSync(out);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const wasm = await buildRuntime();
  if (process.argv.includes("--check")) {
    const committed = readFileSync(target);
    if (Buffer.compare(committed, wasm) !== 0) {
      console.error("gen/rego/runtime.wasm is stale: run `npm run build:rego-runtime` and commit it.");
      process.exit(1);
    }
  } else {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, wasm);
    console.log(`wrote ${target} (${wasm.length} bytes)`);
  }
}
