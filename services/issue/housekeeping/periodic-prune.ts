// The loop every housekeeping job of Issue shares: prune now and every `everyMs`, on every replica
// hosting Issue (a prune deletes what is past its time, so it is idempotent and replicas need no
// coordination). One round at a time; a failed round is logged and the next one tries again.
import type { Clock } from "../../shared/clock.ts";
import type { Logger } from "../../shared/logger.ts";

export interface PeriodicPrune {
  /** What is pruned, for the log ("mandate requests"). */
  what: string;
  everyMs: number;
  /** Deletes what is past its time at `now`; how many rows. */
  prune(now: number): Promise<number>;
}

/** Prunes now and every `job.everyMs` until stopped (which waits for a round under way). */
export function startPeriodicPrune(
  deps: { clock: Clock; logger: Logger },
  job: PeriodicPrune,
): {
  stop(): Promise<void>;
} {
  let running: Promise<void> | undefined;
  const round = () => {
    running ??= job
      .prune(deps.clock.now())
      .then((pruned) => {
        if (pruned > 0) deps.logger.info({ pruned }, `${job.what}: pruned those past their time`);
      })
      .catch((error: unknown) => deps.logger.warn({ err: error }, `${job.what}: pruning failed; retrying later`))
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(round, job.everyMs);
  timer.unref();
  round();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
