// `mandate migrate`: apply pending database migrations (forward-only).
import type { Command } from "commander";
import { type CommonOptions, command, configFrom, configOption, databaseOption, print, withStore } from "./common.ts";

export function migrateCommand(): Command {
  return command("migrate", "apply pending database migrations (forward-only)")
    .addOption(configOption)
    .addOption(databaseOption)
    .option("--json", "print the result as JSON")
    .action((options: CommonOptions) =>
      withStore(
        configFrom(options),
        async (store) => {
          const applied: string[] = [];
          await store.migrate((name) => {
            applied.push(name);
            if (!options.json) process.stderr.write(`  applied ${name}\n`);
          });
          const all = await store.appliedMigrations();
          print(
            options,
            { database: store.displayUrl, engine: store.engine, applied, current: all.at(-1) ?? null },
            () =>
              applied.length
                ? `${store.displayUrl}: applied ${applied.length} migration(s); schema at ${all.at(-1)}`
                : `${store.displayUrl}: schema is current (${all.at(-1)})`,
          );
        },
        { migrating: true },
      ),
    );
}
