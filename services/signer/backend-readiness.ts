// Whether the key backend can sign, and how its failures reach callers. A misconfigured backend
// (wrong PIN, missing token) does not stop the process: the Signer stays not ready and every
// signature fails closed with the reason.
import { failedPrecondition, unavailable } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { type BackendStatus, type KeyBackend, KeyBackendError } from "./backends/backend.ts";

export class BackendReadiness {
  readonly #backend: KeyBackend;
  readonly #logger: Logger;
  #openError: string | undefined;
  #openRetry = false;

  constructor(backend: KeyBackend, logger: Logger) {
    this.#backend = backend;
    this.#logger = logger;
  }

  async open(): Promise<void> {
    try {
      await this.#backend.open();
      if (this.#openError) this.#logger.info({ backend: this.#backend.kind }, "signer key backend reachable again");
      this.#openError = undefined;
      this.#openRetry = false;
    } catch (error) {
      const first = this.#openError === undefined;
      this.#openError = error instanceof Error ? error.message : String(error);
      // Unreachable (e.g. a network HSM still starting) is retried each round; misconfigured is
      // not — retrying a wrong PIN could lock the token.
      this.#openRetry = error instanceof KeyBackendError && error.code === "UNAVAILABLE";
      if (first) {
        this.#logger.error(
          { err: error, backend: this.#backend.kind, retrying: this.#openRetry },
          "signer key backend unavailable; signing fails closed",
        );
      }
    }
  }

  /** Opens again a backend that was unreachable (never one that was misconfigured). */
  async retryIfUnreachable(): Promise<void> {
    if (this.#openRetry) await this.open();
  }

  status(): BackendStatus {
    if (this.#openError) return { ready: false, detail: this.#openError };
    return this.#backend.status();
  }

  requireReady(): void {
    const status = this.status();
    if (!status.ready) throw unavailable(`signing is unavailable: ${status.detail}`, "SIGNER_NOT_READY");
  }
}

/** Backend failures become UNAVAILABLE (retry) or FAILED_PRECONDITION (an operator must act). */
export function backendFailure(error: unknown): Error {
  if (!(error instanceof KeyBackendError)) return error as Error;
  if (error.code === "UNAVAILABLE")
    return unavailable(`key backend unavailable: ${error.message}`, "KEY_BACKEND_UNAVAILABLE");
  if (error.code === "KEY_NOT_FOUND")
    return failedPrecondition(`signing key missing from the backend: ${error.message}`, "KEY_MISSING");
  return failedPrecondition(`key backend: ${error.message}`, "KEY_BACKEND_MISCONFIGURED");
}
