// Crash consistency of the whole server: `mandate serve all edge` as a child process, concurrent
// client-credentials token requests, `kill -9` at a random moment, restart, again — then every token
// the server acknowledged (HTTP 200) has its `token.issued.v1` entry in the audit log, nothing is left
// in the outbox, every entry is covered by a signed checkpoint, and `mandate audit verify` accepts
// the log. SQLite always, PostgreSQL under `npm run test:postgres`; `npm run test:crash` runs more
// rounds (CRASH_ROUNDS) and reports the figures. Seeded (CRASH_SEED) so a failing run can be replayed.
import { randomBytes } from "node:crypto";
import { decodeJwt } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { auditStatus } from "../../services/audit/status.ts";
import { freePort } from "../../services/shared/net/free-port.ts";
import { Store } from "../../services/shared/store/store.ts";
import { adminClient } from "../helpers/admin.ts";
import { engines } from "../helpers/engines.ts";
import { type MandateProcess, runMandate, startMandateProcess, tempAdminFile } from "../helpers/mandate-process.ts";

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 2);
const CONCURRENCY = Number(process.env.CRASH_CONCURRENCY ?? 24);
const SEED = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);

/** A small deterministic generator (mulberry32), so a run's kill moments can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.each(engines)("kill -9 under load on $name", (engine) => {
  it(
    `loses no acknowledged token's audit entry over ${ROUNDS} crashes (seed ${SEED})`,
    async () => {
      const next = random(SEED);
      const db = await engine.open();
      cleanups.push(() => db.dispose());
      const port = await freePort();
      const env = {
        MANDATE_DATABASE_URL: db.url,
        MANDATE_SIGNER_KEK: randomBytes(32).toString("base64url"),
        MANDATE_PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
        MANDATE_ADMIN_FILE: tempAdminFile(),
        MANDATE_AUDIT_CHECKPOINT_INTERVAL: "1s",
      };
      for (const args of [["migrate"], ["admin", "bootstrap"]]) {
        const done = await runMandate(args, env);
        expect(done.code, done.stderr).toBe(0);
      }
      const start = () =>
        startMandateProcess(["serve", "all", "edge", "--http-port", String(port), "--grpc-port", "0"], env);
      let server: MandateProcess = await start();
      cleanups.push(() => server.stop());
      await runMandate(["tenants", "create", "demo", "--address", server.summary.grpc as string], env);
      const { client, clientSecret } = await adminClient(
        Issue,
        server.summary.grpc as string,
        env.MANDATE_ADMIN_FILE,
      ).createClient({
        tenant: "demo",
        metadata: { grantTypes: ["client_credentials"], resources: ["https://api.example.com/"] },
      });
      const basic = `Basic ${Buffer.from(`${client?.clientId}:${clientSecret}`).toString("base64")}`;

      const acknowledged = new Set<string>();
      let refusedOrCut = 0;
      const load = (until: Promise<unknown>) => {
        let stop = false;
        void until.then(() => (stop = true));
        const worker = async () => {
          while (!stop) {
            try {
              const response = await fetch(`http://127.0.0.1:${port}/t/demo/oauth2/token`, {
                method: "POST",
                headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic },
                body: "grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com%2F",
              });
              if (response.status === 200) {
                const { access_token } = (await response.json()) as { access_token: string };
                acknowledged.add(decodeJwt(access_token).jti as string);
              } else {
                refusedOrCut++;
                await response.arrayBuffer();
              }
            } catch {
              refusedOrCut++; // the connection died with the process: not acknowledged
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
          }
        };
        return Promise.all(Array.from({ length: CONCURRENCY }, worker));
      };

      for (let round = 0; round < ROUNDS; round++) {
        const killAfter = 400 + Math.floor(next() * 1600);
        const killed = new Promise<void>((resolve) =>
          setTimeout(() => {
            server.child.kill("SIGKILL");
            server.child.once("exit", () => resolve());
          }, killAfter),
        );
        await load(killed);
        server = await start();
      }
      // A last, clean run: the restart drains and signs what the crashes left, the stop signs the rest.
      expect(await server.stop()).toBe(0);

      const store = Store.open({ url: db.url, poolSize: 2 });
      cleanups.push(() => store.close());
      const rows = await store
        .forTenant("demo")
        .db.selectFrom("audit_log")
        .select("body")
        .where("tenant_id", "=", "demo")
        .where("type", "=", "token.issued.v1")
        .execute();
      const logged = new Set(
        rows.map((row) => (JSON.parse(row.body) as { event: { details: { jti: string } } }).event.details.jti),
      );
      const missing = [...acknowledged].filter((jti) => !logged.has(jti));
      expect(acknowledged.size).toBeGreaterThan(0);
      expect(missing).toEqual([]);
      for (const status of await auditStatus(store, Date.now())) {
        expect(status, status.tenant).toMatchObject({ unsigned: 0, outbox: { depth: 0 } });
      }
      const verified = await runMandate(["audit", "verify", "--tenant", "demo", "--json"], env);
      expect(verified.code, verified.stderr).toBe(0);
      expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, beyondCheckpoint: 0 });
      // For `npm run test:crash`'s report.
      process.stderr.write(
        `crash suite on ${engine.name}: seed ${SEED}, ${ROUNDS} kills, ${acknowledged.size} acknowledged tokens all logged ` +
          `(${logged.size} token entries), ${refusedOrCut} requests cut or refused, log verified\n`,
      );
    },
    120_000 + ROUNDS * 20_000,
  );
});
