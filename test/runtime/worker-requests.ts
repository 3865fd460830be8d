// What the tests of `--workers N` share: HTTP requests on a connection of their own (node:cluster
// hands new connections to the workers in turn, so successive requests alternate between them) or on
// a given keep-alive agent (one connection: one worker), and the primary's worker processes.
import { execFileSync } from "node:child_process";
import { type Agent, request } from "node:http";

export interface Answer {
  status: number;
  body: Record<string, unknown>;
  /** The DPoP-Nonce response header (RFC 9449 §8). */
  nonce: string | undefined;
}

export interface RequestOptions {
  method?: "GET" | "POST";
  /** Sent as application/x-www-form-urlencoded. */
  form?: Record<string, string>;
  headers?: Record<string, string>;
  /** A keep-alive agent to stay on one connection; default: a connection of its own. */
  agent?: Agent;
}

/** One request; the body parsed as JSON (an empty body is {}). */
export function send(url: string, options: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = options.form ? new URLSearchParams(options.form).toString() : undefined;
    const req = request(
      url,
      {
        method: options.method ?? (body === undefined ? "GET" : "POST"),
        agent: options.agent ?? false,
        headers: {
          ...(body === undefined ? {} : { "content-type": "application/x-www-form-urlencoded" }),
          ...options.headers,
        },
      },
      (res) => {
        let text = "";
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: text ? JSON.parse(text) : {},
            nonce: res.headers["dpop-nonce"] as string | undefined,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** HTTP Basic client authentication (RFC 6749 §2.3.1). */
export const basic = (client: { id: string; secret: string }) => ({
  authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString("base64")}`,
});

/** The worker processes of the primary `pid` now. */
export function workerPids(pid: number | undefined): number[] {
  try {
    return execFileSync("pgrep", ["-P", String(pid)], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
