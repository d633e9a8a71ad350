import { keptId } from '../protocol/json.js';

/** Responses a session remembers as billed, the most recent (SettledIds). */
export const MAX_SETTLED_IDS = 8_192;
/** Characters of their ids as kept (`keptId`: an id the upstream chose, up to 256 characters or its 52-character hash). */
export const MAX_SETTLED_ID_CHARS = 256 * 1024;

/**
 * The responses a session billed (by their response.done, or at an estimate when it never came or was
 * never read), so that one the upstream names again is not billed twice: a second response.done, a
 * response.created replayed after its done (an upstream's bug, a replay). The API sends one of each
 * per response (reference §3.6), and its ids are opaque (nothing orders them, so no high-water mark
 * can stand for the ids below it): the ids themselves are kept, exactly, the most recent
 * MAX_SETTLED_IDS within MAX_SETTLED_ID_CHARS (at most about 1 MiB, in a session that billed that
 * many responses). A response named again after that many others is billed again: the residual risk,
 * bounded in src/metering/README.md ("Billed once"). Until the twenty-third pass the last 256 were kept
 * (test/metering/redteam-22b-replayed-response.test.ts, "after 300 other responses").
 */
export class SettledIds {
  readonly #ids = new Set<string>();
  #chars = 0;

  has(id: string): boolean {
    return this.#ids.has(keptId(id));
  }

  /** Takes `id` as billed: false when it was already. */
  add(id: string): boolean {
    const kept = keptId(id);
    if (this.#ids.has(kept)) return false;
    this.#ids.add(kept);
    this.#chars += kept.length;
    while (this.#ids.size > MAX_SETTLED_IDS || this.#chars > MAX_SETTLED_ID_CHARS) {
      const oldest = this.#ids.values().next().value!;
      this.#ids.delete(oldest);
      this.#chars -= oldest.length;
    }
    return true;
  }
}
