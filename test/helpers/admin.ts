// Call credentials for tests: the platform-admin client a `mandate dev` (or `mandate admin
// bootstrap`) wrote, through the same code the CLI uses (client credentials + DPoP), for Connect
// clients (an interceptor) and for the independent @grpc/grpc-js client (per-call metadata).
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { type DevCa, makeDevCa } from "../../services/cli/certs.ts";
import { AdminSession, callerCredentials } from "../../services/cli/credentials.ts";

const sessions = new Map<string, AdminSession>();

function session(adminFile: string): AdminSession {
  let found = sessions.get(adminFile);
  if (!found) {
    found = new AdminSession(adminFile);
    sessions.set(adminFile, found);
  }
  return found;
}

export function adminInterceptor(adminFile: string): Interceptor {
  return callerCredentials(adminFile, undefined);
}

/** A native-gRPC transport to `address` authenticated as the platform admin (https when `caFile`). */
export function adminTransport(address: string, adminFile: string, caFile?: string): Transport {
  return createGrpcTransport({
    baseUrl: `${caFile ? "https" : "http"}://${address}`,
    interceptors: [adminInterceptor(adminFile)],
    ...(caFile ? { nodeOptions: { ca: readFileSync(caFile) } } : {}),
  });
}

export function adminClient<S extends DescService>(service: S, address: string, adminFile: string, caFile?: string) {
  return createClient(service, adminTransport(address, adminFile, caFile));
}

/** Metadata that authenticates one grpc-js call to `address` (`path` = "/mandate.v1.Service/Method"). */
export async function adminMetadata(adminFile: string, address: string, path: string, tls = false) {
  const metadata = new grpc.Metadata();
  const headers = await session(adminFile).headers(`${tls ? "https" : "http"}://${address}${path}`);
  for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
  return metadata;
}

/** Headers that authenticate one HTTP call to `url` (Connect / gRPC-Web at the edge). */
export function adminHeaders(adminFile: string, url: string): Promise<Record<string, string>> {
  return session(adminFile).headers(url);
}

/** A native-gRPC transport that calls as Mandate's `service` itself: mTLS with its dev-CA certificate. */
export function serviceTransport(address: string, ca: DevCa, service: string): Transport {
  const files = ca.services[service];
  if (!files) throw new Error(`the dev CA has no certificate for ${service}`);
  return createGrpcTransport({
    baseUrl: `https://${address}`,
    nodeOptions: { ca: readFileSync(ca.ca), cert: readFileSync(files.cert), key: readFileSync(files.key) },
  });
}

/** A dev CA in a fresh temporary folder (trust domain mandate.test). */
export async function testCa(): Promise<DevCa> {
  return makeDevCa(mkdtempSync(join(tmpdir(), "mandate-ca-")), "mandate.test");
}
