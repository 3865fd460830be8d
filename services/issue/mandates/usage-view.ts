// What a mandate's limits have used in their current periods, for readers (GetMandate,
// ListMandates, the "my mandates" page): per limit, the maximum, what is used and what is left.
// Counting itself is usage.ts's; this only reads its counters.
import type { MandateRecord } from "../../shared/mandates/mandate-store.ts";
import { periodStart } from "../../shared/mandates/usage.ts";
import type { TenantStore } from "../../shared/store/store.ts";

export interface LimitUsage {
  meter: string;
  periodMs: number;
  /** Start of the current period (0 for a lifetime limit). */
  periodStart: number;
  maximum: number;
  used: number;
  remaining: number;
}

/** Ids per `IN (...)` list. */
const IN_CHUNK = 500;

/** Mandate id → usage of each of its limits as of `now`. */
export async function currentUsage(
  scoped: TenantStore,
  mandates: readonly MandateRecord[],
  now: number,
): Promise<Map<string, LimitUsage[]>> {
  const used = new Map<string, number>();
  const key = (id: string, meter: string, periodMs: number, start: number) => `${id}\n${meter}\n${periodMs}\n${start}`;
  const ids = mandates.filter((m) => m.usageLimits.length > 0).map((m) => m.id);
  for (let i = 0; i < ids.length; i += IN_CHUNK) {
    const rows = await scoped.db
      .selectFrom("mandate_usage")
      .select(["mandate_id", "meter", "period_ms", "period_start", "used"])
      .where("tenant_id", "=", scoped.tenantId)
      .where("mandate_id", "in", ids.slice(i, i + IN_CHUNK))
      .execute();
    for (const r of rows) {
      used.set(key(r.mandate_id, r.meter, Number(r.period_ms), Number(r.period_start)), Number(r.used));
    }
  }
  return new Map(
    mandates.map((m) => [
      m.id,
      m.usageLimits.map((limit) => {
        const start = periodStart(m.notBefore, limit.periodMs, Math.max(now, m.notBefore));
        const spent = used.get(key(m.id, limit.meter, limit.periodMs, start)) ?? 0;
        return {
          meter: limit.meter,
          periodMs: limit.periodMs,
          periodStart: start,
          maximum: limit.maximum,
          used: spent,
          remaining: Math.max(0, limit.maximum - spent),
        };
      }),
    ]),
  );
}
