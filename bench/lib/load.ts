import { Histogram } from './histogram.js';
import { clientFrame, OP_TEXT, RawWsClient } from './ws-raw.js';
import { appendEvent, APPEND_TS_OFFSET, benchEvent, nowNs, readTs, rng, SESSION_UPDATE, tsOffset, typeOf, writeTs } from './wire.js';

/**
 * The load generator: N Realtime client sessions on raw sockets. Paced mode streams microphone
 * audio like a live call (one `input_audio_buffer.append` every 20–40 ms of real-sized base64
 * PCM16, a commit + `response.create` every few seconds); throughput mode runs closed-loop batches
 * as fast as the path allows. Every server frame's embedded send time gives the upstream → client
 * one-way latency.
 */
export interface LoadTarget {
  readonly host: string;
  readonly port: number;
  /** Path and query, e.g. `/v1/realtime?model=gpt-realtime`. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The session counts as open at the WebSocket upgrade instead of at `session.created` (the
   * Portkey gateway drops what the upstream sends before its client socket is ready).
   */
  readonly readyOnOpen?: boolean;
}

export interface PacedOptions {
  /** Append cadence range (ms of audio per append, sent in real time). Default 20–40. */
  readonly chunkMsMin?: number;
  readonly chunkMsMax?: number;
  /** Mean time between turns (commit + response.create), jittered ±25% per session. Default 4000. */
  readonly turnMs?: number;
  /** Session churn: each session lives 0.5–1.5× this long, then closes and a new one opens. 0 = off. */
  readonly lifetimeMs?: number;
}

export interface ThroughputOptions {
  /** Appends per closed-loop batch, each of `chunkMs` audio (default 8 × 40 ms). */
  readonly appendsPerBatch?: number;
  readonly chunkMs?: number;
}

export interface LoadStats {
  opened: number;
  failed: number;
  unexpectedCloses: number;
  framesSent: number;
  bytesSent: number;
  framesRecv: number;
  bytesRecv: number;
  appends: number;
  audioDeltas: number;
  transcriptDeltas: number;
  responsesRequested: number;
  responsesDone: number;
  errorEvents: number;
  /** Responses requested but never finished when traffic stopped. */
  stalled: number;
  /** Sessions closed and replaced by churn. */
  churned: number;
  errorCodes: Record<string, number>;
  failReasons: Record<string, number>;
  closeCodes: Record<string, number>;
}

export function emptyLoadStats(): LoadStats {
  return {
    opened: 0,
    failed: 0,
    unexpectedCloses: 0,
    framesSent: 0,
    bytesSent: 0,
    framesRecv: 0,
    bytesRecv: 0,
    appends: 0,
    audioDeltas: 0,
    transcriptDeltas: 0,
    responsesRequested: 0,
    responsesDone: 0,
    errorEvents: 0,
    stalled: 0,
    churned: 0,
    errorCodes: {},
    failReasons: {},
    closeCodes: {},
  };
}

interface AppendTemplate {
  readonly frame: Buffer;
  readonly tsAt: number;
}

function controlFrame(type: string, letter: string, body: Record<string, unknown>): AppendTemplate {
  const payload = benchEvent(type, letter, body);
  const frame = clientFrame(OP_TEXT, payload);
  return { frame, tsAt: frame.length - payload.length + tsOffset(type) };
}

function stamped(t: AppendTemplate): Buffer {
  const f = Buffer.allocUnsafe(t.frame.length);
  t.frame.copy(f);
  writeTs(f, t.tsAt, nowNs());
  return f;
}

const bump = (rec: Record<string, number>, key: string) => {
  rec[key] = (rec[key] ?? 0) + 1;
};

type Mode = 'idle' | 'paced' | 'throughput';

class LoadSession {
  readonly n: number;
  readonly gen: LoadGenerator;
  client: RawWsClient;
  ready = false;
  closing = false;
  closed = false;
  outstanding = 0;
  timer: NodeJS.Timeout | null = null;
  chunkMs = 40;
  ticksPerTurn = 100;
  tick = 0;
  readonly #onReady: (ok: boolean) => void;
  #closedResolve: (() => void) | null = null;
  readonly closedPromise: Promise<void>;

  constructor(gen: LoadGenerator, n: number, target: LoadTarget, onReady: (ok: boolean) => void) {
    this.gen = gen;
    this.n = n;
    this.#onReady = onReady;
    this.closedPromise = new Promise((r) => (this.#closedResolve = r));
    this.client = new RawWsClient(
      { host: target.host, port: target.port, path: target.path, headers: target.headers },
      {
        onOpen: () => {
          if (target.readyOnOpen && !this.ready) {
            this.ready = true;
            gen.stats.opened++;
            this.#onReady(true);
          }
        },
        onText: (p) => this.#onText(p),
        onClose: (code) => this.#onClose(code),
        onFail: (reason, status) => {
          gen.stats.failed++;
          bump(gen.stats.failReasons, status === null ? reason : `http ${status}`);
          this.closed = true;
          this.#closedResolve?.();
          this.#onReady(false);
        },
      },
    );
  }

  send(frame: Buffer, frames = 1): void {
    if (this.closed || this.closing) return;
    this.gen.stats.framesSent += frames;
    this.gen.stats.bytesSent += frame.length;
    this.client.write(frame);
  }

  #onText(p: Buffer): void {
    const gen = this.gen;
    const stats = gen.stats;
    stats.framesRecv++;
    stats.bytesRecv += p.length;
    const type = typeOf(p);
    if (gen.recording) {
      const ts = readTs(p, gen.offsetOf(type));
      if (ts > 0) gen.latency.record((nowNs() - ts) / 1000);
    }
    switch (type) {
      case 'response.output_audio.delta':
        stats.audioDeltas++;
        return;
      case 'response.output_audio_transcript.delta':
        stats.transcriptDeltas++;
        return;
      case 'response.done':
        stats.responsesDone++;
        if (this.outstanding > 0) this.outstanding--;
        if (gen.mode === 'throughput' && gen.running) this.sendBatch();
        return;
      case 'session.created':
        if (!this.ready) {
          this.ready = true;
          stats.opened++;
          this.#onReady(true);
        }
        return;
      case 'error': {
        stats.errorEvents++;
        let code = 'unknown';
        try {
          const e = JSON.parse(p.toString('utf8')) as { error?: { code?: unknown } };
          if (typeof e.error?.code === 'string') code = e.error.code;
        } catch {
          code = 'unparseable';
        }
        bump(stats.errorCodes, code);
        return;
      }
      default:
    }
  }

  #onClose(code: number): void {
    this.closed = true;
    this.stopTimer();
    if (!this.closing) {
      this.gen.stats.unexpectedCloses++;
      bump(this.gen.stats.closeCodes, String(code));
      if (!this.ready) this.#onReady(false);
    }
    this.#closedResolve?.();
  }

  stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  startPaced(r: () => number, o: Required<PacedOptions>): void {
    this.send(this.gen.sessionUpdate());
    if (o.lifetimeMs > 0) {
      const life = setTimeout(() => this.gen.replace(this), o.lifetimeMs * (0.5 + r()));
      life.unref();
    }
    this.chunkMs = o.chunkMsMin + Math.floor(r() * (o.chunkMsMax - o.chunkMsMin + 1));
    const turnMs = o.turnMs * (0.75 + r() * 0.5);
    this.ticksPerTurn = Math.max(2, Math.round(turnMs / this.chunkMs));
    this.tick = Math.floor(r() * this.ticksPerTurn);
    const tpl = this.gen.appendTemplate(this.chunkMs);
    const tickFn = () => {
      if (this.closed || !this.gen.running) return;
      this.gen.stats.appends++;
      this.send(stamped(tpl));
      if (++this.tick >= this.ticksPerTurn) {
        this.tick = 0;
        if (this.outstanding === 0) {
          this.outstanding++;
          this.gen.stats.responsesRequested++;
          this.send(Buffer.concat([stamped(this.gen.commit), stamped(this.gen.responseCreate)]), 2);
        }
      }
    };
    // Random phase so sessions do not tick in lockstep.
    this.timer = setTimeout(() => {
      if (this.closed || !this.gen.running) return;
      tickFn();
      this.timer = setInterval(tickFn, this.chunkMs);
    }, Math.floor(r() * this.chunkMs));
  }

  sendBatch(): void {
    const gen = this.gen;
    const parts: Buffer[] = [];
    for (let i = 0; i < gen.throughputAppends; i++) parts.push(stamped(gen.throughputTemplate));
    parts.push(stamped(gen.responseCreate));
    gen.stats.appends += gen.throughputAppends;
    gen.stats.responsesRequested++;
    this.outstanding++;
    this.send(Buffer.concat(parts), parts.length);
  }

  close(): Promise<void> {
    this.stopTimer();
    if (this.closed) return Promise.resolve();
    this.closing = true;
    this.client.close(1000);
    return this.closedPromise;
  }
}

export class LoadGenerator {
  readonly target: LoadTarget;
  stats: LoadStats = emptyLoadStats();
  readonly latency = new Histogram();
  recording = false;
  running = false;
  mode: Mode = 'idle';
  throughputAppends = 8;
  throughputTemplate: AppendTemplate;
  readonly commit = controlFrame('input_audio_buffer.commit', 'c', {});
  readonly responseCreate = controlFrame('response.create', 'c', { response: { output_modalities: ['audio'] } });
  readonly #sessionUpdate = controlFrame('session.update', 'c', SESSION_UPDATE);
  readonly #appendTemplates = new Map<number, AppendTemplate>();
  readonly #offsets = new Map<string, number>();
  #sessions: LoadSession[] = [];
  #next = 0;

  constructor(target: LoadTarget) {
    this.target = target;
    this.throughputTemplate = this.appendTemplate(40);
  }

  get sessions(): number {
    return this.#sessions.filter((s) => !s.closed).length;
  }

  offsetOf(type: string): number {
    let o = this.#offsets.get(type);
    if (o === undefined) {
      o = tsOffset(type);
      this.#offsets.set(type, o);
    }
    return o;
  }

  sessionUpdate(): Buffer {
    return stamped(this.#sessionUpdate);
  }

  appendTemplate(ms: number): AppendTemplate {
    let t = this.#appendTemplates.get(ms);
    if (!t) {
      const payload = appendEvent(ms, ms);
      const frame = clientFrame(OP_TEXT, payload);
      t = { frame, tsAt: frame.length - payload.length + APPEND_TS_OFFSET };
      this.#appendTemplates.set(ms, t);
    }
    return t;
  }

  /**
   * Opens `n` sessions at `perSecond` and resolves once each has its `session.created` (or failed),
   * or at `timeoutMs`. With `maxInFlight`, no more than that many handshakes are pending at once: a
   * relay that falls behind slows the opening down instead of failing handshakes; sessions not
   * started by the deadline are not opened (`opened + failed < n`).
   */
  async open(n: number, perSecond = 1000, timeoutMs = 30_000, maxInFlight = Number.POSITIVE_INFINITY): Promise<{ opened: number; failed: number }> {
    let ok = 0;
    let bad = 0;
    let inFlight = 0;
    // Woken whenever a handshake settles: the pacing loop waits on it when `maxInFlight` are pending.
    let slotFreed: (() => void) | null = null;
    const deadline = performance.now() + timeoutMs;
    const batch = Math.max(1, Math.round(perSecond / 100));
    const waits: Promise<void>[] = [];
    const start = () => {
      inFlight++;
      waits.push(
        new Promise<void>((resolve) => {
          const s = new LoadSession(this, ++this.#next, this.target, (good) => {
            if (good) ok++;
            else bad++;
            inFlight--;
            slotFreed?.();
            resolve();
          });
          this.#sessions.push(s);
        }),
      );
    };
    let started = 0;
    while (started < n && performance.now() < deadline) {
      const batchEnd = Math.min(n, started + batch);
      while (started < batchEnd && performance.now() < deadline) {
        if (inFlight >= maxInFlight) {
          const left = deadline - performance.now();
          await new Promise<void>((r) => {
            const bound = setTimeout(r, left);
            slotFreed = () => {
              clearTimeout(bound);
              r();
            };
          });
          slotFreed = null;
          continue;
        }
        start();
        started++;
      }
      if (started < n) await new Promise((r) => setTimeout(r, 10));
    }
    const left = Math.max(0, deadline - performance.now());
    await Promise.race([Promise.all(waits), new Promise((r) => setTimeout(r, left))]);
    return { opened: ok, failed: bad };
  }

  startPaced(options: PacedOptions = {}, seed = 42): void {
    const o: Required<PacedOptions> = { chunkMsMin: 20, chunkMsMax: 40, turnMs: 4000, lifetimeMs: 0, ...options };
    const r = rng(seed);
    this.#paced = { r, o };
    this.mode = 'paced';
    this.running = true;
    for (const s of this.#sessions) if (s.ready && !s.closed) s.startPaced(r, o);
  }

  #paced: { r: () => number; o: Required<PacedOptions> } | null = null;

  /** Churn: closes `s` and opens a fresh paced session in its place. */
  replace(s: LoadSession): void {
    if (!this.running || s.closed || s.closing) return;
    this.stats.churned++;
    void s.close();
    const idx = this.#sessions.indexOf(s);
    const fresh = new LoadSession(this, ++this.#next, this.target, (ok) => {
      if (ok && this.running && this.mode === 'paced' && this.#paced) fresh.startPaced(this.#paced.r, this.#paced.o);
    });
    if (idx >= 0) this.#sessions[idx] = fresh;
    else this.#sessions.push(fresh);
  }

  startThroughput(options: ThroughputOptions = {}): void {
    this.throughputAppends = options.appendsPerBatch ?? 8;
    this.throughputTemplate = this.appendTemplate(options.chunkMs ?? 40);
    this.mode = 'throughput';
    this.running = true;
    for (const s of this.#sessions) if (s.ready && !s.closed) s.sendBatch();
  }

  /** Stops sending; waits up to `graceMs` for outstanding responses, then counts the rest as stalled. */
  async stopTraffic(graceMs = 10_000): Promise<void> {
    this.running = false;
    for (const s of this.#sessions) s.stopTimer();
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && this.#sessions.some((s) => !s.closed && s.outstanding > 0)) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const s of this.#sessions) {
      if (!s.closed) this.stats.stalled += s.outstanding;
      s.outstanding = 0;
    }
    this.mode = 'idle';
  }

  async closeAll(timeoutMs = 5000): Promise<void> {
    const all = this.#sessions;
    this.#sessions = [];
    await Promise.race([Promise.all(all.map((s) => s.close())), new Promise((r) => setTimeout(r, timeoutMs))]);
    for (const s of all) if (!s.closed) s.client.destroy();
  }

  resetStats(): void {
    this.stats = emptyLoadStats();
    this.latency.reset();
  }
}
