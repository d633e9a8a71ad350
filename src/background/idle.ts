/**
 * Calls `onIdle` once `touch()` has not been called for `idleMs`. Owners of background jobs use it
 * to detach a job nobody fed for a while, so an idle proxy does not keep the background thread
 * (~6–18 MB of RSS) alive; the policy schema uses it to let go of its compiled form. One unref'd
 * timer: a touch only records the time, and the timer, when it fires early, waits out the
 * remainder, so a busy owner pays no timer call per touch.
 */
/**
 * How long a background job waits with nothing to do before it goes (span export, WAL checkpoints).
 * Long enough that only a proxy idle for minutes lets the thread go: starting it again costs ~3 ms
 * on the event loop and ~0.3 s of CPU on the thread (loading the exporter), which a one-core
 * container shares with the event loop.
 */
export const BACKGROUND_IDLE_MS = 300_000;

export class IdleTimer {
  readonly #idleMs: number;
  readonly #onIdle: () => void;
  readonly #now: () => number;
  #last = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(idleMs: number, onIdle: () => void, now: () => number = () => performance.now()) {
    this.#idleMs = idleMs;
    this.#onIdle = onIdle;
    this.#now = now;
  }

  touch(): void {
    this.#last = this.#now();
    if (this.#timer === null) this.#arm(this.#idleMs);
  }

  cancel(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const quiet = this.#now() - this.#last;
      if (quiet >= this.#idleMs) this.#onIdle();
      else this.#arm(this.#idleMs - quiet);
    }, ms);
    this.#timer.unref();
  }
}
