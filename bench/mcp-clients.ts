// The MCP clients of bench/mcp.ts, in a worker thread of their own: their work and their garbage
// collection (a V8 isolate has its own heap) stay off the event loop and the heap of the servers being
// measured, as a real agent's would. The main thread starts the worker with the targets, then asks
// for runs one at a time; each answer is the latencies of the calls that succeeded.
import { parentPort, Worker, workerData } from "node:worker_threads";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { type MandateClientAuthOptions, mandateTransport } from "../services/mcp/index.ts";

export interface ClientTarget {
  name: string;
  url: string;
  /** The agent's mandate session (the kit's client, a DPoP proof per call); none: a plain client. */
  agent?: MandateClientAuthOptions | undefined;
}

interface RunRequest {
  target: string;
  tool: string;
  calls: number;
  concurrency: number;
}

export interface RunResult {
  /** ms, in completion order. */
  latencies: Float64Array;
  errors: number;
  firstError: string | null;
  seconds: number;
}

/** The main thread's handle on the worker: `run` one measurement at a time. */
export class ClientWorker {
  readonly #worker: Worker;
  #next: ((message: unknown) => void) | undefined;
  #failed: ((error: Error) => void) | undefined;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.on("message", (message) => this.#next?.(message));
    worker.on("error", (error) => this.#failed?.(error));
  }

  /** A worker with every target's client connected. */
  static async start(targets: ClientTarget[]): Promise<ClientWorker> {
    const handle = new ClientWorker(new Worker(new URL(import.meta.url), { workerData: targets }));
    await handle.#answer();
    return handle;
  }

  async run(request: RunRequest): Promise<RunResult> {
    const answer = this.#answer();
    this.#worker.postMessage(request);
    return (await answer) as RunResult;
  }

  async close(): Promise<void> {
    const answer = this.#answer();
    this.#worker.postMessage("close");
    await answer;
    await this.#worker.terminate();
  }

  #answer(): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#next = (message) => {
        if (message && typeof message === "object" && "error" in message) reject(new Error(String(message.error)));
        else resolve(message);
      };
      this.#failed = reject;
    });
  }
}

async function serve(targets: ClientTarget[]): Promise<void> {
  const port = parentPort as NonNullable<typeof parentPort>;
  const clients = new Map<string, Client>();
  try {
    for (const target of targets) {
      const client = new Client({ name: "bench", version: "1.0.0" });
      const url = new URL(target.url);
      await client.connect(
        target.agent
          ? mandateTransport(target.url, target.agent)
          : new StreamableHTTPClientTransport(url, { fetch: ownSignal }),
      );
      clients.set(target.name, client);
    }
  } catch (error) {
    port.postMessage({ error: error instanceof Error ? error.message : String(error) });
    return;
  }
  port.postMessage("ready");
  port.on("message", async (request: RunRequest | "close") => {
    if (request === "close") {
      for (const client of clients.values()) await client.close();
      port.postMessage("closed");
      return;
    }
    const client = clients.get(request.target);
    if (!client) port.postMessage({ error: `no client for ${request.target}` });
    else {
      const result = await calls(client, request);
      port.postMessage(result, [result.latencies.buffer as ArrayBuffer]);
    }
  });
}

/**
 * fetch with a signal of the request's own following the transport's, as the kit's client does
 * (services/mcp/client): given the SDK transport's long-lived signal itself, fetch leaves a listener
 * on it per request and each call gets slower. The baseline client gets the same fix, so the two
 * differ only by the kit.
 */
const ownSignal: typeof fetch = (input, init) =>
  fetch(input, init?.signal ? { ...init, signal: AbortSignal.any([init.signal]) } : init);

/** `calls` tool calls, `concurrency` in flight; latencies of the successful ones. */
async function calls(client: Client, { tool, calls, concurrency }: RunRequest): Promise<RunResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let started = 0;
  const begin = performance.now();
  const caller = async () => {
    while (started < calls) {
      started++;
      const t0 = performance.now();
      try {
        const result = await client.callTool({ name: tool, arguments: { text: "hi" } });
        if (result.isError) throw new Error(JSON.stringify(result.content));
        latencies.push(performance.now() - t0);
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  return {
    latencies: Float64Array.from(latencies),
    errors,
    firstError,
    seconds: (performance.now() - begin) / 1000,
  };
}

if (parentPort) await serve(workerData as ClientTarget[]);
