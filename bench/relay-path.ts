import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { syncBuiltinESMExports } from 'node:module';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { parse as parseYaml } from 'yaml';
import { createModules } from '../src/app/modules.js';
import { compileConfig } from '../src/config/compile.js';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/logging.js';
import { ChainTemplate } from '../src/pipeline/chain.js';
import type { Clock } from '../src/pipeline/filter.js';
import { ProxyError } from '../src/protocol/errors.js';
import { RelaySession, type ClientSocket, type ClientSocketData } from '../src/relay/session.js';
import { RELAY_NODE_FLAGS } from '../src/server/node-flags.js';
import { TenantResolver } from '../src/tenants/resolver.js';
import { upstreamTarget } from '../src/upstream/dial.js';
import { compileChild } from './lib/compiled.js';
import { REPO_ROOT } from './lib/ipc.js';
import { summarisePairs, type PairedSummary } from './lib/paired.js';
import { profileStart, profileStop, summarise } from './lib/profile.js';
import { appendEvent, benchEvent, pcm16, rng, SESSION_UPDATE, tsOffset, writeTs } from './lib/wire.js';

/**
 * `npx tsx bench/relay-path.ts [--baseline DIR] [--pairs 12] [--warmup 3] [--sessions 100] [--turns 3] [--cpu-prof]`:
 * the CPU the governed relay path costs per event, by event kind, in one process with no sockets.
 * Not a test: numbers only. See bench/README.md, "Relay path in-process".
 *
 * Each tree runs in a child process of its own (compiled: the tree's dist/ with this script bundled
 * around it, as held-deltas.ts). A child builds the governed configuration exactly as the proxy
 * does (bench/config/proxy-governed.yaml: SQLite metering, the shipped policy, traces exported over
 * OTLP/HTTP to a sink in this process, Prometheus metrics) and opens real `RelaySession`s: the client
 * side is a stand-in for the uWS socket (sends counted, never buffered), the upstream side a
 * stand-in for the TCP socket (`net.connect` answers with an in-memory duplex that speaks the
 * handshake and the fake upstream's protocol), so the session's own handshake, frame reader,
 * framing, filter chain, client flush and span export all run as in production; only the kernel's
 * share (the socket syscalls) is missing.
 *
 * Events are dispatched a few per event-loop turn, one immediate each (as uWS message callbacks and
 * socket reads are, with the microtasks each queues drained after it): an event's cost is the
 * process's CPU time from its dispatch to the next one's, less the mean of an empty step run beside
 * them (the bench's own share). The round's CPU (process.cpuUsage: all threads, GC helpers and the
 * span-export thread included) over its events is printed too, with and without the driver's work.
 */

const OTLP_PORT_PLACEHOLDER = 'http://127.0.0.1:9/v1/traces';
/** The address the sessions dial; `net.connect` to it is answered in memory. */
const UPSTREAM_HOST = '127.0.0.1';
const UPSTREAM_PORT = 9;
const TENANT_KEY = 'rpk_bench_0123456789abcdef';
const MODEL = 'gpt-realtime';

interface RoundRequest {
  readonly sessions: number;
  readonly turns: number;
  readonly appendsPerTurn: number;
  /** Events per event-loop turn. */
  readonly batch: number;
  readonly seed: number;
}

interface KindCost {
  count: number;
  /** Sum of the events' turn times (ns), the empty turn not yet subtracted. */
  ns: number;
}

interface RoundResult {
  readonly events: number;
  readonly cpuUserNs: number;
  readonly cpuSystemNs: number;
  readonly wallNs: number;
  /** Mean CPU time of an empty step in a batch (ns), subtracted from each event's. */
  readonly emptyStepNs: number;
  /** CPU time the driver spent preparing the steps (ns): inside the round's CPU, not the relay's. */
  readonly driverNs: number;
  readonly kinds: Record<string, KindCost>;
  /** Session open (admission, chain, handshake) and close (settle, span end), per session (ns of wall time). */
  readonly openNsPerSession: number;
  readonly closeNsPerSession: number;
  readonly clientBytes: number;
  readonly upstreamBytes: number;
}

// ---------------------------------------------------------------------------------------------
// Child: one tree's relay path.
// ---------------------------------------------------------------------------------------------

const USAGE = {
  total_tokens: 1312,
  input_tokens: 812,
  output_tokens: 500,
  input_token_details: { text_tokens: 212, audio_tokens: 600, image_tokens: 0, cached_tokens: 128, cached_tokens_details: { text_tokens: 128, audio_tokens: 0, image_tokens: 0 } },
  output_token_details: { text_tokens: 100, audio_tokens: 400 },
};
const FORMAT = { type: 'audio/pcm', rate: 24_000 };
const WORDS = ['Sure, ', 'here ', 'is ', 'the ', 'answer ', 'you ', 'asked ', 'for. '];
/**
 * Every third turn's transcript (one delta per word): numbers the output guardrail holds back while
 * they may still become a card number (pii `card`), each released with the delta after it. Those
 * deltas get rows of their own (`MemoryUpstream.numberRows`): the hold and the release are not the plain delta's path.
 */
const NUMBER_WORDS = ['Your ', 'order ', 'is ', '4821 ', '7730, ', 'call ', 'us ', 'on ', '555 ', '0142 ', 'any ', 'time. '];
const NUMBERS_EVERY = 3;
const AUDIO_DELTA_B64 = pcm16(40, 7).toString('base64');

/** A server (unmasked) text frame. */
function serverFrame(payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, n]) : n < 65536 ? Buffer.from([0x81, 126, n >> 8, n & 255]) : Buffer.alloc(10);
  if (n >= 65536) {
    head[0] = 0x81;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

function serverEvent(type: string, body: Record<string, unknown>): Buffer {
  return serverFrame(benchEvent(type, 'e', body));
}

function sessionObject(id: string): Record<string, unknown> {
  return {
    type: 'realtime',
    object: 'realtime.session',
    id,
    model: MODEL,
    output_modalities: ['audio'],
    instructions: SESSION_UPDATE.session.instructions,
    tools: [],
    tool_choice: 'auto',
    max_output_tokens: 'inf',
    tracing: null,
    truncation: 'auto',
    prompt: null,
    expires_at: 2_000_000_000,
    audio: {
      input: { format: FORMAT, transcription: null, noise_reduction: null, turn_detection: null },
      output: { format: FORMAT, voice: 'marin', speed: 1 },
    },
    include: null,
  };
}

/** The type of a client event's payload (control frames only: a few per turn). */
function typeOfPayload(payload: Buffer): { type: string; event: Record<string, unknown> } {
  const event = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
  return { type: typeof event['type'] === 'string' ? event['type'] : '', event };
}

const APPEND_MARK = Buffer.from('"input_audio_buffer.append"', 'latin1');

/**
 * The upstream's end of one session's socket: answers the upgrade, reads the relay's frames (appends
 * are only counted; other events are kept for `react`, outside the measured turns) and queues what
 * the fake upstream (bench/fake-upstream.ts) would answer. The driver delivers the queue one frame
 * per event-loop turn.
 */
class MemoryUpstream extends Duplex {
  readonly n: number;
  /** Server frames the driver delivers, in order. */
  readonly queue: Buffer[] = [];
  /** Control events the relay wrote, not yet answered. */
  readonly #inbox: Buffer[] = [];
  #handshake = '';
  #upgraded = false;
  #partial: Buffer | null = null;
  #turns = 0;
  #items = 0;
  bytesIn = 0;
  appends = 0;
  turnDone = true;
  /** The row of a transcript delta of a turn with numbers (by its frame), beside its event type. */
  readonly numberRows = new WeakMap<Buffer, string>();

  constructor(n: number) {
    super({ decodeStrings: true });
    this.n = n;
  }

  setNoDelay(): this {
    return this;
  }

  setTimeout(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.bytesIn += chunk.length;
    if (!this.#upgraded) this.#handshakeBytes(chunk);
    else this.#frames(chunk);
    done();
  }

  override _final(done: (err?: Error | null) => void): void {
    done();
    setImmediate(() => this.push(null));
  }

  #handshakeBytes(chunk: Buffer): void {
    this.#handshake += chunk.toString('latin1');
    const end = this.#handshake.indexOf('\r\n\r\n');
    if (end < 0) return;
    const key = /sec-websocket-key: *([^\r]+)/i.exec(this.#handshake)?.[1] ?? '';
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    this.#upgraded = true;
    // As a socket would: the answer arrives in a later turn.
    setImmediate(() => {
      this.push(Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`, 'latin1'));
      this.queue.push(serverEvent('session.created', { session: sessionObject(`sess_${this.n}`) }));
    });
  }

  /** Client frames (masked, RFC 6455): appends counted in place, anything else copied for `react`. */
  #frames(chunk: Buffer): void {
    const buf = this.#partial ? Buffer.concat([this.#partial, chunk]) : chunk;
    this.#partial = null;
    let at = 0;
    while (buf.length - at >= 2) {
      const opcode = buf[at]! & 0x0f;
      let len = buf[at + 1]! & 0x7f;
      let p = at + 2;
      if (len === 126) {
        if (buf.length - p < 2) break;
        len = buf.readUInt16BE(p);
        p += 2;
      } else if (len === 127) {
        if (buf.length - p < 8) break;
        len = Number(buf.readBigUInt64BE(p));
        p += 8;
      }
      const masked = (buf[at + 1]! & 0x80) !== 0;
      const maskAt = p;
      if (masked) p += 4;
      if (buf.length - p < len) break;
      at = p + len;
      const zeroMask = !masked || buf.readUInt32BE(maskAt) === 0;
      // An append (the relay forwards the client's bytes: `{"type":"input_audio_buffer.append"…`) is only counted.
      if (opcode === 0x1 && zeroMask && len > 8 + APPEND_MARK.length && buf.compare(APPEND_MARK, 0, APPEND_MARK.length, p + 8, p + 8 + APPEND_MARK.length) === 0) {
        this.appends++;
        continue;
      }
      const payload = Buffer.from(buf.subarray(p, p + len));
      if (!zeroMask) for (let i = 0; i < len; i++) payload[i]! ^= buf[maskAt + (i & 3)]!;
      if (opcode === 0x8) {
        // The relay closes: answer with a close frame and the end of the stream.
        this.push(Buffer.from([0x88, 0]));
        this.push(null);
        continue;
      }
      if (opcode !== 0x1) continue;
      if (payload.indexOf(APPEND_MARK) > 0 && payload.indexOf(APPEND_MARK) < 12) this.appends++;
      else this.#inbox.push(payload);
    }
    if (at < buf.length) this.#partial = Buffer.from(buf.subarray(at));
  }

  /** Answers what the relay sent since the last call, as the fake upstream does (outside the measured turns). */
  react(): void {
    for (const payload of this.#inbox.splice(0)) {
      const { type, event } = typeOfPayload(payload);
      switch (type) {
        case 'session.update':
          this.queue.push(serverEvent('session.updated', { session: sessionObject(`sess_${this.n}`) }));
          break;
        case 'input_audio_buffer.commit': {
          const itemId = `item_user_${this.n}_${++this.#items}`;
          const item = { id: itemId, object: 'realtime.item', type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_audio', transcript: null }] };
          this.queue.push(
            serverEvent('input_audio_buffer.committed', { previous_item_id: null, item_id: itemId }),
            serverEvent('conversation.item.added', { previous_item_id: null, item }),
            serverEvent('conversation.item.done', { previous_item_id: null, item }),
          );
          break;
        }
        case 'response.create':
          this.#turn(event);
          break;
        case 'input_audio_buffer.clear':
          // Metering clears what the client left uncommitted as it leaves (the close, not measured).
          this.queue.push(serverEvent('input_audio_buffer.cleared', {}));
          break;
        case 'response.cancel':
        case 'conversation.item.delete':
        case 'conversation.item.truncate':
          throw new Error(`the relay sent ${type} in a bench turn: the stream is no longer the recorded one`);
        default:
          this.queue.push(serverEvent('error', { error: { type: 'invalid_request_error', code: 'invalid_value', message: `Unsupported event type '${type}'.`, param: 'type', event_id: null } }));
      }
    }
  }

  /** The fake upstream's audio turn (bench/fake-upstream.ts buildTurn), echoing the create. */
  #turn(create: Record<string, unknown>): void {
    const asked = (create['response'] ?? {}) as Record<string, unknown>;
    const max = typeof asked['max_output_tokens'] === 'number' ? asked['max_output_tokens'] : 'inf';
    const metadata = typeof asked['metadata'] === 'object' ? asked['metadata'] : null;
    const t = ++this.#turns;
    const responseId = `resp_${this.n}_${t}`;
    const itemId = `item_${this.n}_${t}`;
    const ids = { response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 };
    const inProgressItem = { id: itemId, object: 'realtime.item', type: 'message', status: 'in_progress', role: 'assistant', content: [] };
    const response = (status: string, output: unknown[], usage: unknown) => ({
      object: 'realtime.response',
      id: responseId,
      status,
      status_details: null,
      output,
      conversation_id: `conv_${this.n}`,
      output_modalities: ['audio'],
      max_output_tokens: max,
      audio: { output: { format: FORMAT, voice: 'marin' } },
      usage,
      metadata,
    });
    let transcript = '';
    this.queue.push(
      serverEvent('response.created', { response: response('in_progress', [], null) }),
      serverEvent('response.output_item.added', { response_id: responseId, output_index: 0, item: inProgressItem }),
      serverEvent('conversation.item.added', { previous_item_id: null, item: inProgressItem }),
      serverEvent('response.content_part.added', { ...ids, part: { type: 'audio', transcript: '' } }),
    );
    const audioDelta = serverEvent('response.output_audio.delta', { ...ids, delta: AUDIO_DELTA_B64 });
    const words = t % NUMBERS_EVERY === 0 ? NUMBER_WORDS : WORDS;
    let afterNumber = false;
    for (let i = 0; i < 25; i++) {
      this.queue.push(audioDelta);
      if ((i + 1) % 2 === 0) {
        // The (i - 1) / 2-th word, a whole index (until 2026-12-07 `i / 2`: WORDS[0.5], no delta member at all).
        const word = words[((i - 1) / 2) % words.length]!;
        transcript += word;
        const frame = serverEvent('response.output_audio_transcript.delta', { ...ids, delta: word });
        const number = /\d/.test(word);
        if (number) this.numberRows.set(frame, ' (a number: held)');
        else if (afterNumber) this.numberRows.set(frame, ' (releases a number)');
        afterNumber = number;
        this.queue.push(frame);
      }
    }
    const doneItem = { ...inProgressItem, status: 'completed', content: [{ type: 'output_audio', transcript }] };
    this.queue.push(
      serverEvent('response.output_audio.done', ids),
      serverEvent('response.output_audio_transcript.done', { ...ids, transcript }),
      serverEvent('response.content_part.done', { ...ids, part: { type: 'audio', transcript } }),
      serverEvent('conversation.item.done', { previous_item_id: null, item: doneItem }),
      serverEvent('response.output_item.done', { response_id: responseId, output_index: 0, item: doneItem }),
      serverEvent('response.done', { response: response('completed', [doneItem], USAGE) }),
      serverEvent('rate_limits.updated', { rate_limits: [{ name: 'tokens', limit: 40_000_000, remaining: 39_990_000, reset_seconds: 0.01 }] }),
    );
  }
}

/** The client's uWS socket as the relay uses it: every send written at once, nothing buffered. */
class MemoryClient {
  bytes = 0;
  frames = 0;
  ended = false;
  send(message: Buffer | string): number {
    this.bytes += typeof message === 'string' ? Buffer.byteLength(message) : message.length;
    this.frames++;
    return 1;
  }
  cork(cb: () => void): this {
    cb();
    return this;
  }
  getBufferedAmount(): number {
    return 0;
  }
  end(): void {
    this.ended = true;
  }
  close(): void {
    this.ended = true;
  }
}

/** A client message as uWS hands it over: an ArrayBuffer of exactly the message, the event_id stamped. */
class ClientTemplate {
  readonly type: string;
  readonly #bytes: Uint8Array;
  readonly #tsAt: number;
  #seq = 0;
  constructor(type: string, payload: Buffer) {
    this.type = type;
    this.#bytes = new Uint8Array(payload.length);
    this.#bytes.set(payload);
    this.#tsAt = tsOffset(type);
  }
  /** The same ArrayBuffer each time (the relay copies it, as it must with uWS's), a fresh event_id. */
  next(): ArrayBuffer {
    writeTs(Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset, this.#bytes.length), this.#tsAt, ++this.#seq);
    return this.#bytes.buffer as ArrayBuffer;
  }
}

type Step = { readonly client: ClientTemplate } | { readonly server: true };

interface BenchSession {
  readonly relay: RelaySession;
  readonly upstream: MemoryUpstream;
  readonly client: MemoryClient;
  readonly steps: Generator<Step, void, void>;
  /** The server frame the next `server` step delivers (a fresh buffer, as a socket read is). */
  pending: Buffer | null;
  done: boolean;
}

const CONTROL = {
  sessionUpdate: new ClientTemplate('session.update', benchEvent('session.update', 'c', SESSION_UPDATE)),
  commit: new ClientTemplate('input_audio_buffer.commit', benchEvent('input_audio_buffer.commit', 'c', {})),
  create: new ClientTemplate('response.create', benchEvent('response.create', 'c', { response: { output_modalities: ['audio'] } })),
};
const APPENDS = new Map<number, ClientTemplate>();
function appendTemplate(ms: number): ClientTemplate {
  let t = APPENDS.get(ms);
  if (!t) {
    t = new ClientTemplate('input_audio_buffer.append', appendEvent(ms, ms));
    APPENDS.set(ms, t);
  }
  return t;
}

/**
 * One paced session's stream (bench/lib/load.ts, bench/fake-upstream.ts): session.created, the
 * client's session.update, then per turn `appendsPerTurn` appends of 20–40 ms, commit,
 * response.create, and the answer: its header frames, 25 audio deltas (a transcript delta after
 * every second one) with the client's appends going on between them (one per delta, two every
 * third: 40 ms of output against 20–40 ms appends), its done frames.
 */
function* script(up: MemoryUpstream, turns: number, appendsPerTurn: number, chunkMs: number): Generator<Step, void, void> {
  const append = appendTemplate(chunkMs);
  const drain = function* (): Generator<Step, void, void> {
    while (up.queue.length > 0) yield { server: true };
  };
  yield* drain();
  yield { client: CONTROL.sessionUpdate };
  yield* drain();
  for (let t = 0; t < turns; t++) {
    for (let i = 0; i < appendsPerTurn; i++) yield { client: append };
    yield { client: CONTROL.commit };
    yield* drain();
    yield { client: CONTROL.create };
    let deltas = 0;
    let waited = 0;
    let answered = false;
    while (!answered) {
      if (up.queue.length === 0) {
        // The create is still with the relay (it never is in this configuration): audio goes on.
        if (++waited > 1000) throw new Error('the relay never sent the response.create upstream');
        yield { client: append };
        continue;
      }
      const next = up.queue[0]!;
      yield { server: true };
      if (next.includes('"rate_limits.updated"')) answered = true;
      if (next.includes('"response.output_audio.delta"')) {
        if (up.queue[0]?.includes('"response.output_audio_transcript.delta"')) yield { server: true };
        yield { client: append };
        if (++deltas % 3 === 0) yield { client: append };
      }
    }
  }
}

async function childMain(): Promise<void> {
  const configFile = process.env['RELAY_PATH_CONFIG']!;
  const otlpUrl = process.env['RELAY_PATH_OTLP'] ?? OTLP_PORT_PLACEHOLDER;
  const profileDir = process.env['RELAY_PATH_PROFILE_DIR'] ?? '';
  // Every dial of the sessions is answered in memory; anything else (none expected) connects for real.
  const realConnect = net.connect;
  let nextUpstream: MemoryUpstream | null = null;
  let upstreamCount = 0;
  net.connect = ((...args: unknown[]) => {
    const o = args[0] as { host?: string; port?: number } | undefined;
    if (typeof o === 'object' && o !== null && o.host === UPSTREAM_HOST && o.port === UPSTREAM_PORT) {
      nextUpstream = new MemoryUpstream(++upstreamCount);
      return nextUpstream;
    }
    return (realConnect as (...a: unknown[]) => net.Socket)(...args);
  }) as typeof net.connect;
  syncBuiltinESMExports();

  const doc = (parseYaml(readFileSync(configFile, 'utf8')) ?? {}) as Record<string, unknown>;
  const section = (name: string) => (doc[name] ?? {}) as Record<string, unknown>;
  const input = {
    ...doc,
    server: { ...section('server'), host: '127.0.0.1', port: 0, workers: 1 },
    admin: { ...section('admin'), host: '127.0.0.1', port: 0 },
    upstream: { ...section('upstream'), provider: 'openai', url: `ws://${UPSTREAM_HOST}:${UPSTREAM_PORT}/v1/realtime`, apiKey: 'sk-bench-upstream' },
  };
  const dataDir = mkdtempSync(join(tmpdir(), 'relay-path-'));
  const env = { BENCH_DATA_DIR: dataDir, BENCH_OTLP_URL: otlpUrl };
  const baseDir = dirname(configFile);
  const parsed = parseConfig(input, configFile, env);
  const log = createLogger(parsed.logging.level, pino.destination({ dest: '/dev/null', sync: false }));
  const compiled = await compileConfig(parsed, { file: configFile, baseDir, env, log });
  const config = compiled.config;
  const clock: Clock = { now: () => performance.now(), wall: () => Date.now() };
  const tenants = new TenantResolver(config);
  const tenant = tenants.resolve(TENANT_KEY);
  if (!tenant) throw new Error('the bench tenant is not in the config');
  let open = 0;
  const modules = await createModules({ config, log, tenants, clock, baseDir, sessionsOpen: () => open });
  const template = new ChainTemplate(modules.flatMap((m) => m.filters));
  const headers = new Map([['user-agent', 'relay-path-bench']]);

  async function openSession(n: number, req: RoundRequest, r: () => number): Promise<BenchSession> {
    const query = new Map([['model', MODEL]]);
    const admitted = await template.admit({ tenant: tenant!, model: MODEL, query });
    if (admitted instanceof ProxyError) throw new Error(`admission refused: ${admitted.code}`);
    const client = new MemoryClient();
    const relay = new RelaySession(
      {
        id: `rps_bench_${n}`,
        tenant: tenant!,
        model: admitted.model,
        query: admitted.query,
        target: upstreamTarget(config.upstream, admitted.query, headers),
        config,
        template,
        clock,
        log: log.child({ session: n }),
        admission: admitted.ticket,
        onEnded: () => open--,
      },
      client as unknown as ClientSocket,
    );
    open++;
    nextUpstream = null;
    relay.start();
    const upstream = nextUpstream as MemoryUpstream | null;
    if (!upstream) throw new Error('the session did not dial the in-memory upstream');
    const chunkMs = 20 + Math.floor(r() * 21);
    return { relay, upstream, client, steps: script(upstream, req.turns, req.appendsPerTurn, chunkMs), pending: null, done: false };
  }

  const turn = (): Promise<void> => new Promise((res) => setImmediate(res));

  // The process's CPU time in ns (getrusage: the kernel brings the running thread's account up to
  // date for it, so it is exact to its µs resolution; the other threads' (GC helpers, span export)
  // as of their last tick). Other processes on the machine preempt the bench: wall time would charge
  // their turns to the relay; CPU time does not. (/proc/thread-self/schedstat is only updated at
  // ticks and context switches: too coarse for a step.)
  const cpuNs = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) * 1000;
  };

  /**
   * Runs `steps` as immediates of one event-loop turn and adds each one's time (to the start of the
   * next; the last one's to a closing immediate) to `costs[i]`. Returns the batch's total (ns).
   */
  function batch(steps: readonly (() => void)[], costs: readonly KindCost[] | null): Promise<number> {
    return new Promise((res) => {
      const n = steps.length;
      let first = 0;
      let last = 0;
      for (let i = 0; i < n; i++) {
        setImmediate(() => {
          const now = cpuNs();
          if (i === 0) first = now;
          else if (costs) {
            costs[i - 1]!.ns += now - last;
            costs[i - 1]!.count++;
          }
          last = now;
          steps[i]!();
        });
      }
      setImmediate(() => {
        const now = cpuNs();
        if (costs) {
          costs[n - 1]!.ns += now - last;
          costs[n - 1]!.count++;
        }
        res(now - first);
      });
    });
  }
  let profiling = false;

  async function round(req: RoundRequest): Promise<RoundResult> {
    const r = rng(req.seed);
    const t0 = performance.now();
    const sessions: BenchSession[] = [];
    for (let i = 0; i < req.sessions; i++) sessions.push(await openSession(i, req, r));
    // The upgrade answers arrive a turn later, then the upstream links open.
    for (let i = 0; i < 3; i++) await turn();
    const openNs = (performance.now() - t0) * 1e6;
    // What an event costs is the CPU time from its dispatch to the next one's, in a batch of
    // `req.batch` events per event-loop turn (one immediate each: Node drains the microtasks they
    // queue between immediates, as after every uWS message callback or socket read). Each batch also
    // runs one empty step: their mean, measured beside the events through the round, is the bench's
    // own share of a step, subtracted from every event's.
    const emptyStep: KindCost = { count: 0, ns: 0 };
    const nothing = (): void => undefined;
    const kinds: Record<string, KindCost> = {};
    let events = 0;
    let driverNs = 0;
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    let live = sessions.length;
    let at = 0;
    const dispatches: (() => void)[] = [];
    const costs: KindCost[] = [];
    while (live > 0) {
      const p0 = cpuNs();
      dispatches.length = 0;
      costs.length = 0;
      // One step of each of the next `batch` sessions (round-robin), prepared outside the measured turn.
      for (let tried = 0; dispatches.length < req.batch && tried < sessions.length && live > 0; tried++) {
        const s = sessions[at]!;
        at = (at + 1) % sessions.length;
        if (s.done) continue;
        s.upstream.react();
        const step = s.steps.next();
        if (step.done) {
          s.done = true;
          live--;
          continue;
        }
        let kind: string;
        if ('client' in step.value) {
          const tpl = step.value.client;
          // Its own copy: two sessions in one batch may send the same template.
          const message = tpl.next().slice(0);
          kind = `client ${tpl.type}`;
          dispatches.push(() => s.relay.onClientMessage(message, false));
        } else {
          const frame = s.upstream.queue.shift()!;
          // A fresh buffer, as a socket read is.
          const read = Buffer.allocUnsafe(frame.length);
          frame.copy(read);
          kind = `server ${/"type":"([^"]+)"/.exec(frame.toString('latin1', 0, 96))?.[1] ?? '?'}${s.upstream.numberRows.get(frame) ?? ''}`;
          dispatches.push(() => s.upstream.push(read));
        }
        costs.push((kinds[kind] ??= { count: 0, ns: 0 }));
        events++;
      }
      if (dispatches.length > 0) {
        // The empty step goes in the middle of the batch (not first: the first pays for the turn).
        const at = dispatches.length >> 1;
        dispatches.splice(at, 0, nothing);
        costs.splice(at, 0, emptyStep);
      }
      driverNs += cpuNs() - p0;
      if (dispatches.length > 0) await batch(dispatches, costs);
    }
    const wallNs = (performance.now() - w0) * 1e6;
    const cpu = process.cpuUsage(cpu0);
    const c0 = performance.now();
    let clientBytes = 0;
    let upstreamBytes = 0;
    for (const s of sessions) {
      clientBytes += s.client.bytes;
      upstreamBytes += s.upstream.bytesIn;
      s.relay.onClientClose(1000, '');
    }
    // A session that lingers (metering asks the upstream what became of the uncommitted audio) ends
    // when the upstream answers.
    for (let i = 0; i < 100 && sessions.some((s) => !s.relay.ended); i++) {
      for (const s of sessions) {
        if (s.relay.ended) continue;
        s.upstream.react();
        for (const frame of s.upstream.queue.splice(0)) s.upstream.push(frame);
      }
      await turn();
    }
    if (sessions.some((s) => !s.relay.ended)) throw new Error('a session did not end after its client left');
    for (let i = 0; i < 3; i++) await turn();
    const closeNs = (performance.now() - c0) * 1e6;
    return {
      events,
      cpuUserNs: cpu.user * 1000,
      cpuSystemNs: cpu.system * 1000,
      wallNs,
      emptyStepNs: emptyStep.ns / Math.max(1, emptyStep.count),
      driverNs,
      kinds,
      openNsPerSession: openNs / req.sessions,
      closeNsPerSession: closeNs / req.sessions,
      clientBytes,
      upstreamBytes,
    };
  }

  process.on('message', (m: { round?: RoundRequest; profile?: 'start' | 'stop'; exit?: boolean }) => {
    void (async () => {
      try {
        if (m.round) process.send!({ result: await round(m.round) });
        else if (m.profile === 'start') {
          await profileStart(100);
          profiling = true;
          process.send!({ ok: true });
        } else if (m.profile === 'stop') {
          const profile = await profileStop();
          profiling = false;
          mkdirSync(profileDir, { recursive: true });
          const file = join(profileDir, `relay-path-${process.pid}.cpuprofile`);
          writeFileSync(file, JSON.stringify(profile));
          process.send!({ profile: { file, summary: summarise(profile, 40) } });
        } else if (m.exit) {
          for (const mod of modules) await mod.close?.();
          process.exit(0);
        }
      } catch (err) {
        process.send!({ error: err instanceof Error ? (err.stack ?? err.message) : String(err), profiling });
      }
    })();
  });
  process.send!({ ready: true });
}

// ---------------------------------------------------------------------------------------------
// Parent: compiles each tree, runs the rounds (alternating with --baseline), prints the figures.
// ---------------------------------------------------------------------------------------------

interface Tree {
  readonly label: string;
  readonly root: string;
  child: ChildProcess | null;
  readonly rounds: RoundResult[];
}

function ask<T>(child: ChildProcess, message: object): Promise<T> {
  return new Promise((res, rej) => {
    const onMessage = (m: Record<string, unknown>) => {
      child.off('exit', onExit);
      child.off('message', onMessage);
      if ('error' in m) rej(new Error(String(m['error'])));
      else res(m as T);
    };
    const onExit = (code: number | null) => {
      child.off('message', onMessage);
      rej(new Error(`the bench child exited (${code})`));
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send(message);
  });
}

async function startTree(tree: Tree, otlpUrl: string, profileDir: string): Promise<void> {
  // The script's `../src/` imports resolve next to the script: another tree gets its own copy of
  // this script, so that its bundle runs that tree's dist/ (compiled.ts maps only `<root>/src/`).
  let source = join(REPO_ROOT, 'bench', 'relay-path.ts');
  if (tree.root !== REPO_ROOT) {
    source = join(tree.root, 'bench', 'relay-path.compare.ts');
    copyFileSync(join(REPO_ROOT, 'bench', 'relay-path.ts'), source);
  }
  const script = await compileChild(source, tree.root);
  const child = fork(script, [], {
    execArgv: [...RELAY_NODE_FLAGS],
    env: {
      ...process.env,
      RELAY_PATH_CHILD: '1',
      RELAY_PATH_CONFIG: join(REPO_ROOT, 'bench', 'config', 'proxy-governed.yaml'),
      RELAY_PATH_OTLP: otlpUrl,
      RELAY_PATH_PROFILE_DIR: profileDir,
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  tree.child = child;
  await new Promise<void>((res, rej) => {
    child.once('message', () => res());
    child.once('exit', (code) => rej(new Error(`${tree.label}: the bench child exited (${code}) before it was ready`)));
  });
}

/** The per-event figures of a round (ns per event), by name: `cpu`, `user`, and each kind's. */
function figures(r: RoundResult): Map<string, number> {
  const out = new Map<string, number>();
  out.set('CPU (user + system, all threads)', (r.cpuUserNs + r.cpuSystemNs) / r.events);
  out.set('CPU user', r.cpuUserNs / r.events);
  // The driver's preparation of the steps runs on the same thread, between the measured turns.
  out.set('CPU less the driver', (r.cpuUserNs + r.cpuSystemNs - r.driverNs) / r.events);
  let steps = 0;
  for (const k of Object.values(r.kinds)) steps += k.ns - k.count * r.emptyStepNs;
  out.set('relay steps (all kinds)', steps / r.events);
  for (const [kind, k] of Object.entries(r.kinds)) out.set(kind, k.ns / k.count - r.emptyStepNs);
  return out;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmt = (ns: number) => (Number.isFinite(ns) ? (ns >= 10_000 ? (ns / 1000).toFixed(1) + ' µs' : Math.round(ns) + ' ns') : '–');

async function parentMain(): Promise<void> {
  const { values } = parseArgs({
    options: {
      baseline: { type: 'string' },
      pairs: { type: 'string', default: '12' },
      rounds: { type: 'string' },
      warmup: { type: 'string', default: '3' },
      sessions: { type: 'string', default: '100' },
      turns: { type: 'string', default: '3' },
      'appends-per-turn': { type: 'string', default: '100' },
      batch: { type: 'string', default: '8' },
      'restart-every': { type: 'string', default: '4' },
      'cpu-prof': { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(`npx tsx bench/relay-path.ts [options]
  --baseline DIR        another tree (its own built copy: src/, dist/ built here); rounds alternate AB, BA, …
                        and the paired ratios (this tree / baseline) are printed with their 90 % interval
  --pairs N             measured pairs (default 12); without --baseline, --rounds N rounds of this tree
  --warmup N            rounds per tree before measuring (default 3; V8 compiles the hot code meanwhile)
  --sessions N          concurrent sessions per round (default 100), events interleaved round-robin
  --turns N             audio turns per session per round (default 3)
  --appends-per-turn N  client appends before each commit (default 100; ~33 more run during the answer)
  --batch N             events per event-loop turn (default 8), from as many sessions
  --restart-every N     fresh (warmed-up) processes every N pairs or rounds (default 4; 0: never): two
                        processes of the same code differ by their own layout, which pairs cannot cancel
  --cpu-prof            a V8 CPU profile of each tree's measured rounds (bench/results/profiles/), summarised
  --json FILE           every round's figures`);
    return;
  }
  const pairs = Number(values.pairs);
  const rounds = Number(values.rounds ?? values.pairs);
  const warmup = Number(values.warmup);
  const restartEvery = Number(values['restart-every']);
  const req = { sessions: Number(values.sessions), turns: Number(values.turns), appendsPerTurn: Number(values['appends-per-turn']), batch: Number(values.batch) };
  const sink: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((res) => sink.listen(0, '127.0.0.1', res));
  const otlpUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/traces`;
  const profileDir = join(REPO_ROOT, 'bench', 'results', 'profiles');
  const trees: Tree[] = [{ label: 'this tree', root: REPO_ROOT, child: null, rounds: [] }];
  if (values.baseline) trees.unshift({ label: `baseline (${resolve(values.baseline)})`, root: resolve(values.baseline), child: null, rounds: [] });
  const run = async (t: Tree, seed: number): Promise<RoundResult> => (await ask<{ result: RoundResult }>(t.child!, { round: { ...req, seed } })).result;
  const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.error(`relay-path: ${trees.map((t) => t.label).join(' vs ')}; ${req.sessions} sessions × ${req.turns} turns per round; load average ${load()}`);
  const profiling = values['cpu-prof'] === true;
  /** Fresh children (warmed up): a process's own layout (JIT code, heap placement) is one draw, not the tree's. */
  const start = async (): Promise<void> => {
    for (const t of trees) await startTree(t, otlpUrl, profileDir);
    for (let i = 0; i < warmup; i++) for (const t of i % 2 ? [...trees].reverse() : trees) await run(t, 1000 + i);
    if (profiling) for (const t of trees) await ask(t.child!, { profile: 'start' });
  };
  const profiles: { label: string; file: string; summary: ReturnType<typeof summarise> }[] = [];
  const stop = async (): Promise<void> => {
    if (profiling) {
      for (const t of trees) {
        const p = (await ask<{ profile: { file: string; summary: ReturnType<typeof summarise> } }>(t.child!, { profile: 'stop' })).profile;
        profiles.push({ label: t.label, ...p });
      }
    }
    for (const t of trees) await ask(t.child!, { exit: true }).catch(() => undefined);
  };
  await start();
  const measured = trees.length === 2 ? pairs : rounds;
  for (let i = 0; i < measured; i++) {
    if (restartEvery > 0 && i > 0 && i % restartEvery === 0) {
      await stop();
      await start();
    }
    // Both trees play the same stream in a pair; the order alternates (AB, BA, …).
    const order = i % 2 ? [...trees].reverse() : trees;
    for (const t of order) t.rounds.push(await run(t, 1 + i));
    const last = trees.map((t) => fmt(figures(t.rounds.at(-1)!).get('CPU (user + system, all threads)')!)).join(' / ');
    console.error(`  round ${i + 1}/${measured}: ${last} per event; load average ${load()}`);
  }
  await stop();
  sink.close();

  // The table: median per tree over the measured rounds, and the paired ratio.
  const names = [...figures(trees.at(-1)!.rounds[0]!).keys()];
  const events = trees.at(-1)!.rounds[0]!;
  const header = trees.length === 2 ? '| per event | count per round | baseline | this tree | ratio | 90 % interval | this higher |' : '| per event | count per round | this tree |';
  const lines = [header, header.replace(/[^|]+/g, '---')];
  const paired: Record<string, PairedSummary> = {};
  for (const name of names) {
    const per = trees.map((t) => t.rounds.map((r) => figures(r).get(name) ?? NaN));
    const count = events.kinds[name]?.count ?? events.events;
    const cells = [name, String(count), ...per.map((xs) => fmt(median(xs)))];
    if (trees.length === 2) {
      const s = summarisePairs(per[0]!, per[1]!);
      paired[name] = s;
      cells.push(s.medianRatio.toFixed(3), s.interval ? `${s.interval[0].toFixed(3)}–${s.interval[1].toFixed(3)}` : '–', `${s.bHigher} of ${s.pairs}`);
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  const last = trees.at(-1)!.rounds;
  const notes = [
    `empty step (subtracted from each kind): ${trees.map((t) => fmt(median(t.rounds.map((r) => r.emptyStepNs)))).join(' / ')}; driver per event ${trees.map((t) => fmt(median(t.rounds.map((r) => r.driverNs / r.events)))).join(' / ')}`,
    `session open / close, wall per session: ${trees.map((t) => `${fmt(median(t.rounds.map((r) => r.openNsPerSession)))} / ${fmt(median(t.rounds.map((r) => r.closeNsPerSession)))}`).join('; ')}`,
    `events per round ${last[0]!.events}; bytes to the client ${last[0]!.clientBytes}, to the upstream ${last[0]!.upstreamBytes}`,
  ];
  console.log(lines.join('\n'));
  console.log(notes.map((n) => `- ${n}`).join('\n'));
  for (const p of profiles) {
    console.log(`\nCPU profile, ${p.label}: ${p.file} (GC ${p.summary.gcPct} %)`);
    for (const l of p.summary.top.slice(0, 25)) console.log(`  ${l.selfPct.toFixed(1).padStart(5)} %  ${l.fn}  ${l.where}`);
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ request: req, trees: trees.map((t) => ({ label: t.label, root: t.root, rounds: t.rounds })), paired, profiles }, null, 2));
}

if (process.env['RELAY_PATH_CHILD'] === '1') await childMain();
else await parentMain();
