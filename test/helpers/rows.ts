// Row counts of the store's tables, as tests assert them.
import type { Kysely } from "kysely";
import type { Database } from "../../services/shared/store/store.ts";

/** How many rows `table` holds. */
export async function rowCount(db: Kysely<Database>, table: keyof Database): Promise<number> {
  const row = await db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll().as("n"))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
