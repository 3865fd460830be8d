// `mandate users`: dev users (identity.provider: dev).
import { type Command, CommanderError } from "commander";
import { hashPassword } from "../issue/clients/secrets.ts";
import { type CommonOptions, command, print } from "./common.ts";

export function usersCommand(): Command {
  const users = command("users", "dev users (identity.provider: dev)");
  users.addCommand(
    command("hash-password", "hash a password for identity.devUsers (reads it from stdin, never from arguments)")
      .option("--json", "print the result as JSON")
      .action(async (options: CommonOptions) => {
        const hash = await hashPassword(await passwordFromStdin());
        print(options, { passwordHash: hash }, () => hash);
      }),
  );
  return users;
}

async function passwordFromStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (password.length < 8) {
    throw new CommanderError(2, "mandate.usage", "the password on stdin must have at least 8 characters");
  }
  return password;
}
