// A port free on `host` right now: for a listener that must know its port before it binds (an
// edge on port 0 whose issuer URLs name the port), and for tests and benchmarks.
import { createServer } from "node:net";

export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
