// `mandate`: the command line. Every command has --help and --version; commands that print data
// take --json. Errors say what to do and exit non-zero (2 for bad configuration or usage). Each
// command group lives in its own module; this one assembles the program and runs it.
import type { Command } from "commander";
import { adminCommand } from "./admin.ts";
import { agentsCommand } from "./agents.ts";
import { apiKeysCommand } from "./api-keys.ts";
import { auditCommand } from "./audit.ts";
import { certsCommand } from "./certs.ts";
import { clientsCommand } from "./clients.ts";
import { command, configOption, print } from "./common.ts";
import { reportError } from "./errors.ts";
import { federationCommand } from "./federation.ts";
import { healthCommand } from "./health.ts";
import { idpsCommand } from "./idps.ts";
import { keysCommand } from "./keys.ts";
import { mandatesCommand } from "./mandates.ts";
import { migrateCommand } from "./migrate.ts";
import { tenantTrustsCommand } from "./tenant-trusts.ts";
import { tenantsCommand } from "./tenants.ts";
import { usersCommand } from "./users.ts";

const program = command("mandate", "Identity, delegation and authorization for humans and AI agents.")
  .addOption(configOption)
  .enablePositionalOptions();

// Commands whose modules load the whole runtime or the Rego compiler (binaryen alone takes ~0.7 s):
// imported only when the command line names one of them, or asks for the full list (help, unknown).
const HEAVY: Record<string, () => Promise<Command[]>> = {
  dev: async () => [(await import("./serve.ts")).devCommand()],
  serve: async () => [(await import("./serve.ts")).serveCommand()],
  policy: async () => [(await import("./policy.ts")).policyCommand(command, print)],
  demo: async () => [(await import("./demo.ts")).demoCommand()],
};
const LIGHT: Record<string, () => Command> = {
  migrate: migrateCommand,
  users: usersCommand,
  tenants: tenantsCommand,
  "tenant-trusts": tenantTrustsCommand,
  keys: keysCommand,
  clients: clientsCommand,
  mandates: mandatesCommand,
  agents: agentsCommand,
  "api-keys": apiKeysCommand,
  federation: federationCommand,
  idps: idpsCommand,
  audit: auditCommand,
  health: healthCommand,
  admin: adminCommand,
  certs: () => certsCommand(command, print),
};
// The listing order of `mandate --help`.
const ORDER = ["dev", "serve", ...Object.keys(LIGHT).slice(0, -1), "certs", "policy", "demo"];

const named = process.argv.slice(2).find((arg) => arg in LIGHT || arg in HEAVY);
const wanted = named !== undefined && named in LIGHT ? Object.keys(LIGHT) : ORDER;
for (const name of ORDER.filter((n) => wanted.includes(n))) {
  const load = HEAVY[name];
  for (const group of load ? await load() : [(LIGHT[name] as () => Command)()]) program.addCommand(group);
}

program.exitOverride();
try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.exitCode = reportError(error);
}
