import type { Logger } from 'pino';

/** At most this many sources are tracked per interval; the rest are counted under one line. */
const MAX_SOURCES = 1024;

/**
 * Rate-limited logging of refused upgrades (bad keys, malformed requests): the first refusal per
 * source and reason in an interval is logged at once, later ones are counted and summarised in one
 * line per source when the interval ends. A flood of bad keys writes a bounded number of lines.
 * The calls module logs its refused SIP webhooks (`webhook_refused`) through one of its own.
 */
export class RefusalLog {
  readonly #log: Logger;
  /** The `event` of its lines and their message (refused upgrades by default). */
  readonly #event: string;
  readonly #message: string;
  readonly #intervalMs: number;
  readonly #now: () => number;
  /** `reason source` → refusals not yet logged in the current interval. */
  #counts = new Map<string, number>();
  #overflow = 0;
  #intervalStart: number;

  constructor(log: Logger, intervalMs: number, now: () => number, lines: { readonly event: string; readonly message: string } = { event: 'upgrade_refused', message: 'upgrade refused' }) {
    this.#log = log;
    this.#event = lines.event;
    this.#message = lines.message;
    this.#intervalMs = intervalMs;
    this.#now = now;
    this.#intervalStart = now();
  }

  refused(reason: string, source: string, extra: Readonly<Record<string, unknown>> = {}): void {
    this.#rollover();
    const key = `${reason} ${source}`;
    const seen = this.#counts.get(key);
    if (seen !== undefined) {
      this.#counts.set(key, seen + 1);
      return;
    }
    if (this.#counts.size >= MAX_SOURCES) {
      this.#overflow++;
      return;
    }
    this.#counts.set(key, 0);
    this.#log.info({ event: this.#event, reason, source, ...extra }, this.#message);
  }

  /** Writes the summary lines of a finished interval (also called from the server's timer). */
  flush(force = false): void {
    if (!force && this.#now() - this.#intervalStart < this.#intervalMs) return;
    for (const [key, repeated] of this.#counts) {
      if (repeated === 0) continue;
      const space = key.indexOf(' ');
      this.#log.info(
        { event: this.#event, reason: key.slice(0, space), source: key.slice(space + 1), repeated, intervalMs: this.#intervalMs },
        `${this.#message} (repeated)`,
      );
    }
    if (this.#overflow > 0) this.#log.warn({ event: this.#event, source: 'other', repeated: this.#overflow, intervalMs: this.#intervalMs }, `${this.#message} (other sources)`);
    this.#counts = new Map();
    this.#overflow = 0;
    this.#intervalStart = this.#now();
  }

  #rollover(): void {
    if (this.#now() - this.#intervalStart >= this.#intervalMs) this.flush(true);
  }
}
