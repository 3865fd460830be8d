// `mandate`: the command line. Every command has --help and --version; commands that print data
// take --json. Errors say what to do and exit non-zero (2 for bad configuration or usage). Each
// command group lives in its own module; this one assembles the program and runs it.
import { adminCommand } from "./admin.ts";
import { agentsCommand } from "./agents.ts";
import { apiKeysCommand } from "./api-keys.ts";
import { auditCommand } from "./audit.ts";
import { certsCommand } from "./certs.ts";
import { clientsCommand } from "./clients.ts";
import { command, configOption, print } from "./common.ts";
import { demoCommand } from "./demo.ts";
import { reportError } from "./errors.ts";
import { federationCommand } from "./federation.ts";
import { healthCommand } from "./health.ts";
import { idpsCommand } from "./idps.ts";
import { keysCommand } from "./keys.ts";
import { mandatesCommand } from "./mandates.ts";
import { migrateCommand } from "./migrate.ts";
import { policyCommand } from "./policy.ts";
import { devCommand, serveCommand } from "./serve.ts";
import { tenantTrustsCommand } from "./tenant-trusts.ts";
import { tenantsCommand } from "./tenants.ts";
import { usersCommand } from "./users.ts";

const program = command("mandate", "Identity, delegation and authorization for humans and AI agents.")
  .addOption(configOption)
  .enablePositionalOptions();

for (const group of [
  devCommand(),
  serveCommand(),
  migrateCommand(),
  usersCommand(),
  tenantsCommand(),
  tenantTrustsCommand(),
  keysCommand(),
  clientsCommand(),
  mandatesCommand(),
  agentsCommand(),
  apiKeysCommand(),
  federationCommand(),
  idpsCommand(),
  auditCommand(),
  healthCommand(),
  adminCommand(),
  certsCommand(command, print),
  policyCommand(command, print),
  demoCommand(),
]) {
  program.addCommand(group);
}

program.exitOverride();
try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.exitCode = reportError(error);
}
