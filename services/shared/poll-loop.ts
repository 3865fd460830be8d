// The fallback poll of a replica's view of the store (policy reload, the revocation index): one poll
// at a time, the next one `intervalMs` after the previous ended, and one at once when a notification
// channel reconnected and may have missed messages (a poll asked for while one runs is served by the
// next one).

export class PollLoop {
  readonly #poll: () => Promise<void>;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  /** `poll` never rejects: it logs its own failures and is tried again at the next turn. */
  constructor(poll: () => Promise<void>, intervalMs: number) {
    this.#poll = poll;
    this.#intervalMs = intervalMs;
  }

  /** Polls now and, once that poll ended, every `intervalMs` until stopped. */
  async start(): Promise<void> {
    await this.#tick();
  }

  /** Polls at once (a notification channel reconnected and may have missed messages). */
  pollSoon(): void {
    this.#schedule(0);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(delay: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#tick(), delay);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    this.#running ??= this.#poll().finally(() => {
      this.#running = undefined;
    });
    await this.#running;
    this.#schedule(this.#intervalMs);
  }
}
