// How `mandate` reports a failure: what went wrong and what to do, on stderr, and the exit code
// (2 for bad configuration or usage, 1 otherwise, 0 for --help and --version).
import { Code, ConnectError } from "@connectrpc/connect";
import { CommanderError } from "commander";
import { AdminExists } from "../runtime/admin-bootstrap.ts";
import { ConfigError } from "../shared/config.ts";
import { TlsConfigError } from "../shared/rpc/mtls.ts";
import { MissingCredentials } from "./credentials.ts";

const CONNECT_HINTS: Partial<Record<Code, string>> = {
  [Code.Unavailable]: "is Mandate running? start it with `npm start` or pass --address",
  [Code.Unauthenticated]:
    "the server did not accept the CLI's credentials: with `npm start` they are the admin credentials file " +
    "`mandate dev` writes (admin.credentialsFile, default .mandate/admin.json); for `mandate serve` run " +
    "`mandate admin bootstrap`; or pass --token (MANDATE_TOKEN) with an access token for Mandate's API",
  [Code.PermissionDenied]: "the token is valid but lacks this right: use an admin token of the right tenant",
};

/** Writes what to do about `error` to stderr; returns the exit code. */
export function reportError(error: unknown): number {
  if (error instanceof CommanderError) return commanderExitCode(error);
  if (error instanceof TlsConfigError) {
    process.stderr.write(`error: ${error.message}\n`);
    return 2;
  }
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\nFix the values above (see README.md, "Configuration") and try again.\n`);
    return 2;
  }
  if (error instanceof MissingCredentials || error instanceof AdminExists) {
    process.stderr.write(`error: ${error.message}\n`);
    return 1;
  }
  if (error instanceof ConnectError) {
    const hint = CONNECT_HINTS[error.code];
    process.stderr.write(`error: ${Code[error.code]}: ${error.rawMessage}${hint ? `\n(${hint})` : ""}\n`);
    return 1;
  }
  if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
    process.stderr.write(
      `error: ${(error as Error).message}: another process holds the port; stop it or pick another with --http-port/--grpc-port\n`,
    );
    return 1;
  }
  process.stderr.write(`error: ${(error as Error).message ?? String(error)}\n`);
  return 1;
}

/** Commander has printed its own message (usage errors, --help, --version), except for ours. */
function commanderExitCode(error: CommanderError): number {
  if (error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.exitCode === 0) return 0;
  if (error.code === "mandate.usage") {
    process.stderr.write(`error: ${error.message}\n`);
    return error.exitCode;
  }
  return 2;
}
