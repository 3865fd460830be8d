// The one path into a tenant's audit outbox: rows are written only through a tenant-pinned handle, so
// the tenancy guard checks each one like any other tenant write. Two ways in, same rows:
// - in the caller's transaction (TenantStore.recordEvent), so an action and its record commit together;
// - alone (TenantStore.commitEvent), for an action with no other state change to ride with (a
//   client-credentials token is minted without writing anything else). Events that arrive in the
//   same tick share one INSERT per tenant; each caller's promise settles when its event is durable,
//   so a token is returned only once its audit record is committed. When the process hosts the
//   audit log, such events skip the outbox and are appended to the log directly (store.ts).
import type { Kysely } from "kysely";
import type { OutboxEvent } from "../audit-events.ts";
import { GroupCommit } from "./group-commit.ts";
import type { AuditOutboxTable, Database } from "./schema.ts";
import { pinToTenant, type TenantDb } from "./tenancy.ts";

export interface TimedEvent {
  event: OutboxEvent;
  at: number;
}

/** Inserts events into `tenantId`'s outbox on its pinned handle (or a transaction of it). */
export async function insertOutboxEvents(db: TenantDb, tenantId: string, events: readonly TimedEvent[]) {
  await db
    .insertInto("audit_outbox")
    .values(events.map(({ event, at }) => outboxRow(tenantId, event, at)))
    .execute();
}

export function outboxRow(tenantId: string, event: OutboxEvent, at: number): Omit<AuditOutboxTable, "id"> {
  return {
    tenant_id: tenantId,
    event_id: event.eventId,
    type: event.type,
    payload: JSON.stringify(event.payload),
    // The `parties` column carries the envelope fields too: one JSON object of AuditEvent fields.
    parties: event.parties || event.envelope ? JSON.stringify({ ...event.parties, ...event.envelope }) : null,
    created_at: at,
  };
}

/** Rows per INSERT: 6 parameters each, well inside both engines' bound-parameter limits. */
const MAX_BATCH = 500;

/** Group commit of events recorded alone, per tenant. */
export class OutboxBatcher {
  readonly #batches: GroupCommit<TimedEvent>;

  constructor(db: Kysely<Database>) {
    this.#batches = new GroupCommit(MAX_BATCH, async (tenantId, batch) => {
      await insertOutboxEvents(pinToTenant(db, tenantId), tenantId, batch);
      for (const waiting of batch) waiting.resolve();
    });
  }

  record(tenantId: string, event: OutboxEvent, at: number): Promise<void> {
    return this.#batches.add(tenantId, { event, at });
  }
}
