// PolicyRegistry and PolicyStore on every engine (SQLite; PostgreSQL with MANDATE_TEST_POSTGRES=1):
// push, list, activate, rollback, data, signing; each change committed with its audit event and a
// new policy_state version; refusals change nothing; tenants never see each other's revisions.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolicyStore } from "../../services/authorize/policies/policy-store.ts";
import { loadDefaultPolicy, PolicyRegistry, resolveDefaultPolicy } from "../../services/authorize/policies/registry.ts";
import { loadSigningKey, signBundleFiles } from "../../services/authorize/policies/signatures.ts";
import { readBundleFiles } from "../../services/authorize/rego/bundle.ts";
import type { Actor } from "../../services/shared/audit-events.ts";
import { loadConfig } from "../../services/shared/config.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";
import { bundleWithoutDecision, testBundle } from "../helpers/policy-bundles.ts";

const ADMIN: Actor = {
  by: { tenant: "platform", client_id: "admin-cli" },
  parties: { client: { id: "admin-cli", kind: "PARTY_KIND_SERVICE" } },
};

async function codeOf(promise: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ConnectError) return { code: error.code, message: error.rawMessage };
    throw error;
  }
  throw new Error("expected an error");
}

describe.each(engines)("policy registry: $name", (engine) => {
  let store: Store;
  let registry: PolicyRegistry;
  let dispose: () => Promise<void>;
  const changes: string[] = [];

  const events = async (tenant: string) =>
    (
      await store.forTenant(tenant).db.selectFrom("audit_outbox").selectAll().where("tenant_id", "=", tenant).execute()
    ).map((row) => ({ type: row.type, payload: JSON.parse(row.payload) as Record<string, unknown> }));
  const version = async (tenant: string) => (await store.forTenant(tenant).use(PolicyStore).state()).version;

  beforeAll(async () => {
    const opened = await engine.open();
    dispose = opened.dispose;
    store = Store.open({ url: opened.url, poolSize: 4 });
    await store.migrate();
    const now = Date.now();
    await store.db
      .insertInto("tenants")
      .values(["acme", "globex", "data", "signed", "busy"].map((id) => ({ id, display_name: id, created_at: now })))
      .execute();
    const base = loadConfig({ env: {} });
    const config = { ...base, database: { ...base.database, url: opened.url } };
    registry = new PolicyRegistry({ store, config, logger: createLogger("silent") });
    await registry.start();
    registry.onChange((tenant) => changes.push(tenant));
  });

  afterAll(async () => {
    await registry?.stop();
    await store?.close();
    await dispose?.();
  });

  it("decides with the default policy until the tenant activates a revision of its own", async () => {
    const policy = await registry.active("acme");
    expect(policy.revision).toMatch(/^default-[0-9a-f]{12}$/);
    expect(policy.version).toBe(0);
    expect(policy.data).toMatchObject({ limits: expect.any(Object) });
    expect(await registry.list("acme")).toEqual({ revisions: [], usesDefault: true });
  });

  it("pushes, activates and rolls back, each change with its audit event and a new version", async () => {
    const pushed = await registry.push("acme", await testBundle("r1"), {}, ADMIN);
    expect(pushed).toMatchObject({ revision: "r1", active: false, signedBy: null, activatedAt: null });
    expect(pushed.entrypoints).toContain("mandate/authz/decision");
    expect(await version("acme")).toBe(1);
    expect((await registry.active("acme")).revision).toMatch(/^default-/);

    const second = await registry.push("acme", await testBundle("r2"), { activate: true }, ADMIN);
    expect(second).toMatchObject({ revision: "r2", active: true, activatedAt: expect.any(Number) });
    expect(await registry.active("acme")).toMatchObject({
      revision: "r2",
      version: 2,
      data: { meta: { revision: "r2" } },
    });

    await registry.activate("acme", "r1", ADMIN);
    expect(await registry.active("acme")).toMatchObject({ revision: "r1", version: 3 });
    const listed = await registry.list("acme");
    expect(listed.usesDefault).toBe(false);
    expect(listed.revisions.map((r) => [r.revision, r.active])).toEqual([
      ["r2", false],
      ["r1", true],
    ]);

    const back = await registry.rollback("acme", ADMIN);
    expect(back).toMatchObject({ revision: "r2", active: true });
    expect(await registry.active("acme")).toMatchObject({ revision: "r2", version: 4 });

    expect((await events("acme")).map((e) => e.type)).toEqual([
      "policy.pushed.v1",
      "policy.pushed.v1",
      "policy.activated.v1",
      "policy.activated.v1",
      "policy.rolled_back.v1",
    ]);
    const [, , , activated, rolledBack] = await events("acme");
    expect(activated?.payload).toMatchObject({ revision: "r1", previous: "r2", by: ADMIN.by });
    expect(rolledBack?.payload).toMatchObject({ revision: "r2", from: "r1", by: ADMIN.by });
    expect(changes.filter((t) => t === "acme").length).toBeGreaterThanOrEqual(4);
  });

  it("refuses a rollback with no earlier revision (FAILED_PRECONDITION), changing nothing", async () => {
    const before = await version("acme");
    const refused = await codeOf(registry.rollback("acme", ADMIN));
    expect(refused).toEqual({
      code: Code.FailedPrecondition,
      message: expect.stringContaining('no revision was active before "r2"'),
    });
    expect(await codeOf(registry.rollback("globex", ADMIN))).toMatchObject({ code: Code.FailedPrecondition });
    expect(await version("acme")).toBe(before);
  });

  it("treats the same bytes again as a no-op and other bytes under a stored revision as ALREADY_EXISTS", async () => {
    const before = await version("acme");
    const eventsBefore = (await events("acme")).length;
    const again = await registry.push("acme", await testBundle("r1"), {}, ADMIN);
    expect(again.revision).toBe("r1");
    expect(await version("acme")).toBe(before);
    const other = await codeOf(registry.push("acme", await testBundle("r1", { extra: true }), {}, ADMIN));
    expect(other.code).toBe(Code.AlreadyExists);
    expect(other.message).toContain('policy revision "r1" already exists with other content');
    expect(await version("acme")).toBe(before);
    expect((await events("acme")).length).toBe(eventsBefore);
  });

  it("never stores a bundle that does not load, saying why", async () => {
    const garbage = await codeOf(registry.push("acme", Buffer.from("not a bundle"), {}, ADMIN));
    expect(garbage.code).toBe(Code.InvalidArgument);
    expect(garbage.message).toContain("bundle: not an OPA bundle (a gzipped tar)");
    const noDecision = await codeOf(registry.push("acme", await bundleWithoutDecision("nd"), {}, ADMIN));
    expect(noDecision.code).toBe(Code.InvalidArgument);
    expect(noDecision.message).toContain("the module has no entrypoint mandate/authz/decision (it has: other/allow)");
    const reserved = await codeOf(registry.push("acme", await testBundle("default-x"), {}, ADMIN));
    expect(reserved.message).toContain('revisions starting with "default-" name the default policy');
    expect((await registry.list("acme")).revisions.map((r) => r.revision)).toEqual(["r2", "r1"]);
  });

  it("keeps tenants apart: another tenant cannot see or activate a revision", async () => {
    expect(await registry.list("globex")).toEqual({ revisions: [], usesDefault: true });
    const refused = await codeOf(registry.activate("globex", "r1", ADMIN));
    expect(refused).toEqual({
      code: Code.NotFound,
      message: expect.stringContaining('policy revision "r1" of tenant "globex" does not exist'),
    });
    expect((await registry.active("globex")).revision).toMatch(/^default-/);
    expect(await events("globex")).toEqual([]);
    await registry.push("globex", await testBundle("r1", { other: "globex" }), { activate: true }, ADMIN);
    expect((await registry.active("globex")).data).toMatchObject({ other: "globex" });
    expect((await registry.active("acme")).data).not.toHaveProperty("other");
  });

  it("merges data documents into the bundle's data (or the default policy's), removes them, bounds their size", async () => {
    await registry.setData("data", "flags", { allow: true }, ADMIN);
    await registry.setData("data", "bindings/roles", { alice: ["admin"] }, ADMIN);
    const onDefault = await registry.active("data");
    expect(onDefault.revision).toMatch(/^default-/);
    expect(onDefault.data).toMatchObject({ flags: { allow: true }, bindings: { roles: { alice: ["admin"] } } });

    await registry.push(
      "data",
      await testBundle("d1", { bindings: { roles: { bob: ["viewer"] }, teams: {} } }),
      { activate: true },
      ADMIN,
    );
    expect((await registry.active("data")).data).toMatchObject({
      meta: { revision: "d1" },
      flags: { allow: true },
      bindings: { roles: { bob: ["viewer"], alice: ["admin"] }, teams: {} },
    });
    expect((await registry.getData("data")).map((d) => [d.path, d.value])).toEqual([
      ["bindings/roles", { alice: ["admin"] }],
      ["flags", { allow: true }],
    ]);

    const before = await version("data");
    await registry.setData("data", "flags", { allow: true }, ADMIN); // unchanged: no new version
    expect(await version("data")).toBe(before);
    await registry.setData("data", "flags", undefined, ADMIN);
    expect(await version("data")).toBe(before + 1);
    expect((await registry.active("data")).data).not.toHaveProperty("flags");

    const big = await codeOf(registry.setData("data", "big", "x".repeat(1024 * 1024), ADMIN));
    expect(big.code).toBe(Code.InvalidArgument);
    expect(big.message).toContain("more than 1048576");
    expect(await codeOf(registry.setData("data", "../etc", 1, ADMIN))).toMatchObject({ code: Code.InvalidArgument });
    const types = (await events("data")).map((e) => e.type);
    expect(types.filter((t) => t === "policy.data_set.v1")).toHaveLength(3);
    const removal = (await events("data")).find((e) => e.payload.removed === true);
    expect(removal?.payload).toMatchObject({ path: "flags", by: ADMIN.by });
  });

  it("applies concurrent changes of one tenant one after the other", async () => {
    await registry.push("busy", await testBundle("b1"), { activate: true }, ADMIN);
    await registry.push("busy", await testBundle("b2"), {}, ADMIN);
    const start = await version("busy");
    const changes = Array.from({ length: 8 }, (_, i) =>
      i % 2 === 0
        ? registry.activate("busy", i % 4 === 0 ? "b2" : "b1", ADMIN)
        : registry.setData("busy", `n${i}`, i, ADMIN),
    );
    await Promise.all(changes);
    const history = await store
      .forTenant("busy")
      .db.selectFrom("policy_activations")
      .select(["seq", "revision"])
      .where("tenant_id", "=", "busy")
      .orderBy("seq")
      .execute();
    expect(history.map((h) => Number(h.seq))).toEqual(history.map((_, i) => i + 1));
    const state = await store.forTenant("busy").use(PolicyStore).state();
    expect(state.activeRevision).toBe(history.at(-1)?.revision);
    const recorded = (await events("busy")).length;
    expect(state.version - start).toBe(recorded - 3); // pushed b1 + activated b1, pushed b2: three events, two versions
    expect((await registry.active("busy")).version).toBe(state.version);
  });

  it("serves a tenant's own revision even when the default policy cannot load", async () => {
    const base = loadConfig({ env: {} });
    const broken = new PolicyRegistry({
      store,
      config: { ...base, authorize: { ...base.authorize, defaultPolicy: "/nonexistent/policy" } },
      logger: createLogger("silent"),
    });
    await store.db
      .insertInto("tenants")
      .values({ id: "fresh", display_name: "fresh", created_at: Date.now() })
      .execute();
    await broken.start();
    try {
      await expect(broken.active("fresh")).rejects.toThrow(/authorize.defaultPolicy/);
      await registry.push("fresh", await testBundle("own-1"), { activate: true }, ADMIN);
      expect((await broken.active("fresh")).revision).toBe("own-1");
    } finally {
      await broken.stop();
    }
  });

  it("requires signatures when the tenant says so: unsigned refused, signed accepted, private keys refused", async () => {
    const key = await loadSigningKey(
      generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      { keyId: "release" },
    );
    await registry.push("signed", await testBundle("plain"), { activate: true }, ADMIN);

    const privateKey = await codeOf(
      registry.setSigning(
        "signed",
        { jwks: JSON.stringify({ keys: [{ ...key.publicJwk, d: "AAAA" }] }), requireSignatures: true },
        ADMIN,
      ),
    );
    expect(privateKey).toEqual({
      code: Code.InvalidArgument,
      message: expect.stringContaining("jwks: keys[0]: a private key"),
    });
    const noKeys = await codeOf(registry.setSigning("signed", { jwks: "", requireSignatures: true }, ADMIN));
    expect(noKeys.message).toContain("requiring signatures needs at least one key");

    const jwks = JSON.stringify({ keys: [key.publicJwk] });
    await registry.setSigning("signed", { jwks, requireSignatures: true }, ADMIN);
    const unsigned = await codeOf(registry.push("signed", await testBundle("u1"), {}, ADMIN));
    expect(unsigned.code).toBe(Code.FailedPrecondition);
    expect(unsigned.message).toContain("the bundle is unsigned and the tenant requires signatures");

    const signedBytes = await signBundleFiles(await readBundleFiles(await testBundle("s1")), key);
    const signed = await registry.push("signed", signedBytes, { activate: true }, ADMIN);
    expect(signed).toMatchObject({ revision: "s1", signedBy: "release", active: true });

    const tampered = new Map(await readBundleFiles(signedBytes)).set("/extra.rego", Buffer.from("package x\n"));
    const { packBundleFiles } = await import("../../services/authorize/policies/signatures.ts");
    const refused = await codeOf(registry.push("signed", await packBundleFiles(tampered), {}, ADMIN));
    expect(refused).toEqual({
      code: Code.InvalidArgument,
      message: "bundle: extra.rego: not covered by the signature",
    });

    // The unsigned revision stored before signatures were required cannot come back.
    const back = await codeOf(registry.rollback("signed", ADMIN));
    expect(back.code).toBe(Code.FailedPrecondition);
    expect(back.message).toContain('revision "plain" cannot be activated: the tenant requires signatures');
    expect((await registry.active("signed")).revision).toBe("s1");
    const signing = (await events("signed")).find((e) => e.type === "policy.signing_set.v1");
    expect(signing?.payload).toMatchObject({ key_ids: ["release"], require_signatures: true });
  });
});

describe("the default policy", () => {
  it("is a Rego directory compiled once, or a bundle file; revision default-<hash of the bundle>", async () => {
    const dir = resolveDefaultPolicy("policies/default");
    expect(dir).toMatch(/policies\/default$/);
    const compiled = await loadDefaultPolicy("policies/default");
    expect(await loadDefaultPolicy(dir)).toBe(compiled);
    expect(compiled.revision).toMatch(/^default-[0-9a-f]{12}$/);
    const file = join(mkdtempSync(join(tmpdir(), "mandate-default-")), "bundle.tar.gz");
    writeFileSync(file, await testBundle("shipped"));
    const fromFile = await loadDefaultPolicy(file);
    expect(fromFile.revision).toMatch(/^default-[0-9a-f]{12}$/);
    expect(fromFile.data).toEqual({ meta: { revision: "shipped" } });
  });

  it("says where it looked when the configured path is nowhere", () => {
    expect(() => resolveDefaultPolicy("policies/nowhere")).toThrow(
      /authorize.defaultPolicy: policies\/nowhere not found \(looked in .+ and .+\)/,
    );
  });
});
