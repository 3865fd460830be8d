// Reading a delivered audit entry from the store a running Mandate writes: the details of the entry
// of `type` whose `jti` is the one given, polled until the outbox has delivered it.
import { Store } from "../../services/shared/store/store.ts";

export async function auditDetails(
  database: string,
  type: string,
  jti: string,
  tenant = "demo",
): Promise<Record<string, unknown>> {
  const store = Store.open({ url: database, poolSize: 1 });
  try {
    for (let attempt = 0; attempt < 100; attempt++) {
      const rows = await store
        .forTenant(tenant)
        .db.selectFrom("audit_log")
        .select("body")
        .where("tenant_id", "=", tenant)
        .where("type", "=", type)
        .execute();
      const details = rows
        .map((row) => (JSON.parse(row.body) as { event: { details: Record<string, unknown> } }).event.details)
        .find((d) => d.jti === jti);
      if (details) return details;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`no ${type} entry for ${jti}`);
  } finally {
    await store.close();
  }
}
