// `mandate policy` against `mandate dev`, as users drive it: build (and sign) bundles, push,
// revisions, activate, rollback, data, signing; refusals exit 1 with the server's precise message.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MandateProcess, runMandate, startDevProcess } from "../helpers/mandate-process.ts";
import { TEST_POLICY } from "../helpers/policy-bundles.ts";

describe("mandate policy (CLI) against mandate dev", () => {
  let dev: MandateProcess;
  let dir: string;
  let cli: (args: string[]) => ReturnType<typeof runMandate>;
  const json = async (args: string[]) => {
    const result = await cli([...args, "--json"]);
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as Record<string, unknown>;
  };

  beforeAll(async () => {
    // The server starts while the bundles are built: three processes at once, not one after another.
    const starting = startDevProcess();
    dir = mkdtempSync(join(tmpdir(), "mandate-policy-cli-"));
    writeFileSync(join(dir, "authz.rego"), TEST_POLICY);
    writeFileSync(join(dir, "data.json"), JSON.stringify({ meta: { revision: "from-data" } }));
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    writeFileSync(join(dirOut(), "sign.pem"), privateKey.export({ type: "pkcs8", format: "pem" }).toString());
    writeFileSync(join(dirOut(), "verify.pem"), publicKey.export({ type: "spki", format: "pem" }).toString());
    const builds = ["v1", "v2"].map((revision) =>
      runMandate(["policy", "build", dir, "--revision", revision, "-o", out(`${revision}.tar.gz`)]),
    );
    dev = await starting;
    const address = dev.summary.grpc as string;
    cli = (args) => runMandate([...args, "--address", address], { MANDATE_ADMIN_FILE: dev.adminFile });
    for (const built of await Promise.all(builds)) expect(built.code, built.stderr).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await dev?.stop();
  });

  let outDir: string | undefined;
  function dirOut(): string {
    outDir ??= mkdtempSync(join(tmpdir(), "mandate-policy-out-"));
    return outDir;
  }
  const out = (name: string) => join(dirOut(), name);

  it.each([["push"], ["revisions"], ["data", "set"], ["signing", "set"], ["sign"]])(
    "has --help on `mandate policy %s`",
    async (...words) => {
      const help = await runMandate(["policy", ...words, "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/^Usage: mandate policy/);
    },
  );

  it("pushes, lists, activates and rolls back revisions", async () => {
    const pushed = await json(["policy", "push", "--tenant", "demo", out("v1.tar.gz"), "--activate"]);
    expect(pushed).toMatchObject({ revision: "v1", active: true, entrypoints: ["mandate/authz/decision"] });
    const second = await cli(["policy", "push", "--tenant", "demo", out("v2.tar.gz")]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain("stored revision v2 of tenant demo (stored, not active, unsigned");
    expect(second.stdout).toContain("activate it: mandate policy activate --tenant demo v2");

    const listed = await json(["policy", "revisions", "--tenant", "demo"]);
    expect(listed.usesDefault).toBe(false);
    expect(
      (listed.revisions as Array<{ revision: string; active?: boolean }>).map((r) => [r.revision, r.active ?? false]),
    ).toEqual([
      ["v2", false],
      ["v1", true],
    ]);

    expect(await json(["policy", "activate", "--tenant", "demo", "v2"])).toMatchObject({
      revision: "v2",
      active: true,
    });
    const human = await cli(["policy", "revisions", "--tenant", "demo"]);
    expect(human.stdout).toMatch(/^\s+REVISION/);
    expect(human.stdout).toMatch(/\*\s+v2/);
    const back = await cli(["policy", "rollback", "--tenant", "demo"]);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain("rolled back to revision v1 of tenant demo (active");
  });

  it("says what went wrong and exits 1 on a refusal", async () => {
    const none = await cli(["policy", "rollback", "--tenant", "demo"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('error: FailedPrecondition: no revision was active before "v1"');
    const unknown = await cli(["policy", "activate", "--tenant", "demo", "v9"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('NotFound: policy revision "v9" of tenant "demo" does not exist: push it first');
    const missing = await cli(["policy", "push", "--tenant", "demo", out("nope.tar.gz")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("cannot read bundle");
    writeFileSync(out("junk.tar.gz"), "junk");
    const junk = await cli(["policy", "push", "--tenant", "demo", out("junk.tar.gz")]);
    expect(junk.code).toBe(1);
    expect(junk.stderr).toContain("InvalidArgument: bundle: not an OPA bundle");
  });

  it("sets, reads and removes data documents", async () => {
    writeFileSync(out("roles.json"), JSON.stringify({ alice: ["admin"] }));
    const set = await cli(["policy", "data", "set", "--tenant", "demo", "bindings/roles", out("roles.json")]);
    expect(set.code, set.stderr).toBe(0);
    const documents = (await json(["policy", "data", "get", "--tenant", "demo"])) as unknown as Array<{
      path: string;
      value: unknown;
    }>;
    expect(documents.map((d) => [d.path, d.value])).toEqual([["bindings/roles", { alice: ["admin"] }]]);
    expect((await cli(["policy", "data", "delete", "--tenant", "demo", "bindings/roles"])).code).toBe(0);
    expect(await json(["policy", "data", "get", "--tenant", "demo"])).toEqual([]);
  });

  it("requires signatures once the tenant says so; `policy build --sign-key` signs", async () => {
    const refusedPrivate = await cli([
      "policy",
      "signing",
      "set",
      "--tenant",
      "demo",
      "--jwks",
      out("sign.pem"),
      "--require",
    ]);
    expect(refusedPrivate.code).toBe(2);
    expect(refusedPrivate.stderr).toContain("holds a private key: give its public key");
    const set = await json(["policy", "signing", "set", "--tenant", "demo", "--jwks", out("verify.pem"), "--require"]);
    expect(set).toMatchObject({ requireSignatures: true, keyIds: [expect.any(String)] });

    const unsigned = await runMandate(["policy", "build", dir, "--revision", "v3", "-o", out("v3.tar.gz")]);
    expect(unsigned.code).toBe(0);
    const refused = await cli(["policy", "push", "--tenant", "demo", out("v3.tar.gz")]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("FailedPrecondition: the bundle is unsigned and the tenant requires signatures");

    const signed = await runMandate([
      "policy",
      "build",
      dir,
      "--revision",
      "v3",
      "-o",
      out("v3s.tar.gz"),
      "--sign-key",
      out("sign.pem"),
      "--json",
    ]);
    expect(signed.code, signed.stderr).toBe(0);
    const summary = JSON.parse(signed.stdout) as { signed_by: string };
    expect(summary.signed_by).toBe((set.keyIds as string[])[0]);
    const pushed = await json(["policy", "push", "--tenant", "demo", out("v3s.tar.gz"), "--activate"]);
    expect(pushed).toMatchObject({ revision: "v3", active: true, signedBy: summary.signed_by });
  });
});
