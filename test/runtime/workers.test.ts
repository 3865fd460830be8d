// `mandate serve all edge --workers 2` (runtime/cluster.ts): two worker processes share the ports,
// each a full replica over one store and Redis. node:cluster hands new connections to the workers in
// turn, so requests on fresh connections alternate between them: a token one worker issued is
// introspected by the other, a DPoP proof one worker accepted is a replay at the other, a revocation
// through one is seen by the other. A worker that dies is replaced; SIGTERM drains and stops them all.
import { randomBytes, randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { adminClient } from "../helpers/admin.ts";
import { engines } from "../helpers/engines.ts";
import {
  freePort,
  type MandateProcess,
  runMandate,
  startMandateProcess,
  tempAdminFile,
} from "../helpers/mandate-process.ts";
import { basic, workerPids as childPids, isAlive, send } from "./worker-requests.ts";

const REDIS = "redis://127.0.0.1:6379";
let mandate: MandateProcess;
let store: { url: string; dispose(): Promise<void> } | undefined;
let database: string;
let env: Record<string, string>;
let base: string;
let client: { id: string; secret: string };

/** A POST as the client, on a connection of its own, so successive calls alternate workers. */
const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
  send(`${base}${path}`, { form, headers: { ...basic(client), ...headers } });

/** The primary's worker processes now. */
const workerPids = () => childPids(mandate.child.pid);

const token = () => post("/t/acme/oauth2/token", { grant_type: "client_credentials", scope: "orders.read" });
const introspect = (value: string) => post("/t/acme/oauth2/introspect", { token: value });

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  // SQLite (WAL, one writer at a time) in `npm test`, PostgreSQL under `npm run test:postgres`.
  store = await (engines.at(-1) as (typeof engines)[number]).open();
  database = store.url;
  env = {
    MANDATE_SIGNER_KEK: randomBytes(32).toString("base64url"),
    MANDATE_PUBLIC_BASE_URL: base,
    MANDATE_ADMIN_FILE: tempAdminFile(),
    MANDATE_REDIS_URL: REDIS,
  };
  for (const args of [["migrate"], ["admin", "bootstrap"]]) {
    const done = await runMandate([...args, "--database", database], env);
    if (done.code !== 0) throw new Error(`mandate ${args.join(" ")} failed: ${done.stderr}`);
  }
  mandate = await startMandateProcess(
    ["serve", "all", "edge", "--workers", "2", "--http-port", String(port), "--grpc-port", "0", "--database", database],
    env,
  );
  const grpc = mandate.summary.grpc as string;
  await adminClient(Tenants, grpc, mandate.adminFile).createTenant({ tenant: "acme", displayName: "Acme" });
  const created = await adminClient(Issue, grpc, mandate.adminFile).createClient({
    tenant: "acme",
    metadata: { kind: ClientKind.APPLICATION, grantTypes: ["client_credentials"], scope: "orders.read" },
  });
  client = { id: created.client?.clientId as string, secret: created.clientSecret };
}, 120_000);

afterAll(async () => {
  await mandate?.stop();
  await store?.dispose();
});

describe("serve --workers 2", () => {
  it("starts two workers and names them in its summary", () => {
    const summary = mandate.summary as unknown as { workers: number[]; primary: number };
    expect(summary.workers).toHaveLength(2);
    expect(new Set(summary.workers).size).toBe(2);
    expect(summary.workers).not.toContain(summary.primary);
  });

  it("introspects on one worker the tokens the other issued", async () => {
    for (let i = 0; i < 6; i++) {
      const issued = await token();
      expect(issued.status).toBe(200);
      const checked = await introspect(issued.body.access_token as string);
      expect(checked.body).toMatchObject({ active: true, client_id: client.id });
    }
  });

  it("takes at one worker the DPoP nonce the other handed out, and refuses there a proof the other accepted", async () => {
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    const jwk = await exportJWK(publicKey);
    const proof = (nonce?: string) =>
      new SignJWT({
        htm: "POST",
        htu: `${base}/t/acme/oauth2/token`,
        iat: Math.floor(Date.now() / 1000),
        jti: randomUUID(),
        ...(nonce ? { nonce } : {}),
      })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
        .sign(privateKey);
    const form = { grant_type: "client_credentials", scope: "orders.read" };
    // RFC 9449 §8: the server wants its nonce; any worker's is good at every worker (one key, in the store).
    const asked = await post("/t/acme/oauth2/token", form, { dpop: await proof() });
    expect(asked.body.error).toBe("use_dpop_nonce");
    const signed = await proof(asked.nonce);
    const first = await post("/t/acme/oauth2/token", form, { dpop: signed });
    expect(first.status).toBe(200);
    expect(first.body.token_type).toBe("DPoP");
    // The same proof at the next worker: a replay (§11.1), seen in the replay memory they share.
    const again = await post("/t/acme/oauth2/token", form, { dpop: signed });
    expect(again.status).toBe(400);
    expect(again.body.error).toBe("invalid_dpop_proof");
  });

  it("sees on every worker a revocation made through one", async () => {
    const issued = (await token()).body.access_token as string;
    expect((await post("/t/acme/oauth2/revoke", { token: issued })).status).toBe(200);
    await vi.waitFor(
      async () => {
        for (let i = 0; i < 4; i++) expect((await introspect(issued)).body).toEqual({ active: false });
      },
      { timeout: 5000, interval: 100 },
    );
  });

  it("keeps one audit log that verifies and one key set, whichever worker wrote or answers", async () => {
    for (let i = 0; i < 6; i++) expect((await token()).status).toBe(200);
    await vi.waitFor(
      async () => {
        const verified = await runMandate(
          ["audit", "verify", "--tenant", "acme", "--json", "--database", database],
          env,
        );
        expect(verified.code, verified.stderr).toBe(0);
        expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true });
      },
      { timeout: 30_000, interval: 1000 },
    );
    const jwks = async () => {
      const { keys } = (await send(`${base}/t/acme/.well-known/jwks.json`)).body as { keys: Array<{ kid: string }> };
      return keys.map((key) => key.kid).sort();
    };
    const seen = [await jwks(), await jwks(), await jwks(), await jwks()];
    expect(new Set(seen.map((kids) => kids.join(" "))).size).toBe(1);
    expect(new Set(seen[0]).size).toBe(seen[0]?.length);
  });

  it("replaces a worker that dies, and the others answer for what it issued", async () => {
    // Four tokens on fresh connections: the workers take turns, so the victim issued some of them.
    const issued = await Promise.all([token(), token(), token(), token()]);
    const [victim] = (mandate.summary as unknown as { workers: number[] }).workers as [number];
    process.kill(victim, "SIGKILL");
    await vi.waitFor(() => expect(mandate.stderr()).toMatch(new RegExp(`worker ${victim} exited`)), {
      timeout: 10_000,
    });
    // Every token, the victim's too, introspects at a process that did not issue it (or did, for the others').
    for (const { body } of issued) {
      expect((await introspect(body.access_token as string)).body).toMatchObject({ active: true });
    }
    await vi.waitFor(() => expect(mandate.stderr()).toMatch(/starting another/), { timeout: 10_000 });
    await vi.waitFor(
      async () => {
        for (let i = 0; i < 4; i++) expect((await token()).status).toBe(200);
      },
      { timeout: 30_000, interval: 250 },
    );
  });

  it("restarts the workers one at a time on SIGHUP without failing a request", async () => {
    const before = workerPids();
    expect(before).toHaveLength(2);
    mandate.child.kill("SIGHUP");
    let answered = 0;
    const failed: number[] = [];
    const deadline = Date.now() + 60_000;
    // Until both are replaced: requests one after another, each on a new connection.
    while (workerPids().some((pid) => before.includes(pid)) && Date.now() < deadline) {
      const { status } = await token();
      if (status === 200) answered++;
      else failed.push(status);
    }
    expect(failed).toEqual([]);
    expect(answered).toBeGreaterThan(0);
    const after = workerPids();
    expect(after).toHaveLength(2);
    expect(after.filter((pid) => before.includes(pid))).toEqual([]);
  });

  it("drains and stops every worker on SIGTERM", async () => {
    const pids = workerPids();
    expect(pids).toHaveLength(2);
    expect(await mandate.stop()).toBe(0);
    await vi.waitFor(() => expect(pids.filter(isAlive)).toEqual([]), { timeout: 10_000 });
  });
});

describe("serve --workers, refused", () => {
  it("needs redis.url beyond one worker, and a whole number from 1 to 64", async () => {
    const env = { MANDATE_REDIS_URL: "" };
    const withoutRedis = await runMandate(["serve", "all", "--workers", "2", "--database", "sqlite::memory:"], env);
    expect(withoutRedis.code).toBe(2);
    expect(withoutRedis.stderr).toMatch(/--workers beyond 1 needs redis\.url \(MANDATE_REDIS_URL\)/);
    for (const bad of ["0", "65"]) {
      const refused = await runMandate(["serve", "all", "--workers", bad], env);
      expect(refused.code, bad).toBe(2);
      expect(refused.stderr).toMatch(/--workers must be a whole number from 1 to 64/);
    }
  });
});
