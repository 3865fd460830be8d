// The mTLS listener's settings (RFC 8705): where it listens and the server certificate it shows.
// A deployment names its certificate (http.mtls.certFile / keyFile); `mandate dev` without them
// makes a development CA and server certificate under .mandate/tls and says where they are.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../shared/config.ts";
import type { MtlsListenerOptions } from "./server.ts";

/** Where `mandate dev` keeps the development certificate of the mTLS listener. */
export const DEV_MTLS_DIR = join(".mandate", "tls");

/** Makes a development CA and an edge certificate (cli/certs.ts makeDevCa) in `dir`: their PEM files. */
export type DevCertificateMaker = (dir: string) => Promise<{ ca: string; cert: string; key: string }>;

/**
 * The listener's options, or undefined when http.mtls.port is unset. Outside `mandate dev` the
 * certificate files are required (a configuration error otherwise): nothing is made up in production.
 */
export async function mtlsListenerOptions(
  config: Config,
  dev: DevCertificateMaker | undefined,
  progress: (message: string) => void,
): Promise<MtlsListenerOptions | undefined> {
  const { mtls } = config.http;
  if (mtls.port === undefined) return undefined;
  const host = mtls.host ?? config.http.host;
  if (mtls.certFile && mtls.keyFile) {
    return { host, port: mtls.port, cert: readFileSync(mtls.certFile), key: readFileSync(mtls.keyFile) };
  }
  if (mtls.certFile || mtls.keyFile) throw new Error("http.mtls.certFile and http.mtls.keyFile go together");
  if (!dev) {
    throw new Error("http.mtls.port needs http.mtls.certFile and http.mtls.keyFile (the listener's certificate)");
  }
  const files = await developmentCertificate(dev);
  progress(`mTLS listener: development certificate ${files.cert} (clients trust ${files.ca})`);
  return { host, port: mtls.port, cert: readFileSync(files.cert), key: readFileSync(files.key) };
}

/** The development certificate, made once and reused by later runs. */
async function developmentCertificate(make: DevCertificateMaker): Promise<{ ca: string; cert: string; key: string }> {
  const existing = {
    ca: join(DEV_MTLS_DIR, "ca.pem"),
    cert: join(DEV_MTLS_DIR, "edge.pem"),
    key: join(DEV_MTLS_DIR, "edge-key.pem"),
  };
  if (Object.values(existing).every((file) => existsSync(file))) return existing;
  return make(DEV_MTLS_DIR);
}
