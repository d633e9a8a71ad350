import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { ChainTemplate, type ChainSink } from '../src/pipeline/chain.js';
import type { Filter, FilterFactory } from '../src/pipeline/filter.js';
import { Frame } from '../src/pipeline/frame.js';
import { meteringSchema } from '../src/metering/config.js';
import { createMeteringFilterFactory } from '../src/metering/filter-factory.js';
import type { MeteringRuntime } from '../src/metering/runtime.js';
import type { Ledger, UsageRecord } from '../src/metering/ledger.js';
import { resolveLimits } from '../src/metering/limits.js';
import { PriceBook } from '../src/metering/pricing.js';
import { RedisLedger } from '../src/metering/redis-ledger.js';
import { SqliteLedger } from '../src/metering/sqlite-ledger.js';
import { FakeSession } from '../test/support/fake-session.js';
import { startRedis } from '../test/metering/redis-server.js';

/**
 * `npx tsx bench/metering.ts [--frames N] [--events N] [--settles N]`: what metering costs.
 *
 * 1. Per relayed audio frame: the chain's dispatch of `input_audio_buffer.append` and
 *    `response.output_audio.delta` with and without the metering filter registered (an append
 *    reaches it for its byte length only, never parsed; output audio never does). CPU time
 *    (process.cpuUsage) per frame.
 * 2. Per control event: the filter's own handlers (response.create with and without a cap,
 *    response.created, response.done including the synchronous SQLite settle, session.update
 *    clamp, transcription completed).
 * 3. Ledger: SQLite settle (WAL, synchronous=NORMAL and FULL) and, when redis-server is installed,
 *    Redis reserve and settle round trips on loopback.
 * Not a test: prints figures, asserts nothing.
 */

const { values: flags } = parseArgs({
  options: {
    frames: { type: 'string', default: '2000000' },
    events: { type: 'string', default: '20000' },
    settles: { type: 'string', default: '5000' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log('usage: npx tsx bench/metering.ts [--frames N] [--events N] [--settles N]');
  process.exit(0);
}
const FRAMES = Number(flags.frames);
const EVENTS = Number(flags.events);
const SETTLES = Number(flags.settles);
const T0 = Date.UTC(2026, 10, 28, 12);
const silent = pino({ level: 'silent' });

function cpuNs(fn: () => void): number {
  const start = process.cpuUsage();
  fn();
  const d = process.cpuUsage(start);
  return (d.user + d.system) * 1000;
}

function wallNs(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start);
}

function runtime(ledger: Ledger): MeteringRuntime {
  const cfg = meteringSchema().parse({ ledger: { path: ':memory:' } });
  return {
    config: cfg,
    prices: new PriceBook(),
    ledger,
    limitsOf: (t) => resolveLimits(t, cfg),
    onRecord: () => undefined,
    log: silent,
    wall: () => T0,
  };
}

const sink: ChainSink = { forward: () => undefined, forwardInjected: () => undefined, reject: () => undefined, close: () => undefined, stopped: () => undefined };

// ---- 1. audio frames through the chain ------------------------------------------------------------

function audioFrameCost(factories: FilterFactory[]): { appendNs: number; deltaNs: number } {
  const template = new ChainTemplate(factories);
  const chain = template.instantiate(new FakeSession(), sink);
  const audio = Buffer.alloc(4800).toString('base64');
  const append = Buffer.from(JSON.stringify({ type: 'input_audio_buffer.append', audio }));
  const delta = Buffer.from(JSON.stringify({ type: 'response.output_audio.delta', event_id: 'event_1', response_id: 'resp_1', item_id: 'item_1', output_index: 0, content_index: 0, delta: audio }));
  // Frames are built outside the timed loop: the relay builds them with or without metering.
  const appends = Array.from({ length: 1024 }, () => new Frame('input_audio_buffer.append', append));
  const deltas = Array.from({ length: 1024 }, () => new Frame('response.output_audio.delta', delta));
  const run = (n: number) => {
    for (let i = 0; i < n; i++) chain.fromClient(appends[i & 1023]!);
  };
  const runDelta = (n: number) => {
    for (let i = 0; i < n; i++) chain.fromServer(deltas[i & 1023]!);
  };
  run(FRAMES / 4);
  runDelta(FRAMES / 4);
  const appendNs = cpuNs(() => run(FRAMES)) / FRAMES;
  const deltaNs = cpuNs(() => runDelta(FRAMES)) / FRAMES;
  return { appendNs, deltaNs };
}

// ---- 2. control events ----------------------------------------------------------------------------

function usage(i: number) {
  const t = 100 + (i % 50);
  return {
    total_tokens: t + 40 + 30,
    input_tokens: t + 40,
    output_tokens: 30,
    input_token_details: { text_tokens: t, audio_tokens: 40, image_tokens: 0, cached_tokens: 64, cached_tokens_details: { text_tokens: 64, audio_tokens: 0, image_tokens: 0 } },
    output_token_details: { text_tokens: 10, audio_tokens: 20 },
  };
}

interface EventCosts {
  readonly label: string;
  readonly responseCreateNs: number;
  readonly responseCreatedNs: number;
  readonly responseDoneNs: number;
}

function controlEventCost(label: string, ledger: Ledger, limits: Record<string, unknown> | null): EventCosts {
  const rt = runtime(ledger);
  const factory = createMeteringFilterFactory(rt);
  const ctx = new FakeSession({ tenant: { id: 'bench', limits } });
  const f: Filter = factory.create(ctx);
  const creates = Array.from({ length: EVENTS }, (_, i) => Buffer.from(JSON.stringify({ type: 'response.create', event_id: `c${i}`, response: { max_output_tokens: 200 } })));
  const createds = Array.from({ length: EVENTS }, (_, i) => Buffer.from(JSON.stringify({ type: 'response.created', event_id: `e${i}`, response: { id: `resp_${i}`, object: 'realtime.response', status: 'in_progress', conversation_id: 'conv_1', max_output_tokens: 200, usage: null } })));
  const dones = Array.from({ length: EVENTS }, (_, i) => Buffer.from(JSON.stringify({ type: 'response.done', event_id: `d${i}`, response: { id: `resp_${i}`, object: 'realtime.response', status: 'completed', conversation_id: 'conv_1', output: [], usage: usage(i) } })));
  let create = 0;
  let created = 0;
  let done = 0;
  // Interleaved like a session (create → created → done), each handler timed on its own.
  for (let i = 0; i < EVENTS; i++) {
    const c = new Frame('response.create', creates[i]!);
    const s = new Frame('response.created', createds[i]!);
    const d = new Frame('response.done', dones[i]!);
    // Through the session as the relay core does: the conversation view (which metering reads for
    // pairing and usage) learns each frame, so the timings include that update.
    create += wallNs(() => void ctx.fromClient(f, c));
    created += wallNs(() => void ctx.fromServer(f, s));
    done += wallNs(() => void ctx.fromServer(f, d));
  }
  // A bench that settled nothing measured a no-op: refuse to print it.
  const billed = ctx.reports.filter((r) => r.kind === 'usage').length;
  if (billed !== EVENTS) throw new Error(`${label}: ${billed} of ${EVENTS} responses were billed`);
  f.onClose!({ initiator: 'client', code: 1000, reason: '' });
  return { label, responseCreateNs: create / EVENTS, responseCreatedNs: created / EVENTS, responseDoneNs: done / EVENTS };
}

function smallEventCost(ledger: Ledger): { sessionUpdateClampNs: number; transcriptionNs: number } {
  const rt = runtime(ledger);
  const f = createMeteringFilterFactory(rt).create(new FakeSession({ tenant: { id: 'bench2', limits: { maxResponseOutputTokens: 300 } } }));
  const su = Buffer.from(JSON.stringify({ type: 'session.update', session: { type: 'realtime', max_output_tokens: 'inf', instructions: 'be brief' } }));
  const tx = Buffer.from(JSON.stringify({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_1', content_index: 0, transcript: 'hello there', usage: { type: 'tokens', input_tokens: 50, output_tokens: 5, total_tokens: 55, input_token_details: { text_tokens: 0, audio_tokens: 50 } } }));
  let a = 0;
  let b = 0;
  for (let i = 0; i < EVENTS; i++) {
    const s = new Frame('session.update', su);
    const t = new Frame('conversation.item.input_audio_transcription.completed', tx);
    a += wallNs(() => void f.onClient!(s));
    b += wallNs(() => void f.onServer!(t));
  }
  f.onClose!({ initiator: 'client', code: 1000, reason: '' });
  return { sessionUpdateClampNs: a / EVENTS, transcriptionNs: b / EVENTS };
}

// ---- 3. ledger ------------------------------------------------------------------------------------

function record(i: number): UsageRecord {
  return {
    ts: T0,
    tenant: 'bench',
    session: 'rps_bench',
    source: 'response',
    ref: `resp_${i}`,
    model: 'gpt-realtime',
    status: 'completed',
    costNanos: 1234567,
    inputTokens: 200,
    outputTokens: 30,
    cachedTokens: 64,
    totalTokens: 230,
    input: { text: 160, audio: 40, image: 0 },
    cached: { text: 64, audio: 0, image: 0 },
    output: { text: 10, audio: 20 },
    seconds: null,
    estimated: false,
    settledBy: 'response.done',
    fallbackPrice: false,
  };
}

function sqliteSettle(dir: string, synchronous: 'normal' | 'full'): { meanUs: number; p99Us: number } {
  const l = new SqliteLedger(join(dir, `settle-${synchronous}.sqlite`), { synchronous });
  const times: number[] = [];
  for (let i = 0; i < SETTLES; i++) times.push(wallNs(() => l.settle(null, record(i))) / 1000);
  void l.close();
  times.sort((a, b) => a - b);
  return { meanUs: times.reduce((a, b) => a + b, 0) / times.length, p99Us: times[Math.floor(times.length * 0.99)]! };
}

async function redisRoundTrips(): Promise<{ reserveUs: number; settleUs: number } | string> {
  let server;
  try {
    server = await startRedis();
  } catch (err) {
    return `skipped: ${(err as Error).message}`;
  }
  const l = new RedisLedger({
    url: server.url,
    keyPrefix: 'bench:',
    commandTimeoutMs: 1000,
    reservationTtlSec: 600,
    usageStreamMaxLen: 100_000,
    pendingMax: 1000,
    failMode: 'closed',
    tenants: ['bench'],
    log: silent,
    wall: () => T0,
  });
  await l.connect();
  const n = Math.min(SETTLES, 5000);
  const caps = { dayNanos: 1e15, monthNanos: null, dayTokens: null, monthTokens: null };
  let t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await l.reserve({ tenant: 'bench', id: `r${i}`, amount: { nanos: 1000, tokens: 10 }, caps, wallMs: T0, mode: 'remaining' });
  const reserveUs = Number(process.hrtime.bigint() - t) / 1000 / n;
  t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await l.settle(`r${i}`, record(i));
  const settleUs = Number(process.hrtime.bigint() - t) / 1000 / n;
  await l.close();
  await server.stop();
  return { reserveUs, settleUs };
}

// ---- main -----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-bench-metering-'));
  const fmt = (n: number) => n.toFixed(1).padStart(8);
  try {
    console.log(`metering bench: node ${process.version}, ${FRAMES} audio frames, ${EVENTS} events, ${SETTLES} settles\n`);

    const mem = new SqliteLedger(':memory:');
    const meteringFactory = createMeteringFilterFactory(runtime(mem));
    // Alternate to even out JIT and frequency effects; report the medians.
    const without: { appendNs: number; deltaNs: number }[] = [];
    const withM: { appendNs: number; deltaNs: number }[] = [];
    for (let r = 0; r < 3; r++) {
      without.push(audioFrameCost([]));
      withM.push(audioFrameCost([meteringFactory]));
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const a0 = med(without.map((x) => x.appendNs));
    const a1 = med(withM.map((x) => x.appendNs));
    const d0 = med(without.map((x) => x.deltaNs));
    const d1 = med(withM.map((x) => x.deltaNs));
    console.log('1. CPU per audio frame through the chain (ns; metering never sees these frames)');
    console.log(`   input_audio_buffer.append     without ${fmt(a0)}   with metering ${fmt(a1)}   added ${fmt(a1 - a0)}`);
    console.log(`   response.output_audio.delta   without ${fmt(d0)}   with metering ${fmt(d1)}   added ${fmt(d1 - d0)}\n`);

    console.log('2. Filter cost per control event (ns, wall, mean; response.done includes the SQLite settle)');
    const file = new SqliteLedger(join(dir, 'events.sqlite'));
    for (const c of [
      controlEventCost('no caps, SQLite file', file, null),
      controlEventCost('daily+monthly caps, SQLite file', file, { dailyUsd: 1_000_000, monthlyUsd: 1_000_000, maxResponseOutputTokens: 4096 }),
    ]) {
      console.log(`   ${c.label.padEnd(34)} response.create ${fmt(c.responseCreateNs)}   response.created ${fmt(c.responseCreatedNs)}   response.done ${fmt(c.responseDoneNs)}`);
    }
    const small = smallEventCost(mem);
    console.log(`   session.update (clamped)          ${fmt(small.sessionUpdateClampNs)}`);
    console.log(`   transcription.completed (settle in :memory:) ${fmt(small.transcriptionNs)}\n`);
    void file.close();
    void mem.close();

    console.log('3. Ledger');
    for (const sync of ['normal', 'full'] as const) {
      const s = sqliteSettle(dir, sync);
      console.log(`   SQLite settle, WAL, synchronous=${sync.padEnd(6)} mean ${fmt(s.meanUs)} µs   p99 ${fmt(s.p99Us)} µs   (file in ${tmpdir()})`);
    }
    const r = await redisRoundTrips();
    if (typeof r === 'string') console.log(`   Redis: ${r}`);
    else console.log(`   Redis (loopback, sequential) reserve ${fmt(r.reserveUs)} µs   settle ${fmt(r.settleUs)} µs per round trip`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
