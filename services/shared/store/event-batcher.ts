// Group commit for audit events that have no other state change to ride with (a client-credentials
// token is minted without writing anything else). Events that arrive in the same tick share one
// transaction; each caller's promise settles when its event is durable, so a token is only
// returned once its audit record is committed.
import type { OutboxEvent, Store } from "./store.ts";

interface Pending {
  tenant: string;
  event: OutboxEvent;
  at: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

const MAX_BATCH = 500;

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
      created_at: p.at,
    }));
    this.#store.db
      .insertInto("audit_outbox")
      .values(rows)
      .execute()
      .then(
        () => {
          for (const p of batch) p.resolve();
        },
        (error: unknown) => {
          for (const p of batch) p.reject(error);
        },
      );
  }
}
