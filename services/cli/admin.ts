// `mandate admin`: the platform administrator the CLI acts as.
import type { Command } from "commander";
import { bootstrapAdmin } from "../runtime/admin-bootstrap.ts";
import { systemClock } from "../shared/clock.ts";
import { type CommonOptions, command, configFrom, configOption, databaseOption, print, withStore } from "./common.ts";

export function adminCommand(): Command {
  const admin = command("admin", "the platform administrator the CLI acts as");
  admin.addCommand(
    command(
      "bootstrap",
      "create the first platform-admin client (for `mandate serve`; `mandate dev` does it by itself) and write its credentials file",
    )
      .option("--force", "create another even if a platform-admin client exists (the old ones stay valid)")
      .addOption(configOption)
      .addOption(databaseOption)
      .option("--json", "print the result as JSON")
      .action(async (options: CommonOptions & { force?: boolean }) => {
        const config = configFrom(options);
        const result = await withStore(config, (store) =>
          bootstrapAdmin({ store, config, clock: systemClock, mode: "bootstrap", force: options.force }),
        );
        print(options, { client_id: result.clientId, credentials_file: result.file }, () =>
          [
            `created platform-admin client ${result.clientId}; credentials in ${result.file} (mode 0600: keep it secret)`,
            "the CLI uses it by default: try `mandate tenants list`",
          ].join("\n"),
        );
      }),
  );
  admin.addCommand(
    command("token", "print a short-lived Bearer access token for Mandate's API, e.g. for curl")
      .addOption(configOption)
      .option("--json", "print the token response as JSON")
      .action(async (options: CommonOptions) => {
        const { bearerToken } = await import("./credentials.ts");
        const token = await bearerToken(configFrom(options).admin.credentialsFile);
        print(options, token, () => token.access_token);
      }),
  );
  return admin;
}
