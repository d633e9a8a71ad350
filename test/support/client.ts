import WebSocket from 'ws';

export interface ReceivedEvent {
  readonly type: string;
  readonly [key: string]: unknown;
}

export interface ClientOptions {
  readonly headers?: Record<string, string>;
  readonly protocols?: string[];
  readonly ca?: string;
}

/** A plain `ws` Realtime client for tests: records every event, waits for types, reports the close. */
export class TestClient {
  readonly ws: WebSocket;
  readonly events: ReceivedEvent[] = [];
  /** `performance.now()` when each event of `events` arrived (same index). */
  readonly receivedAt: number[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  /** HTTP status when the upgrade was refused. */
  readonly refused: Promise<number>;
  #waiters: { pred: (e: ReceivedEvent) => boolean; resolve: (e: ReceivedEvent) => void }[] = [];

  constructor(url: string, options: ClientOptions = {}) {
    this.ws = new WebSocket(url, options.protocols ?? [], {
      headers: options.headers ?? {},
      ...(options.ca ? { ca: options.ca } : {}),
      maxPayload: 256 * 1024 * 1024,
      // Every wait has a bound: an upgrade nobody answers fails `opened` with ws's handshake timeout
      // instead of leaving a test to its own (much longer) timeout with no clue where it hung.
      handshakeTimeout: 20_000,
    });
    let refuse: (err: Error) => void = () => undefined;
    this.opened = new Promise((resolve, reject) => {
      refuse = reject;
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
    this.refused = new Promise((resolve) => {
      this.ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        // With this listener ws emits no 'error' for a refused upgrade: without this, `opened` (and
        // every `await tp.client()`) would wait forever on a refusal.
        refuse(new Error(`upgrade refused with HTTP ${res.statusCode ?? 0}`));
      });
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') }));
    });
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const at = performance.now();
      const event = JSON.parse((data as Buffer).toString('utf8')) as ReceivedEvent;
      this.events.push(event);
      this.receivedAt.push(at);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.pred(event)) return true;
        w.resolve(event);
        return false;
      });
    });
  }

  send(event: object | string): void {
    this.ws.send(typeof event === 'string' ? event : JSON.stringify(event));
  }

  /** Resolves with the first event (already received or future) matching `pred`. */
  waitFor(pred: (e: ReceivedEvent) => boolean, timeoutMs = 5000, label = 'event'): Promise<ReceivedEvent> {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${label}; got ${this.events.map((e) => e.type).join(', ')}`)), timeoutMs);
      this.#waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  next(type: string, timeoutMs = 5000): Promise<ReceivedEvent> {
    return this.waitFor((e) => e.type === type, timeoutMs, type);
  }

  /** Waits for the n-th (1-based) event of a type. */
  nth(type: string, n: number, timeoutMs = 5000): Promise<ReceivedEvent> {
    return this.waitFor(() => this.events.filter((e) => e.type === type).length >= n, timeoutMs, `${n}× ${type}`).then(
      () => this.events.filter((e) => e.type === type)[n - 1]!,
    );
  }

  /** `performance.now()` when the first event of `type` arrived (NaN when none did). */
  arrivalOf(type: string): number {
    const i = this.events.findIndex((e) => e.type === type);
    return i < 0 ? NaN : this.receivedAt[i]!;
  }

  ofType(type: string): ReceivedEvent[] {
    return this.events.filter((e) => e.type === type);
  }

  /** Sends a user text item and asks for a response. */
  say(text: string, response: object = {}): void {
    this.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
    this.send({ type: 'response.create', response });
  }

  close(code = 1000): void {
    this.ws.close(code);
  }
}

/** 24 kHz PCM16 mono: a voiced tone (speech for VAD purposes) followed by silence. */
export function speechThenSilence(speechMs: number, silenceMs: number): Buffer {
  const rate = 24_000;
  const n = Math.round(((speechMs + silenceMs) * rate) / 1000);
  const speechN = Math.round((speechMs * rate) / 1000);
  const buf = Buffer.alloc(n * 2);
  for (let i = 0; i < speechN; i++) {
    const t = i / rate;
    const s = 0.5 * Math.sin(2 * Math.PI * 180 * t) + 0.3 * Math.sin(2 * Math.PI * 360 * t) + 0.2 * Math.sin(2 * Math.PI * 540 * t);
    buf.writeInt16LE(Math.round(s * 12_000), i * 2);
  }
  return buf;
}

/** Splits PCM into base64 `input_audio_buffer.append` events of `chunkMs`. */
export function appendEvents(pcm: Buffer, chunkMs = 100): { type: 'input_audio_buffer.append'; audio: string }[] {
  const step = 48 * chunkMs;
  const out: { type: 'input_audio_buffer.append'; audio: string }[] = [];
  for (let i = 0; i < pcm.length; i += step) out.push({ type: 'input_audio_buffer.append', audio: pcm.subarray(i, i + step).toString('base64') });
  return out;
}
