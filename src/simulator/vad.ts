import { rms } from './audio.js';
import type { TurnDetection } from './session.js';

/**
 * Speech boundaries in ms of session audio. `started.ms` is the first voiced frame; `stopped.ms` is
 * where the turn ended *including* the silence window (the last voiced frame + the silence the
 * detector waited for), which is what OpenAI reports as `speech_stopped.audio_end_ms`.
 */
export type VadEvent = { type: 'started'; ms: number } | { type: 'stopped'; ms: number; speechEndMs: number };

const FRAME_MS = 20;
/** Consecutive voiced frames before speech counts as started (rejects clicks). */
const START_FRAMES = 2;

/** Silence needed to end a turn under semantic VAD, by eagerness. */
const SEMANTIC_SILENCE_MS: Readonly<Record<string, number>> = { high: 250, medium: 500, auto: 500, low: 1000 };

/** `threshold` 0..1 maps linearly onto -60..-5 dBFS of frame RMS. */
export function rmsThreshold(threshold: number): number {
  return 10 ** ((-60 + 55 * threshold) / 20);
}

/**
 * Energy VAD over 20 ms frames. Times are milliseconds of audio since the session started, which
 * is what `audio_start_ms` / `audio_end_ms` report.
 */
export class Vad {
  #frame: number;
  #pending: Int16Array;
  #pendingLen = 0;
  /** Audio position (ms) at the start of the next frame. */
  #posMs: number;
  #speaking = false;
  #voicedRun = 0;
  #runStartMs = 0;
  #lastVoicedEndMs = 0;
  #config: TurnDetection;

  constructor(config: TurnDetection, rate: number, startMs: number) {
    this.#config = config;
    this.#frame = (rate * FRAME_MS) / 1000;
    this.#pending = new Int16Array(this.#frame);
    this.#posMs = startMs;
  }

  get speaking(): boolean {
    return this.#speaking;
  }

  configure(config: TurnDetection): void {
    this.#config = config;
  }

  #silenceMs(): number {
    const c = this.#config;
    return c.type === 'server_vad' ? c.silence_duration_ms : (SEMANTIC_SILENCE_MS[c.eagerness] ?? 500);
  }

  #threshold(): number {
    const c = this.#config;
    return rmsThreshold(c.type === 'server_vad' ? c.threshold : 0.5);
  }

  /** Feed decoded samples; returns the speech boundaries they complete, in order. */
  push(samples: Int16Array): VadEvent[] {
    const events: VadEvent[] = [];
    let i = 0;
    while (i < samples.length) {
      const take = Math.min(this.#frame - this.#pendingLen, samples.length - i);
      if (this.#pendingLen === 0 && take === this.#frame) {
        this.#frameDone(samples, i, i + take, events);
      } else {
        this.#pending.set(samples.subarray(i, i + take), this.#pendingLen);
        this.#pendingLen += take;
        if (this.#pendingLen === this.#frame) {
          this.#frameDone(this.#pending, 0, this.#frame, events);
          this.#pendingLen = 0;
        }
      }
      i += take;
    }
    return events;
  }

  #frameDone(buf: Int16Array, start: number, end: number, events: VadEvent[]): void {
    const frameStart = this.#posMs;
    this.#posMs += FRAME_MS;
    const voiced = rms(buf, start, end) >= this.#threshold();
    if (voiced) {
      if (this.#voicedRun === 0) this.#runStartMs = frameStart;
      this.#voicedRun++;
      this.#lastVoicedEndMs = this.#posMs;
      if (!this.#speaking && this.#voicedRun >= START_FRAMES) {
        this.#speaking = true;
        events.push({ type: 'started', ms: this.#runStartMs });
      }
      return;
    }
    this.#voicedRun = 0;
    if (this.#speaking && this.#posMs - this.#lastVoicedEndMs >= this.#silenceMs()) {
      this.#speaking = false;
      events.push({ type: 'stopped', ms: this.#lastVoicedEndMs + this.#silenceMs(), speechEndMs: this.#lastVoicedEndMs });
    }
  }

  /** Forget a turn in progress (buffer cleared or committed by hand). */
  reset(): void {
    this.#speaking = false;
    this.#voicedRun = 0;
  }
}
