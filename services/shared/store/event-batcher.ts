// Group commit for audit events that have no other state change to ride with (a client-credentials
// token is minted without writing anything else). Events that arrive in the same tick share one
// transaction; each caller's promise settles when its event is durable, so a token is only
// returned once its audit record is committed.
import { CompiledQuery } from "kysely";
import type { Engine } from "./migrations.ts";
import type { OutboxEvent, Store } from "./store.ts";

interface Pending {
  tenant: string;
  event: OutboxEvent;
  at: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

const MAX_BATCH = 500;
const insertSqlBySize = new Map<string, string>();

/** INSERT for `n` rows with the engine's positional parameters (`?` in SQLite, `$n` in PostgreSQL). */
function insertSql(engine: Engine, n: number): string {
  const key = `${engine}:${n}`;
  let text = insertSqlBySize.get(key);
  if (!text) {
    const values = Array.from({ length: n }, (_, i) => {
      const p = (k: number) => (engine === "postgres" ? `$${i * 6 + k}` : "?");
      return `(${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)})`;
    });
    text = `insert into audit_outbox (tenant_id, event_id, type, payload, parties, created_at) values ${values.join(", ")}`;
    insertSqlBySize.set(key, text);
  }
  return text;
}

export class EventBatcher {
  readonly #store: Store;
  #queue: Pending[] = [];
  #scheduled = false;

  constructor(store: Store) {
    this.#store = store;
  }

  record(tenant: string, event: OutboxEvent, at: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ tenant, event, at, resolve, reject });
      if (this.#queue.length >= MAX_BATCH) this.#flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
    const rows = batch.map((p) => ({
      tenant_id: p.tenant,
      event_id: p.event.eventId,
      type: p.event.type,
      payload: JSON.stringify(p.event.payload),
      parties: p.event.parties ? JSON.stringify(p.event.parties) : null,
      created_at: p.at,
    }));
    // A precompiled statement per batch size: building the query through Kysely costs more than running it.
    const params = rows.flatMap((r) => [r.tenant_id, r.event_id, r.type, r.payload, r.parties, r.created_at]);
    this.#store.db.executeQuery(CompiledQuery.raw(insertSql(this.#store.engine, rows.length), params)).then(
      () => {
        for (const p of batch) p.resolve();
      },
      (error: unknown) => {
        for (const p of batch) p.reject(error);
      },
    );
  }
}
