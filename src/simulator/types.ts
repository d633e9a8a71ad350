import type { Brain } from './brain.js';
import type { SimCalls } from './calls.js';
import type { Translator } from './translation.js';

export interface SimulatorTiming {
  /** Delay between `response.content_part.added` and the first delta. Default 0. */
  readonly firstAudioDelayMs?: number;
  /** Delay between consecutive deltas (fast mode). Default 0 (yield to the event loop only). */
  readonly deltaIntervalMs?: number;
  /** Pace audio deltas at playback speed (demo mode). Default false. */
  readonly realtime?: boolean;
  /** Delay of `rate_limits.updated` after `response.done`. Default 1 ms (40 ms when realtime). */
  readonly rateLimitsDelayMs?: number;
  /** Time the input transcription model takes: delay before an item's first transcription event. Default 0. */
  readonly transcriptionDelayMs?: number;
}

export interface SimulatorOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (ephemeral). */
  readonly port?: number;
  /**
   * Expected upstream key. `null`/absent accepts any credential (or none). With a key, a missing
   * credential or a different one gets OpenAI's post-upgrade `error` + close 3000.
   */
  readonly apiKey?: string | null;
  /** Answer every upgrade with this HTTP status instead (tests of upstream 401/429/503). */
  readonly rejectUpgradeStatus?: number;
  readonly timing?: SimulatorTiming;
  /** Decides each response's content (default: `defaultBrain`). */
  readonly brain?: Brain;
  /** Input transcription text (default "(N.N s of audio)"). */
  readonly transcribe?: (input: { itemId: string; audioMs: number }) => string;
  /** Translation sessions (`/v1/realtime/translations`): each 200 ms frame's transcripts (default `defaultTranslator`). */
  readonly translate?: Translator;
  /** Server WebSocket pings, default 20000 ms like OpenAI; 0 disables. */
  readonly pingIntervalMs?: number;
  /** Serve `wss://` with this certificate (the `openai` Node SDK only dials `wss:`). */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** Offer permessage-deflate like OpenAI does. Default true. */
  readonly perMessageDeflate?: boolean;
  /** Session lifetime before `session_expired` + close 1001, like OpenAI's 60 min. Default 3,600,000; 0 disables. */
  readonly maxSessionMs?: number;
  /** Keep the base64 audio of `input_audio_buffer.append` in `received`. Default true (turn off for soaks). */
  readonly recordAudio?: boolean;
  /**
   * Keep what each connection received and sent (`received`, `sent`), and each connection once it
   * closed (`connections`), for tests to read. Default true. The proxy's embedded simulator (`npm
   * start` without OPENAI_API_KEY) turns it off unless its caller asks (src/main.ts): until 2026-12-07
   * it kept every event of every session, appended audio included, for the life of the process
   * (test/security/redteam-23-simulator-history.test.ts).
   */
  readonly keepHistory?: boolean;
  /**
   * Bytes all sessions together may hold in their conversations and input audio buffers (each also
   * bounded alone: 64 MiB of each). The session whose growth goes past it gets an `error`
   * (`server_error`, code `session_memory_exceeded`) and close 1011; the others go on. Default 512 MiB.
   */
  readonly maxHeldBytes?: number;
}

export interface ReceivedEvent {
  /** `performance.now()` when the frame arrived. */
  readonly t: number;
  readonly type: string;
  readonly event: unknown;
}

export interface SentEvent {
  /** `performance.now()` when the frame was handed to the socket. */
  readonly t: number;
  readonly type: string;
  readonly responseId: string | null;
}

export interface SimConnection {
  readonly id: string;
  /** Handshake headers, lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  /** Request path + query. */
  readonly url: string;
  /** Parsed client events in arrival order (frames that failed to parse are not listed); empty without keepHistory. */
  readonly received: readonly ReceivedEvent[];
  /** Events sent; empty without keepHistory. */
  readonly sent: readonly SentEvent[];
  readonly closed: Promise<{ code: number; reason: string }>;
  setBrain(b: Brain): void;
  /** Terminate the TCP connection abruptly (no close frame). */
  drop(): void;
  closeWith(code: number, reason: string): void;
  /** Stop reading the socket entirely (no pongs, no events): a hung upstream. Permanent. */
  freeze(): void;
  /** End the session now as at its maximum duration: `error` `session_expired`, then close 1001. */
  expire(): void;
  /** Terminate abruptly right after emitting `n` more audio deltas. */
  dropAfterDeltas(n: number): void;
}

export interface SimulatorHandle {
  /** ws://127.0.0.1:PORT/v1/realtime (wss:// with `tls`) */
  readonly url: string;
  readonly port: number;
  /** Client secrets, WebRTC/SIP calls and their sidebands (calls.ts). */
  readonly calls: SimCalls;
  /** Every connection accepted so far (open or closed). */
  readonly connections: readonly SimConnection[];
  onConnection(cb: (c: SimConnection) => void): void;
  close(): Promise<void>;
}
