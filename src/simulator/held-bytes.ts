/** Default of SimulatorOptions.maxHeldBytes: four sessions at their own bounds (64 MiB conversation + 64 MiB input audio each). */
export const DEFAULT_MAX_HELD_BYTES = 512 * 1024 * 1024;

/** A session counted in the budget: what it holds as last counted, and how it ends when it is to pay for the budget. */
export interface BytesHolder {
  readonly counted: number;
  /** Ends the session (an error, close 1011); its bytes leave the budget as it does (HeldBytes.change to 0). */
  endOverBudget(): void;
}

/**
 * The bytes every session of one simulator holds (conversation and input audio buffer), together,
 * against one budget. Each session bounds its own (MAX_CONVERSATION_BYTES, MAX_INPUT_AUDIO_BYTES),
 * but the embedded simulator runs in the proxy's process, where many sessions at their bound were
 * bounded by nothing (until 2026-12-07; src/simulator/simulator.test.ts, "held bytes").
 *
 * Past the budget the sessions holding the most end first (makeRoom), not the one whose growth
 * crossed it: until 2026-12-07 (red team) a session kept just under the budget ended every other
 * session on its first append.
 */
export class HeldBytes {
  readonly max: number;
  #held = 0;
  readonly #holders = new Set<BytesHolder>();

  constructor(max: number) {
    this.max = max;
  }

  get held(): number {
    return this.#held;
  }

  get over(): boolean {
    return this.#held > this.max;
  }

  /** `holder`'s bytes grew (positive) or shrank (negative) by `delta`; `now`: what it holds after (0: it leaves the budget). */
  change(holder: BytesHolder, delta: number, now: number): void {
    this.#held += delta;
    if (now > 0) this.#holders.add(holder);
    else this.#holders.delete(holder);
  }

  /** While over the budget, ends the session holding the most (a tie: `grown`, whose growth took it past). */
  makeRoom(grown: BytesHolder): void {
    while (this.over) {
      let largest: BytesHolder | null = this.#holders.has(grown) ? grown : null;
      for (const h of this.#holders) if (largest === null || h.counted > largest.counted) largest = h;
      if (largest === null) return;
      largest.endOverBudget();
      // Ended, it left the count (change to 0); one that did not end stops the loop (it never spins).
      if (this.#holders.has(largest)) return;
    }
  }
}
