// `mandate serve --workers N` and `mandate dev --workers N`: N worker processes (node:cluster) share
// the listening sockets (the primary accepts and hands connections out in turn), each a full replica
// of the hosted services over the shared store and Redis — what separate replicas share already: the
// store, the DPoP and client-assertion replay memory and the rate limits in Redis, revocations over
// LISTEN/NOTIFY or Redis, key rotation under its lease. (`mandate dev` without Redis: the primary holds
// the replay memory and the rate limits and relays revocations instead, runtime/worker-state.ts.) The
// primary supervises: it starts the workers, replaces one that dies (and gives up on a crash loop),
// replaces them one at a time on SIGHUP (a rolling restart: the next starts before the previous
// drains), and on SIGTERM/SIGINT lets every worker drain and exits when the last has.
import cluster, { type Worker } from "node:cluster";

/** What a worker tells the primary once it serves (its startup summary). */
export interface WorkerReady {
  type: "mandate:worker-ready";
  summary: Record<string, unknown>;
}

export interface SuperviseOptions {
  workers: number;
  /** How long a worker may drain before it is killed (config.shutdownGraceMs, plus start-up slack). */
  graceMs: number;
  /** Once every worker of the first generation serves: their summaries, in start order. */
  onReady(summaries: Record<string, unknown>[]): void;
  /** Progress and trouble, one line each (stderr). */
  say(line: string): void;
  /**
   * The first worker prepares what is written once (`mandate dev`: migrations, the admin client, the
   * demo tenant, generated keys; workerPreparation() says so). The others start beside it, load, and
   * wait until it serves; workers started later (replacements) find the preparation done.
   */
  firstPrepares?: boolean;
}

/** A worker's part in what is written once: do it, wait for the first worker's, or nothing (done). */
export type Preparation = "prepare" | "wait" | "done";

/** Env of the worker that prepares, and of every worker started after it served. */
const PREPARES = "MANDATE_WORKER_PREPARES";
const PREPARED = "MANDATE_WORKER_PREPARED";
/** A waiting worker asks; the primary answers once the first worker serves. */
const AWAIT_PREPARED = "mandate:await-prepared";
const PREPARED_MESSAGE = "mandate:prepared";

/** In a worker of a primary whose first worker prepares (firstPrepares). */
export function workerPreparation(): Preparation {
  if (process.env[PREPARES] === "1") return "prepare";
  return process.env[PREPARED] === "1" ? "done" : "wait";
}

/** In a worker whose part is "wait": resolves once the first worker has prepared and serves. */
export function preparedByFirstWorker(): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (message: { type?: unknown } | null) => {
      if (message?.type !== PREPARED_MESSAGE) return;
      process.off("message", onMessage);
      resolve();
    };
    process.on("message", onMessage);
    process.send?.({ type: AWAIT_PREPARED });
  });
}

/** Crashes within CRASH_WINDOW_MS beyond which the primary stops replacing workers and exits. */
const CRASH_LIMIT = 5;
const CRASH_WINDOW_MS = 30_000;

export const isWorker = (): boolean => cluster.isWorker;

/** In a worker: tells the primary it serves. */
export function reportReady(summary: Record<string, unknown>): void {
  process.send?.({ type: "mandate:worker-ready", summary } satisfies WorkerReady);
}

/** In the primary: runs the workers until SIGTERM/SIGINT (then resolves with the exit code to use). */
export function superviseWorkers(options: SuperviseOptions): Promise<number> {
  const { say } = options;
  const live = new Set<Worker>();
  const crashes: number[] = [];
  let serving = false;
  let stopping = false;
  let rolling = false;

  let prepared = !options.firstPrepares;
  const waiting = new Set<Worker>();
  const tellPrepared = (worker: Worker) => {
    if (worker.isConnected()) worker.send({ type: PREPARED_MESSAGE });
  };

  const start = (env?: Record<string, string>): Promise<{ worker: Worker; summary: Record<string, unknown> }> => {
    const worker = cluster.fork(env);
    live.add(worker);
    return new Promise((resolve, reject) => {
      worker.on("message", (message: WorkerReady | { type?: unknown } | null) => {
        if (message?.type === "mandate:worker-ready") resolve({ worker, summary: (message as WorkerReady).summary });
        if (message?.type === AWAIT_PREPARED) {
          if (prepared) tellPrepared(worker);
          else waiting.add(worker);
        }
      });
      worker.once("exit", (code, signal) =>
        reject(new Error(`worker ${worker.process.pid} exited (${signal ?? code}) before it served`)),
      );
    });
  };

  const stopWorker = (worker: Worker): Promise<void> =>
    new Promise((resolve) => {
      if (worker.isDead()) return resolve();
      const kill = setTimeout(() => worker.process.kill("SIGKILL"), options.graceMs).unref();
      worker.once("exit", () => {
        clearTimeout(kill);
        resolve();
      });
      worker.process.kill("SIGTERM");
    });

  return new Promise((done) => {
    const finish = async (code: number) => {
      if (stopping) return;
      stopping = true;
      await Promise.all([...live].map(stopWorker));
      done(code);
    };

    cluster.on("exit", (worker, code, signal) => {
      live.delete(worker);
      // Before all serve, a worker that exits fails the start (below); while rolling, the roll replaces it.
      if (stopping || rolling || !serving) return;
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && (crashes[0] as number) < now - CRASH_WINDOW_MS) crashes.shift();
      if (crashes.length >= CRASH_LIMIT) {
        say(
          `worker ${worker.process.pid} exited (${signal ?? code}): ${crashes.length} exits in ${CRASH_WINDOW_MS / 1000} s, stopping`,
        );
        void finish(1);
        return;
      }
      say(`worker ${worker.process.pid} exited (${signal ?? code}): starting another`);
      start().catch((error: unknown) => say(`a replacement worker did not start: ${(error as Error).message}`));
    });

    process.once("SIGINT", () => void finish(0));
    process.once("SIGTERM", () => void finish(0));
    process.on("SIGHUP", () => {
      if (rolling || stopping) return;
      rolling = true;
      void (async () => {
        for (const old of [...live]) {
          // The replacement serves before the old one drains: capacity never drops below N - 0.
          const { worker } = await start();
          say(`rolling restart: worker ${worker.process.pid} serves, draining ${old.process.pid}`);
          await stopWorker(old);
        }
      })()
        .catch((error: unknown) => say(`rolling restart stopped: ${(error as Error).message}`))
        .finally(() => {
          rolling = false;
        });
    });

    const startAll = async () => {
      if (!options.firstPrepares) return Promise.all(Array.from({ length: options.workers }, () => start()));
      // The others load their code meanwhile, then wait for the first (preparedByFirstWorker).
      const first = start({ [PREPARES]: "1" });
      const others = Array.from({ length: options.workers - 1 }, () => start());
      for (const other of others) other.catch(() => {}); // a failed start is reported below
      const ready = await first;
      prepared = true;
      process.env[PREPARED] = "1"; // for the workers forked from now on
      for (const worker of waiting) tellPrepared(worker);
      waiting.clear();
      return [ready, ...(await Promise.all(others))];
    };
    startAll()
      .then((started) => {
        serving = true;
        options.onReady(started.map((s) => s.summary));
      })
      .catch((error: unknown) => {
        say(`the workers did not start: ${(error as Error).message}`);
        void finish(1);
      });
  });
}
