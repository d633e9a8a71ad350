import type { RawData, WebSocket } from 'ws';
import type { RealtimeTranslationSession } from 'openai/resources/realtime/realtime';
import { invalidType, invalidValue, SimError, unknownParameter } from './errors.js';
import { newId } from './wire.js';
import type { ReceivedEvent, SentEvent, SimConnection } from './types.js';

type Json = Record<string, unknown>;

/** What a translation session's client may send (openai `RealtimeTranslationClientEvent`). */
const TRANSLATION_CLIENT_TYPES = ['session.update', 'session.input_audio_buffer.append', 'session.close'] as const;
/** The engine translates 200 ms frames of 24 kHz PCM16 mono (48 bytes a millisecond). */
export const TRANSLATION_FRAME_MS = 200;
const BYTES_PER_MS = 48;
const FRAME_BYTES = TRANSLATION_FRAME_MS * BYTES_PER_MS;

/** What one translated frame says: its source-language transcript (when transcription is on) and its translation. */
export interface TranslatedFrame {
  readonly source: string;
  readonly translated: string;
}

/** Decides each frame's transcripts (frame: 0-based frame number; elapsedMs: where it starts). */
export type Translator = (input: { readonly frame: number; readonly elapsedMs: number }) => TranslatedFrame;

export const defaultTranslator: Translator = ({ frame }) => ({ source: `(source frame ${frame})`, translated: `(translated frame ${frame}) ` });

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(obj: Json, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) throw unknownParameter(path ? `${path}.${k}` : k);
}

function objectAt(v: unknown, path: string): Json {
  if (!isObject(v)) throw invalidType(path, 'an object', v);
  return v;
}

/**
 * A simulated translation session (`/v1/realtime/translations`): `session.created` on open; appended
 * audio translated 200 ms frame by frame (input transcript delta when `audio.input.transcription` is
 * set, output transcript delta, output audio delta of the frame's length); `session.close` flushes a
 * partial frame, sends `session.closed` and closes 1000. Realtime events are refused with the
 * upstream's `invalid_value`. No usage is reported (the live API reports none for translation).
 */
export class TranslationConnection implements SimConnection {
  readonly id = newId('simconn', 12);
  readonly headers: Readonly<Record<string, string>>;
  readonly url: string;
  readonly received: ReceivedEvent[] = [];
  readonly sent: SentEvent[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #ws: WebSocket;
  readonly #translate: Translator;
  /** Keep `received` and `sent` (SimulatorOptions.keepHistory). */
  readonly #keepHistory: boolean;
  #session: RealtimeTranslationSession | null = null;
  #pending = 0;
  #frames = 0;
  #isClosed = false;
  #frozen = false;
  #dropAfter: number | null = null;

  constructor(ws: WebSocket, headers: Record<string, string>, url: string, translate: Translator, keepHistory = true) {
    this.#ws = ws;
    this.#keepHistory = keepHistory;
    this.headers = headers;
    this.url = url;
    this.#translate = translate;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.#isClosed = true;
        resolve({ code, reason: reason.toString('utf8') });
      });
    });
    ws.on('error', () => undefined);
  }

  setBrain(): void {
    // A translation session has no responses for a brain to decide.
  }

  drop(): void {
    this.#isClosed = true;
    this.#ws.terminate();
  }

  closeWith(code: number, reason: string): void {
    this.#isClosed = true;
    this.#ws.close(code, reason);
  }

  freeze(): void {
    this.#frozen = true;
    this.#ws.pause();
  }

  expire(): void {
    this.#send({ type: 'error', event_id: newId('event'), error: { type: 'invalid_request_error', code: 'session_expired', message: 'Your session hit the maximum duration of 60 minutes.', param: null, event_id: null } });
    this.closeWith(1001, 'session expired');
  }

  /** Terminate abruptly right after `n` more output audio deltas. */
  dropAfterDeltas(n: number): void {
    this.#dropAfter = n;
    if (n <= 0) this.drop();
  }

  start(model: string, lifetimeSec: number): void {
    this.#session = {
      id: newId('sess'),
      type: 'translation',
      model,
      expires_at: Math.floor(Date.now() / 1000) + lifetimeSec,
      audio: { input: { transcription: null, noise_reduction: null }, output: { language: 'es' } },
    };
    this.#ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    this.#send({ type: 'session.created', event_id: newId('event'), session: this.#session });
  }

  #send(event: Json & { type: string }): void {
    if (this.#isClosed || this.#frozen) return;
    this.#ws.send(JSON.stringify(event));
    if (this.#keepHistory) this.sent.push({ t: performance.now(), type: event.type, responseId: null });
  }

  #error(err: SimError, eventId: string | null): void {
    this.#send({ type: 'error', event_id: newId('event'), error: { type: err.type, code: err.code, message: err.message, param: err.param, event_id: eventId } });
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.#isClosed || this.#frozen) return;
    if (isBinary) return this.#error(new SimError('invalid_event', 'Expected a text WebSocket message, but received a binary message.'), null);
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(new Uint8Array(data)).toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return this.#error(new SimError('invalid_json', 'We could not parse the JSON body of your request.'), null);
    }
    if (!isObject(parsed)) return this.#error(new SimError('invalid_event', 'The event must be a JSON object.'), null);
    const eventId = typeof parsed['event_id'] === 'string' ? parsed['event_id'] : null;
    const type = parsed['type'];
    if (this.#keepHistory) this.received.push({ t: performance.now(), type: typeof type === 'string' ? type : '', event: parsed });
    if (typeof type !== 'string' || !(TRANSLATION_CLIENT_TYPES as readonly string[]).includes(type)) {
      return this.#error(invalidValue('type', type, TRANSLATION_CLIENT_TYPES), eventId);
    }
    try {
      if (type === 'session.update') this.#onUpdate(parsed);
      else if (type === 'session.input_audio_buffer.append') this.#onAppend(parsed);
      else this.#onClose();
    } catch (err) {
      this.#error(err instanceof SimError ? err : new SimError('server_error', 'The simulator failed to process the event.', null, 'server_error'), eventId);
    }
  }

  #onUpdate(e: Json): void {
    checkKeys(e, ['type', 'event_id', 'session'], '');
    const session = objectAt(e['session'], 'session');
    checkKeys(session, ['audio'], 'session');
    const current = this.#session!;
    const audio = { input: { ...current.audio.input }, output: { ...current.audio.output } };
    if (session['audio'] !== undefined) {
      const a = objectAt(session['audio'], 'session.audio');
      checkKeys(a, ['input', 'output'], 'session.audio');
      if (a['input'] !== undefined) {
        const input = objectAt(a['input'], 'session.audio.input');
        checkKeys(input, ['transcription', 'noise_reduction'], 'session.audio.input');
        const tx = input['transcription'];
        if (tx !== undefined) {
          if (tx !== null && (!isObject(tx) || typeof tx['model'] !== 'string')) throw invalidType('session.audio.input.transcription.model', 'a string', isObject(tx) ? tx['model'] : tx);
          audio.input.transcription = tx === null ? null : { model: tx['model'] as string };
        }
        const nr = input['noise_reduction'];
        if (nr !== undefined) {
          if (nr !== null && (!isObject(nr) || (nr['type'] !== 'near_field' && nr['type'] !== 'far_field'))) throw invalidValue('session.audio.input.noise_reduction.type', isObject(nr) ? nr['type'] : nr, ['near_field', 'far_field']);
          audio.input.noise_reduction = nr === null ? null : { type: nr['type'] as 'near_field' | 'far_field', strength: typeof nr['strength'] === 'number' ? nr['strength'] : 1 };
        }
      }
      if (a['output'] !== undefined) {
        const output = objectAt(a['output'], 'session.audio.output');
        checkKeys(output, ['language'], 'session.audio.output');
        if (output['language'] !== undefined) {
          if (typeof output['language'] !== 'string') throw invalidType('session.audio.output.language', 'a string', output['language']);
          audio.output.language = output['language'];
        }
      }
    }
    this.#session = { ...current, audio };
    this.#send({ type: 'session.updated', event_id: newId('event'), session: this.#session });
  }

  #onAppend(e: Json): void {
    checkKeys(e, ['type', 'event_id', 'audio'], '');
    const audio = e['audio'];
    if (typeof audio !== 'string') throw invalidType('audio', 'a string', audio);
    this.#pending += Buffer.from(audio, 'base64').length;
    while (this.#pending >= FRAME_BYTES) {
      this.#pending -= FRAME_BYTES;
      this.#emitFrame(TRANSLATION_FRAME_MS);
    }
  }

  #emitFrame(ms: number): void {
    const frame = this.#frames++;
    const elapsedMs = frame * TRANSLATION_FRAME_MS;
    const said = this.#translate({ frame, elapsedMs });
    if (this.#session?.audio.input?.transcription) this.#send({ type: 'session.input_transcript.delta', event_id: newId('event'), delta: said.source, elapsed_ms: elapsedMs });
    this.#send({ type: 'session.output_transcript.delta', event_id: newId('event'), delta: said.translated, elapsed_ms: elapsedMs });
    this.#send({ type: 'session.output_audio.delta', event_id: newId('event'), delta: Buffer.alloc(ms * BYTES_PER_MS).toString('base64'), elapsed_ms: elapsedMs, format: 'pcm16', sample_rate: 24_000, channels: 1 });
    if (this.#dropAfter !== null && --this.#dropAfter <= 0) this.drop();
  }

  /** Flushes a partial frame, then `session.closed` and a normal close. */
  #onClose(): void {
    if (this.#pending > 0) {
      const ms = Math.ceil(this.#pending / BYTES_PER_MS);
      this.#pending = 0;
      this.#emitFrame(ms);
    }
    this.#send({ type: 'session.closed', event_id: newId('event') });
    this.closeWith(1000, '');
  }
}
