// The mTLS listener's settings (RFC 8705): where it listens and the server certificate it shows.
// A deployment names its certificate (http.mtls.certFile / keyFile); `mandate dev` without them
// makes a development CA and server certificate under .mandate/tls and says where they are.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../shared/config.ts";
import type { MtlsListenerOptions } from "./server.ts";

/** How often the certificate files are checked for a renewal. */
const RENEWAL_CHECK_MS = 30_000;

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
    const files = { certFile: mtls.certFile, keyFile: mtls.keyFile };
    return {
      host,
      port: mtls.port,
      cert: readFileSync(files.certFile),
      key: readFileSync(files.keyFile),
      renewal: { intervalMs: RENEWAL_CHECK_MS, read: renewedFiles(files) },
    };
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

/** Reads the files again when their size or modification time changed since the last read. */
export function renewedFiles(files: {
  certFile: string;
  keyFile: string;
}): () => { cert: Buffer; key: Buffer } | undefined {
  const stampOf = () =>
    [files.certFile, files.keyFile]
      .map((file) => {
        const stat = statSync(file);
        return `${stat.mtimeMs}:${stat.size}`;
      })
      .join("|");
  let stamp = stampOf();
  return () => {
    const current = stampOf();
    if (current === stamp) return undefined;
    const renewed = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
    // Both files of one renewal, or neither: a certificate without its key is a renewal mid-write.
    if (!new X509Certificate(renewed.cert).checkPrivateKey(createPrivateKey(renewed.key))) {
      throw new Error("the certificate and the key do not belong together (yet)");
    }
    stamp = current;
    return renewed;
  };
}
