// Backend reconciliation. Keys are made in the backend before their rows are written (rotation.ts),
// so a crash in between leaves backend objects no row refers to. Every object is labelled with this
// installation's id, so only this installation's objects are ever considered.

import { randomUUID } from "node:crypto";
import type { Logger } from "../shared/logger.ts";
import type { KeyPurposeName } from "../shared/signing.ts";
import type { Store } from "../shared/store/store.ts";
import type { KeyBackend } from "./backends/backend.ts";
import { referencedRefs } from "./key-records.ts";

const RECONCILE_EVERY_MS = 60_000;

/** The labels of this installation's backend objects: `mandate:<installation>:<tenant>:<purpose>:<id>`. */
export class BackendLabels {
  #installationId = "";

  /** Reads this installation's id, made once: it prefixes the labels of its backend objects. */
  async load(store: Store): Promise<void> {
    const candidate = randomUUID().slice(0, 8);
    await store.db
      .insertInto("settings")
      .values({ name: "installation_id", value: candidate })
      .onConflict((c) => c.column("name").doNothing())
      .execute();
    const row = await store.db
      .selectFrom("settings")
      .select("value")
      .where("name", "=", "installation_id")
      .executeTakeFirstOrThrow();
    this.#installationId = row.value;
  }

  get prefix(): string {
    return `mandate:${this.#installationId}:`;
  }

  forKey(tenant: string, purpose: KeyPurposeName, id: string): string {
    return `${this.prefix}${tenant}:${purpose}:${id}`;
  }
}

export class OrphanReconciler {
  readonly #store: Store;
  readonly #backend: KeyBackend;
  readonly #labels: BackendLabels;
  readonly #logger: Logger;
  #orphanCandidates = new Set<string>();
  #lastRun = Number.NEGATIVE_INFINITY;

  constructor(store: Store, backend: KeyBackend, labels: BackendLabels, logger: Logger) {
    this.#store = store;
    this.#backend = backend;
    this.#labels = labels;
    this.#logger = logger;
  }

  async runIfDue(now: number): Promise<void> {
    if (now - this.#lastRun >= RECONCILE_EVERY_MS) await this.#run(now);
  }

  /**
   * Destroys backend keys no row refers to: made by a rotation that crashed before it committed.
   * A key is destroyed only when it was already unreferenced one pass earlier, so a rotation that
   * is committing right now on another replica is never caught in between.
   */
  async #run(now: number): Promise<void> {
    this.#lastRun = now;
    const refs = await this.#backend.listRefs(this.#labels.prefix);
    const known = await referencedRefs(this.#store.db, this.#backend.kind);
    const orphans = refs.filter((ref) => !known.has(ref));
    for (const ref of orphans) {
      if (!this.#orphanCandidates.has(ref)) continue;
      await this.#backend.destroy(ref);
      this.#logger.warn(
        { ref, backend: this.#backend.kind },
        "destroyed a key no record refers to (left by an interrupted rotation)",
      );
    }
    this.#orphanCandidates = new Set(orphans.filter((ref) => !this.#orphanCandidates.has(ref)));
  }
}
