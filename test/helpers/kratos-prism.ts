// Ory Kratos's official OpenAPI contract (third_party/kratos, v26.2.0) served by Prism in mock mode
// with `--errors`: a request the contract does not allow is answered 422, never mocked. Self-hosted
// Kratos has no `oryAccessToken` security (Ory Network's): it is stripped, nothing else changes.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { freePort } from "./oauth-server.ts";

const CONTRACT = new URL("../../third_party/kratos/api.v26.2.0.json", import.meta.url);
const PRISM = join(
  dirname(createRequire(import.meta.url).resolve("@stoplight/prism-cli/package.json")),
  "dist/index.js",
);

export interface KratosContract {
  /** Base URL of the mock (public and admin APIs alike). */
  url: string;
  stop(): Promise<void>;
}

export async function startKratosContract(): Promise<KratosContract> {
  const spec = JSON.parse(await readFile(CONTRACT, "utf8")) as { paths: Record<string, Record<string, unknown>> };
  for (const item of Object.values(spec.paths))
    for (const op of Object.values(item))
      if (op && typeof op === "object") delete (op as { security?: unknown }).security;
  const dir = await mkdtemp(join(tmpdir(), "mandate-kratos-"));
  await writeFile(join(dir, "kratos.json"), JSON.stringify(spec));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const prism: ChildProcess = spawn(
    process.execPath,
    [PRISM, "mock", join(dir, "kratos.json"), "--host", "127.0.0.1", "--port", String(port), "--errors"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  await new Promise<void>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      log += chunk;
      if (log.includes(`Prism is listening on ${url}`)) resolve();
    };
    prism.stdout?.on("data", read);
    prism.stderr?.on("data", read);
    prism.once("exit", (code) => reject(new Error(`prism exited with ${code}:\n${log}`)));
  });
  return {
    url,
    async stop() {
      if (prism.exitCode === null) {
        prism.kill("SIGTERM");
        await once(prism, "exit");
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
