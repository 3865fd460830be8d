// The one data layer: Kysely over SQLite (embedded default) or PostgreSQL (production), chosen by
// the database URL. Global tables (the tenant registry) are reached through `store.db`; everything
// that belongs to a tenant goes through `store.forTenant(id)`, whose handle refuses unscoped queries
// and is the only way to that tenant's stores and audit outbox.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import SQLite from "better-sqlite3";
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  type Transaction as KyselyTransaction,
  type LogEvent,
  PostgresDialect,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
} from "kysely";
import { type MigrationResultSet, Migrator } from "kysely/migration";
import pg from "pg";
import type { OutboxEvent } from "../audit-events.ts";
import { redactUrl } from "../config.ts";
import { histogram, tracer } from "../telemetry.ts";
import { type Engine, migrationsFor, StaticMigrationProvider } from "./migrations.ts";
import { insertOutboxEvents, OutboxBatcher, type TimedEvent } from "./outbox.ts";
import type { Database } from "./schema.ts";
import { pinToTenant, type TenantDb, type TenantTransaction } from "./tenancy.ts";

export type { Database, Engine, TenantDb, TenantTransaction, TimedEvent };
export type Transaction = KyselyTransaction<Database>;

export interface StoreOptions {
  url: string;
  poolSize?: number;
  /**
   * SQLite's durability (PRAGMA synchronous, in WAL mode): "full" (the default) syncs every commit,
   * so a committed transaction survives a power loss; "normal" syncs at checkpoints only, so the
   * last commits before a power loss (never a process crash) may be lost, the database still sound.
   */
  sqliteSynchronous?: "full" | "normal";
}

/** A store class over one tenant's rows (GrantStore...): built on a pinned handle, never the global one. */
export type TenantStoreClass<S> = new (tenantId: string, db: TenantDb) => S;

/**
 * Where events committed alone go instead of the outbox: the audit log itself, when this process
 * hosts it (audit/service.ts). Resolves once the event is durable in the log.
 */
export type LoneEventSink = (tenantId: string, event: TimedEvent) => Promise<void>;

/** A handle whose every query is pinned to one tenant, and the way in to that tenant's stores and outbox. */
export class TenantStore {
  readonly tenantId: string;
  readonly db: TenantDb;
  readonly #outbox: OutboxBatcher;
  readonly #sink: LoneEventSink | undefined;
  constructor(tenantId: string, db: TenantDb, outbox: OutboxBatcher, sink?: LoneEventSink) {
    this.tenantId = tenantId;
    this.db = db;
    this.#outbox = outbox;
    this.#sink = sink;
  }

  /** Runs `fn` in one transaction on this tenant's pinned handle. */
  transaction<T>(fn: (tx: TenantTransaction) => Promise<T>): Promise<T> {
    // A transaction of a pinned handle carries its guard: pinned to the same tenant.
    return this.db.transaction().execute((tx) => fn(tx as TenantTransaction));
  }

  /** `Store` bound to this tenant: on `tx` when given (writes commit with it), else on the pinned handle. */
  use<S>(Store: TenantStoreClass<S>, tx?: TenantTransaction): S {
    return new Store(this.tenantId, tx ?? this.db);
  }

  /** Records an audit event in the caller's transaction, so the action and its record commit together. */
  recordEvent(tx: TenantTransaction, event: OutboxEvent, now: number): Promise<void> {
    return insertOutboxEvents(tx, this.tenantId, [{ event, at: now }]);
  }

  /**
   * Commits an audit event on its own (group-committed); resolves once it is durable: appended to
   * the log when this process hosts it (no outbox row to write, read back and delete), else in the
   * outbox.
   */
  commitEvent(event: OutboxEvent, now: number): Promise<void> {
    if (this.#sink) return this.#sink(this.tenantId, { event, at: now });
    return this.#outbox.record(this.tenantId, event, now);
  }
}

export class Store {
  readonly engine: Engine;
  readonly db: Kysely<Database>;
  readonly displayUrl: string;
  readonly #outbox: OutboxBatcher;
  #loneEvents: LoneEventSink | undefined;

  private constructor(engine: Engine, db: Kysely<Database>, displayUrl: string) {
    this.engine = engine;
    this.db = db;
    this.displayUrl = displayUrl;
    this.#outbox = new OutboxBatcher(db);
  }

  static open(options: StoreOptions): Store {
    const { engine, target } = parseDatabaseUrl(options.url);
    const log = (event: LogEvent) => recordQuery(engine, event);
    if (engine === "sqlite") {
      if (target !== ":memory:") mkdirSync(dirname(resolve(target)), { recursive: true });
      const dialect = new ImmediateSqliteDialect({
        database: async () => {
          const database = new SQLite(target);
          database.pragma("journal_mode = WAL");
          database.pragma(`synchronous = ${options.sqliteSynchronous === "normal" ? "NORMAL" : "FULL"}`);
          database.pragma("foreign_keys = ON");
          database.pragma("busy_timeout = 0"); // waits for the lock asynchronously (waitingAsynchronously)
          return withStatementCache(database);
        },
      });
      return new Store(engine, new Kysely<Database>({ dialect, log }), target);
    }
    const pool = new pg.Pool({
      connectionString: target,
      max: options.poolSize ?? 10,
      // int8 columns hold millisecond timestamps and counters, all far below 2^53.
      types: {
        getTypeParser: ((oid: number, format?: "text" | "binary") =>
          oid === 20
            ? (value: string) => Number(value)
            : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // An idle pooled connection the server ends (a restart, a failover, an administrator's
    // pg_terminate_backend) is dropped by the pool and replaced on next use; without a listener,
    // node-postgres would raise the error as an uncaught exception and take the process down.
    pool.on("error", () => {});
    return new Store(engine, new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log }), redactUrl(target));
  }

  forTenant(tenantId: string): TenantStore {
    return new TenantStore(tenantId, pinToTenant(this.db, tenantId), this.#outbox, this.#loneEvents);
  }

  /** Sends events committed alone to `sink` from now on (undefined: back to the outbox). */
  routeLoneEvents(sink: LoneEventSink | undefined): void {
    this.#loneEvents = sink;
  }

  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(fn);
  }

  /** Applies pending migrations in order; reports each as it completes. */
  async migrate(onStep?: (name: string) => void): Promise<MigrationResultSet> {
    const migrator = new Migrator({
      db: this.db,
      provider: new StaticMigrationProvider(migrationsFor(this.engine)),
      migrationTableName: "mandate_migrations",
      migrationLockTableName: "mandate_migrations_lock",
    });
    const result = await migrator.migrateToLatest();
    for (const step of result.results ?? []) if (step.status === "Success") onStep?.(step.migrationName);
    if (result.error) {
      const failed = result.results?.find((r) => r.status === "Error")?.migrationName ?? "unknown";
      throw new Error(`migration ${failed} failed: ${(result.error as Error).message ?? String(result.error)}`, {
        cause: result.error,
      });
    }
    return result;
  }

  /** Names of applied migrations, oldest first. */
  async appliedMigrations(): Promise<string[]> {
    const migrator = new Migrator({
      db: this.db,
      provider: new StaticMigrationProvider(migrationsFor(this.engine)),
      migrationTableName: "mandate_migrations",
      migrationLockTableName: "mandate_migrations_lock",
    });
    return (await migrator.getMigrations()).filter((m) => m.executedAt !== undefined).map((m) => m.name);
  }

  /** Refuses to work on a schema behind this version's migrations (production never migrates implicitly). */
  async requireCurrentSchema(): Promise<void> {
    const expected = Object.keys(migrationsFor(this.engine));
    const applied = await this.appliedMigrations().catch(() => [] as string[]);
    const missing = expected.filter((name) => !applied.includes(name));
    if (missing.length > 0) {
      throw new Error(`the database schema is behind (missing ${missing.join(", ")}): run \`mandate migrate\` first`);
    }
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

/**
 * Kysely prepares every query anew; compiling SQL is a good part of a point query's cost in
 * SQLite. Prepared statements are reused by SQL text (bounded). Safe because better-sqlite3 runs
 * statements synchronously on the one connection, and a statement busy in a streaming iteration
 * is never handed out again while it iterates.
 */
/**
 * SQLite transactions begin IMMEDIATE: the write lock is taken at BEGIN. A deferred transaction that
 * reads first and writes later fails at once with SQLITE_BUSY_SNAPSHOT, without waiting, when another
 * process (a `--workers` worker) wrote meanwhile. Within one process nothing changes: Kysely runs one
 * transaction at a time on its one connection.
 */
class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;

  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}

/** How long a statement waits for another process's write lock before it fails (SQLITE_BUSY). */
const SQLITE_BUSY_WAIT_MS = 5_000;

class ImmediateSqliteDriver extends SqliteDriver {
  #connection: DatabaseConnection | undefined;

  override async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await super.acquireConnection();
    this.#connection ??= waitingAsynchronously(connection);
    return this.#connection;
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }
}

/**
 * Waits for another process's write lock on the event loop, not in SQLite: the connection's
 * busy_timeout is 0, so a locked database answers SQLITE_BUSY at once and the statement is tried
 * again after a short timer (1, 2, 4, 8 ms...). SQLite's own busy handler sleeps in the calling
 * thread, which stalls every request of the process for a millisecond or more per collision. A
 * statement that got SQLITE_BUSY did nothing (a COMMIT that did stays pending and may be retried),
 * so trying again is safe.
 */
function waitingAsynchronously(connection: DatabaseConnection): DatabaseConnection {
  return {
    async executeQuery(query) {
      const deadline = Date.now() + SQLITE_BUSY_WAIT_MS;
      for (let attempt = 0; ; attempt++) {
        try {
          return await connection.executeQuery(query);
        } catch (error) {
          if ((error as { code?: unknown }).code !== "SQLITE_BUSY" || Date.now() >= deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, Math.min(8, 2 ** attempt)));
        }
      }
    },
    streamQuery: (query, chunkSize) => connection.streamQuery(query, chunkSize),
  };
}

function withStatementCache(database: SQLite.Database): SQLite.Database {
  const statements = new Map<string, SQLite.Statement>();
  const prepare = database.prepare.bind(database);
  database.prepare = ((sql: string) => {
    const cached = statements.get(sql);
    if (cached && !cached.busy) return cached;
    const statement = prepare(sql);
    if (statements.size >= 1000) statements.clear();
    statements.set(sql, statement);
    return statement;
  }) as typeof database.prepare;
  return database;
}

export function parseDatabaseUrl(url: string): { engine: Engine; target: string } {
  if (/^postgres(ql)?:\/\//.test(url)) return { engine: "postgres", target: url };
  if (url.startsWith("sqlite:")) return { engine: "sqlite", target: url.slice("sqlite:".length) || ":memory:" };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new Error(`unsupported database URL scheme in ${redactUrl(url)}: use sqlite:PATH or postgres://...`);
  }
  return { engine: "sqlite", target: url };
}

const queryDuration = histogram("mandate.store.query.duration", {
  description: "Duration of store queries",
  unit: "ms",
});

/**
 * One span and one histogram sample per executed query, from Kysely's log hook, which runs in the
 * query's async context once the query settles (the span is back-dated to the query's start).
 */
function recordQuery(engine: Engine, event: LogEvent): void {
  const sql = event.query.sql.trimStart();
  const operation = sql.slice(0, sql.search(/\s|$/)).toLowerCase();
  const outcome = event.level === "error" ? "error" : "ok";
  queryDuration.record(event.queryDurationMillis, { engine, operation, outcome });
  const span = tracer.startSpan(`store.${operation}`, {
    kind: SpanKind.CLIENT,
    startTime: Date.now() - event.queryDurationMillis,
    attributes: { "db.system.name": engine === "postgres" ? "postgresql" : "sqlite", "db.operation.name": operation },
  });
  if (event.level === "error") {
    span.recordException(event.error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}
