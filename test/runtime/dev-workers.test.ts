// `mandate dev --workers 2` without Redis (runtime/worker-state.ts): two worker processes share the
// ports over one store (SQLite in `npm test`, PostgreSQL under `npm run test:postgres`), and what separate replicas share through Redis they share through the
// primary process — the DPoP replay memory, the rate limits, and the news of a revocation. Requests on
// fresh connections alternate between the workers (node:cluster hands connections out in turn); a
// keep-alive connection stays on one worker. The revocation poll is set to ten minutes, so on SQLite
// (no LISTEN/NOTIFY) only the primary's relay can tell the other worker of a revocation in time.
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Store } from "../../services/shared/store/store.ts";
import { adminClient } from "../helpers/admin.ts";
import { engines } from "../helpers/engines.ts";
import {
  freePort,
  type MandateProcess,
  runMandate,
  startMandateProcess,
  tempDatabaseUrl,
} from "../helpers/mandate-process.ts";
import { basic, isAlive, send, workerPids } from "./worker-requests.ts";

let mandate: MandateProcess;
let store: { url: string; dispose(): Promise<void> } | undefined;
let base: string;
let client: { id: string; secret: string };
/** A client whose quota (client metadata rate_limit) is four token requests. */
let quota: { id: string; secret: string };
/** A client whose secret is guessed at: three failed authentications use up its bucket. */
let guessed: { id: string; secret: string };

const TOKEN = "/t/demo/oauth2/token";
const form = { grant_type: "client_credentials", scope: "orders.read" };
const token = (as = client, options: { headers?: Record<string, string>; agent?: Agent } = {}) =>
  send(`${base}${TOKEN}`, { form, headers: { ...basic(as), ...options.headers }, agent: options.agent });
const introspect = (value: string) =>
  send(`${base}/t/demo/oauth2/introspect`, { form: { token: value }, headers: basic(client) });

/** A DPoP proof for the token endpoint (RFC 9449 §4.2), with the server's nonce once it gave one. */
async function dpopProofs() {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = await exportJWK(publicKey);
  return (nonce?: string) =>
    new SignJWT({
      htm: "POST",
      htu: `${base}${TOKEN}`,
      iat: Math.floor(Date.now() / 1000),
      jti: randomUUID(),
      ...(nonce ? { nonce } : {}),
    })
      .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
      .sign(privateKey);
}

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  store = await (engines.at(-1) as (typeof engines)[number]).open();
  mandate = await startMandateProcess(
    ["dev", "--workers", "2", "--http-port", String(port), "--grpc-port", "0", "--database", store.url],
    {
      MANDATE_PUBLIC_BASE_URL: base,
      MANDATE_REDIS_URL: "",
      // The memory is trusted for the whole test (a poll at start) and never polled again meanwhile.
      MANDATE_REVOCATION_POLL_INTERVAL: "10m",
      MANDATE_REVOCATION_STALE_AFTER: "1h",
      // Three failed client authentications per client id, refilled one per 1000 s.
      MANDATE_RATE_LIMITS_FAILED_CLIENT_AUTH_PER_CLIENT: "0.001:3",
    },
    // A directory of its own, so the development keys are generated (once) in this run.
    mkdtempSync(join(tmpdir(), "mandate-dev-workers-")),
  );
  const issue = adminClient(Issue, mandate.summary.grpc as string, mandate.adminFile);
  const create = async (rateLimit?: { requestsPerSecond: number; burst: number }) => {
    const created = await issue.createClient({
      tenant: "demo",
      metadata: { kind: ClientKind.APPLICATION, grantTypes: ["client_credentials"], scope: "orders.read", rateLimit },
    });
    return { id: created.client?.clientId as string, secret: created.clientSecret };
  };
  client = await create();
  // Refills of 0.001/s never add a token during the test.
  quota = await create({ requestsPerSecond: 0.001, burst: 4 });
  guessed = await create();
}, 120_000);

afterAll(async () => {
  // Never leave the primary stopped (SIGSTOP below) when a test failed midway.
  if (mandate?.child.exitCode === null) mandate.child.kill("SIGCONT");
  await mandate?.stop();
  await store?.dispose();
});

describe("dev --workers 2 without Redis", () => {
  it("prepares once and names both workers and the primary in one summary", () => {
    const summary = mandate.summary as unknown as Record<string, unknown> & { workers: number[]; primary: number };
    expect(summary.workers).toHaveLength(2);
    expect(new Set(summary.workers).size).toBe(2);
    expect(summary.workers).not.toContain(summary.primary);
    expect(summary).toMatchObject({ mode: "dev", tenant: "demo", admin_credentials: mandate.adminFile });
    expect(workerPids(mandate.child.pid).sort()).toEqual([...summary.workers].sort());
    // The first worker generated the development keys alone; the second started once they were there.
    expect(mandate.stderr().match(/generated a development federation secret key/g)).toHaveLength(1);
    expect(mandate.stderr().match(/generated a development key-encryption key/g)).toHaveLength(1);
  });

  it("introspects on one worker the tokens the other issued", async () => {
    for (let i = 0; i < 4; i++) {
      const issued = await token();
      expect(issued.status).toBe(200);
      expect((await introspect(issued.body.access_token as string)).body).toMatchObject({
        active: true,
        client_id: client.id,
      });
    }
  });

  it("refuses at one worker a DPoP proof the other accepted (the primary's replay memory)", async () => {
    const proof = await dpopProofs();
    const asked = await token(client, { headers: { dpop: await proof() } });
    expect(asked.body.error).toBe("use_dpop_nonce");
    const signed = await proof(asked.nonce);
    const first = await token(client, { headers: { dpop: signed } });
    expect(first.status).toBe(200);
    expect(first.body.token_type).toBe("DPoP");
    const again = await token(client, { headers: { dpop: signed } });
    expect(again.status).toBe(400);
    expect(again.body.error).toBe("invalid_dpop_proof");
  });

  it("spends one quota across both workers (the primary's buckets)", async () => {
    // Four requests, two at each worker: the quota is spent. Buckets of their own would allow two more each.
    for (let i = 0; i < 4; i++) expect((await token(quota)).status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const refused = await token(quota);
      expect(refused.status).toBe(429);
      expect(refused.body.error).toBe("slow_down");
    }
  });

  it("refuses at both workers a client whose failed authentications through both used up its bucket", async () => {
    // Fresh connections alternate between the workers: the failures are counted at the primary, and
    // each worker, told the bucket was drawn from, asks the primary before the next authentication.
    for (let i = 0; i < 3; i++) {
      const failed = await token({ id: guessed.id, secret: `wrong-${i}` });
      expect(failed.status).toBe(401);
      expect(failed.body.error).toBe("invalid_client");
    }
    for (let i = 0; i < 2; i++) {
      const refused = await token(guessed);
      expect(refused.status).toBe(429);
      expect(refused.body.error).toBe("slow_down");
    }
    // Another client's bucket is full: its check is answered by the worker alone, and allowed.
    expect((await token()).status).toBe(200);
  });

  it("refuses at the other worker at once a token revoked through one (the primary's relay)", async () => {
    const issued = (await token()).body.access_token as string;
    // Both workers have the tenant's revocations in memory and answer active.
    for (let i = 0; i < 2; i++) expect((await introspect(issued)).body).toMatchObject({ active: true });
    const revoked = await send(`${base}/t/demo/oauth2/revoke`, { form: { token: issued }, headers: basic(client) });
    expect(revoked.status).toBe(200);
    // No waiting: the revocation's answer came once every worker had the news.
    for (let i = 0; i < 4; i++) expect((await introspect(issued)).body).toEqual({ active: false });
  });

  it("fails closed on replay checks while the primary cannot answer; rate limits fall back to the worker", async () => {
    const pid = mandate.child.pid as number;
    const proof = await dpopProofs();
    const nonce = (await token(client, { headers: { dpop: await proof() } })).nonce;
    // One connection, so one worker, opened while the primary still hands connections out.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await send(`${base}/healthz`, { agent })).status).toBe(200);
      process.kill(pid, "SIGSTOP");
      try {
        const refused = await token(client, { headers: { dpop: await proof(nonce) }, agent });
        expect(refused.status).toBe(503);
        expect(refused.body.error).toBe("temporarily_unavailable");
        // Without DPoP nothing needs the replay memory; the client's quota is taken from the worker's own buckets.
        expect((await token(client, { agent })).status).toBe(200);
      } finally {
        process.kill(pid, "SIGCONT");
      }
      await vi.waitFor(
        async () => expect((await token(client, { headers: { dpop: await proof(nonce) }, agent })).status).toBe(200),
        { timeout: 10_000, interval: 200 },
      );
      expect(mandate.stderr()).toMatch(/rate limits: the primary process is unavailable; using this process's buckets/);
    } finally {
      agent.destroy();
    }
  });

  it("replaces a worker that dies and keeps the replay memory", async () => {
    const proof = await dpopProofs();
    const nonce = (await token(client, { headers: { dpop: await proof() } })).nonce;
    const signed = await proof(nonce);
    expect((await token(client, { headers: { dpop: signed } })).status).toBe(200);
    const [victim] = workerPids(mandate.child.pid);
    process.kill(victim as number, "SIGKILL");
    await vi.waitFor(() => expect(mandate.stderr()).toMatch(/starting another/), { timeout: 10_000 });
    await vi.waitFor(() => expect(workerPids(mandate.child.pid)).toHaveLength(2), { timeout: 30_000 });
    await vi.waitFor(
      async () => {
        for (let i = 0; i < 2; i++) expect((await token()).status).toBe(200);
      },
      { timeout: 30_000, interval: 250 },
    );
    // The replay memory lives in the primary: the proof is still a replay, whichever worker sees it
    // (at once on four connections, so both workers, the replacement too, take some).
    const replays = await Promise.all([1, 2, 3, 4].map(() => token(client, { headers: { dpop: signed } })));
    for (const replay of replays) expect(replay.body.error).toBe("invalid_dpop_proof");
  });

  it("elects one worker to rotate keys and one to write the audit log; another takes over from a dead writer", async () => {
    const db = Store.open({ url: (store as { url: string }).url });
    try {
      /** The pid of the worker holding each singleton's lease (holders are host/pid/id). */
      const holders = async () => {
        const rows = await db.db.selectFrom("leases").select(["name", "holder"]).execute();
        return Object.fromEntries(rows.map((row) => [row.name, Number(row.holder.split("/")[1])]));
      };
      const outbox = async () =>
        Number(
          (
            await db.db
              .selectFrom("audit_outbox")
              .select((eb) => eb.fn.countAll().as("n"))
              .executeTakeFirstOrThrow()
          ).n,
        );
      // One worker holds each lease. Key rotation's passes on the rotation schedule (minutes), so
      // it may still name the worker the previous test killed; the audit writer's lapses in 6 s.
      const everyWorker = [
        ...((mandate.summary as { workers?: number[] }).workers ?? []),
        ...workerPids(mandate.child.pid),
      ];
      expect(everyWorker).toContain((await holders())["signer-rotation"]);
      let elected: Record<string, number> = {};
      await vi.waitFor(
        async () => {
          elected = await holders();
          expect(workerPids(mandate.child.pid)).toContain(elected["audit-writer"]);
        },
        { timeout: 20_000, interval: 250 },
      );
      // Tokens from both workers: the writer logs its own at once, the other's through the outbox it drains.
      for (let i = 0; i < 6; i++) expect((await token()).status).toBe(200);
      await vi.waitFor(async () => expect(await outbox()).toBe(0), { timeout: 10_000, interval: 100 });

      const writer = elected["audit-writer"] as number;
      process.kill(writer, "SIGKILL");
      await vi.waitFor(() => expect(workerPids(mandate.child.pid)).toHaveLength(2), { timeout: 30_000 });
      // The dead writer's lease lapses (6 s) and a live worker takes it, then drains what waited.
      await vi.waitFor(
        async () => {
          const now = (await holders())["audit-writer"];
          expect(now).not.toBe(writer);
          expect(workerPids(mandate.child.pid)).toContain(now);
        },
        { timeout: 20_000, interval: 250 },
      );
      // Until the replacement serves, the survivor alone takes connections (none, if the writer was it).
      await vi.waitFor(async () => expect((await token()).status).toBe(200), { timeout: 30_000, interval: 250 });
      for (let i = 0; i < 6; i++) expect((await token()).status).toBe(200);
      await vi.waitFor(async () => expect(await outbox()).toBe(0), { timeout: 10_000, interval: 100 });
    } finally {
      await db.close();
    }
  }, 90_000);

  it("drains and stops every worker on SIGTERM", async () => {
    const pids = workerPids(mandate.child.pid);
    expect(pids).toHaveLength(2);
    expect(await mandate.stop()).toBe(0);
    await vi.waitFor(() => expect(pids.filter(isAlive)).toEqual([]), { timeout: 10_000 });
  });
});

describe("dev --workers, refused", () => {
  it("takes a whole number from 1 to 64, from the flag or MANDATE_WORKERS", async () => {
    for (const [args, env] of [
      [["--workers", "0"], {}],
      [["--workers", "65"], {}],
      [["--workers", "two"], {}],
      [[], { MANDATE_WORKERS: "0" }],
    ] as const) {
      const refused = await runMandate(["dev", ...args, "--database", tempDatabaseUrl()], env);
      expect(refused.code, args.join(" ")).toBe(2);
      expect(refused.stderr).toMatch(/--workers must be a whole number from 1 to 64/);
    }
  });

  it("needs a database the workers share beyond one worker", async () => {
    const refused = await runMandate(["dev", "--workers", "2", "--database", "sqlite::memory:"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--workers beyond 1 needs a database the workers share/);
  });
});
