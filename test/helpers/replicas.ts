// Two replicas as separate processes on one database, as deployed behind one public URL: replica
// one is `mandate dev` (it migrates and seeds the demo tenant), replica two the production command,
// `mandate serve all edge`, on the same store. Both name the same issuer (MANDATE_PUBLIC_BASE_URL, replica one's address) and share the
// software keystore's key-encryption key, so each verifies the tokens the other signs. A request
// "to replica two" is one a load balancer sent there: it reaches two's port but names the public URL.
import { randomBytes } from "node:crypto";
import { freePort, type MandateProcess, startMandateProcess } from "./mandate-process.ts";

export const DEV_PASSWORD = "correct horse battery staple";

export interface Replica {
  process: MandateProcess;
  /** Where this replica's HTTP listener is (the edge: token endpoint, JWKS, revocation feed). */
  url: string;
  /** host:port of its native gRPC listener. */
  grpc: string;
}

export interface Replicas {
  /** The public base URL both replicas answer for. */
  base: string;
  /** The tenant demo's issuer: `${base}/t/demo`. */
  issuer: string;
  one: Replica;
  two: Replica;
  stop(): Promise<void>;
}

export async function startReplicas(databaseUrl: string, env: Record<string, string> = {}): Promise<Replicas> {
  const [portOne, portTwo] = [await freePort(), await freePort()];
  const base = `http://127.0.0.1:${portOne}`;
  const shared = {
    MANDATE_SIGNER_KEK: randomBytes(32).toString("base64url"),
    MANDATE_PUBLIC_BASE_URL: base,
    MANDATE_DEV_PASSWORD: DEV_PASSWORD,
    ...env,
  };
  const start = async (command: string[], port: number): Promise<Replica> => {
    const process = await startMandateProcess(
      [...command, "--http-port", String(port), "--grpc-port", "0", "--database", databaseUrl],
      shared,
    );
    return { process, url: `http://127.0.0.1:${port}`, grpc: process.summary.grpc as string };
  };
  // One after the other: the first migrates and seeds; the second finds it done.
  const one = await start(["dev"], portOne);
  let two: Replica;
  try {
    two = await start(["serve", "all", "edge"], portTwo);
  } catch (error) {
    await one.process.stop();
    throw error;
  }
  return {
    base,
    issuer: `${base}/t/demo`,
    one,
    two,
    async stop() {
      await two.process.stop();
      await one.process.stop();
    },
  };
}
