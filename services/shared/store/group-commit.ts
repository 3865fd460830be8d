// Group commit per tenant: what arrives in the same tick (or until `max` are waiting) is committed
// together, one batch per tenant. Each caller's promise settles as the commit settles it; a commit
// that throws rejects every caller of its batch. Used by the audit outbox (outbox.ts) and the
// token-exchange issuances (issue/mandates/issuance-batch.ts).

/** A queued item with its caller's promise to settle. */
export type Waiting<T> = T & { resolve: () => void; reject: (error: unknown) => void };

export class GroupCommit<T extends object> {
  readonly #max: number;
  readonly #commit: (tenant: string, batch: Waiting<T>[]) => Promise<void>;
  #queue = new Map<string, Waiting<T>[]>();
  #queued = 0;
  #scheduled = false;

  /** `commit` settles every item of the batch (or throws: all are then rejected). */
  constructor(max: number, commit: (tenant: string, batch: Waiting<T>[]) => Promise<void>) {
    this.#max = max;
    this.#commit = commit;
  }

  /** Queues `item` for the tenant's next batch; settles as its batch's commit settles it. */
  add(tenant: string, item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiting = this.#queue.get(tenant) ?? [];
      waiting.push({ ...item, resolve, reject });
      this.#queue.set(tenant, waiting);
      this.#queued++;
      if (this.#queued >= this.#max) this.#flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = new Map();
    this.#queued = 0;
    for (const [tenant, batch] of queue) {
      this.#commit(tenant, batch).catch((error: unknown) => {
        for (const waiting of batch) waiting.reject(error);
      });
    }
  }
}
