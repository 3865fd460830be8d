import { ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";

/** The ConnectError `call` fails with (the test fails when it succeeds or fails otherwise). */
export async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  return error as ConnectError;
}
