/** Default of SimulatorOptions.maxHeldBytes: four sessions at their own bounds (64 MiB conversation + 64 MiB input audio each). */
export const DEFAULT_MAX_HELD_BYTES = 512 * 1024 * 1024;

/**
 * The bytes every session of one simulator holds (conversation and input audio buffer), together,
 * against one budget. Each session bounds its own (MAX_CONVERSATION_BYTES, MAX_INPUT_AUDIO_BYTES),
 * but the embedded simulator runs in the proxy's process, where many sessions at their bound were
 * bounded by nothing (until 2026-12-07; src/simulator/simulator.test.ts, "held bytes").
 */
export class HeldBytes {
  readonly max: number;
  #held = 0;

  constructor(max: number) {
    this.max = max;
  }

  get held(): number {
    return this.#held;
  }

  get over(): boolean {
    return this.#held > this.max;
  }

  /** A session's bytes grew (positive) or shrank (negative) by `delta`. */
  change(delta: number): void {
    this.#held += delta;
  }
}
