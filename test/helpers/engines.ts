// Database engines a suite runs against: SQLite always; PostgreSQL when MANDATE_TEST_POSTGRES=1 (CI,
// and `npm run test:postgres`), in a throwaway database created for the run and dropped after.
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

const POSTGRES_ADMIN_URL = process.env.MANDATE_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface Engine {
  name: string;
  open(): Promise<{ url: string; dispose(): Promise<void> }>;
}

export const engines: Engine[] = [
  {
    name: "sqlite",
    async open() {
      return {
        url: `sqlite:${join(mkdtempSync(join(tmpdir(), "mandate-store-")), "store.db")}`,
        dispose: async () => {},
      };
    },
  },
];
/** A fresh database on the PostgreSQL at `adminUrl` (its `postgres` database), dropped by dispose(). */
export async function freshPostgresDatabase(
  adminUrl = POSTGRES_ADMIN_URL,
  prefix = "mandate_test",
): Promise<{ url: string; dispose(): Promise<void> }> {
  const name = `${prefix}_${randomUUID().replaceAll("-", "")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async dispose() {
      const cleanup = new pg.Client({ connectionString: adminUrl });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
    },
  };
}

/** A fresh database on the local PostgreSQL (the benchmarks use it directly). */
export const postgresEngine: Engine = { name: "postgres", open: () => freshPostgresDatabase() };
if (process.env.MANDATE_TEST_POSTGRES === "1") engines.push(postgresEngine);
