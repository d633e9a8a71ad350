import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '../src/config/load.js';
import { startProxy } from '../src/main.js';
import { ChainTemplate, type ChainSink } from '../src/pipeline/chain.js';
import type { FilterFactory } from '../src/pipeline/filter.js';
import { Frame } from '../src/pipeline/frame.js';
import { telemetrySchema } from '../src/telemetry/config.js';
import { TelemetryMetrics } from '../src/telemetry/metrics.js';
import { TelemetrySdk } from '../src/telemetry/sdk.js';
import { TelemetryFilterFactory, TelemetrySession } from '../src/telemetry/session.js';
import type { SpanSink } from '../src/telemetry/span-records.js';
import { resolveSettings } from '../src/telemetry/settings.js';
import { FakeSession } from '../test/support/fake-session.js';
import { Child, serveChild, type ProcStats } from './lib/ipc.js';
import { RELAY_NODE_FLAGS } from '../src/server/node-flags.js';
import type { LoadStats, LoadTarget } from './lib/load.js';
import type { ProfileSummary } from './lib/profile.js';
import type { FakeUpstreamStats } from './fake-upstream.js';

/**
 * `npx tsx bench/telemetry.ts [flags]`: what per-turn tracing costs per relayed frame.
 *
 * 1. In isolation: the filter chain with and without the telemetry filter, fed audio frames
 *    (CPU ns per frame), and whole scripted turns (CPU µs per turn; spans created and dropped).
 * 2. End to end: the real proxy (pinned to core 0) relays the paced load of the shared bench rig
 *    (fake upstream + load generator on core 1) per repetition with telemetry off
 *    (`telemetry.enabled: false`: no filter at all), [metrics only,] and tracing on (every session
 *    traced, OTLP/HTTP protobuf export to the rig's sink, Prometheus metrics). Two figures:
 *    - relay process CPU µs per relayed frame (medians over interleaved repetitions);
 *    - the telemetry filter's own time per relayed frame, measured inside the relay (every entry
 *      point of the filter timed: frame handlers, reports, timer-driven turn ends, span export),
 *      as a share of the off variant's CPU per frame. This one is robust to other load on the
 *      machine; the first one is not on a shared 2-core box.
 *    Target: ≤ 10 % more CPU per relayed frame with tracing on.
 * Not a test: prints figures, asserts nothing.
 */

const CHILD = process.argv[2] === '--relay-child';

const { values: flags } = parseArgs({
  args: CHILD ? [] : process.argv.slice(2),
  options: {
    sessions: { type: 'string', default: '400' },
    warmup: { type: 'string', default: '4' },
    measure: { type: 'string', default: '8' },
    repeat: { type: 'string', default: '3' },
    'turn-ms': { type: 'string', default: '4000' },
    frames: { type: 'string', default: '1000000' },
    turns: { type: 'string', default: '20000' },
    'no-e2e': { type: 'boolean', default: false },
    'with-metrics-only': { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

const SESSIONS = Number(flags.sessions);
const WARMUP_MS = Number(flags.warmup) * 1000;
const MEASURE_MS = Number(flags.measure) * 1000;
const REPEAT = Number(flags.repeat);
const TURN_MS = Number(flags['turn-ms']);
const FRAMES = Number(flags.frames);
const TURNS = Number(flags.turns);
const PIN = flags['no-pin'] !== true;
const TENANT_KEY = 'rpk_bench_0123456789abcdef';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

// ---- relay child: the proxy with the telemetry filter timed in place ---------------------------

/**
 * Runs the proxy like bench/procs/relay-proxy.ts, with every entry point of the telemetry filter
 * wrapped in a performance.now() pair (nested calls counted once), so the orchestrator can read the
 * filter's own time. Timer-driven turn ends enter through `turnClosed`.
 */
async function relayChild(upstreamPort: number, file: string): Promise<void> {
  const self = { ms: 0, depth: 0 };
  const proto = TelemetrySession.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of ['onClient', 'onServer', 'onReport', 'onClose', 'turnOpened', 'responseDone', 'turnClosed']) {
    const original = proto[name]!;
    proto[name] = function timed(this: unknown, ...args: unknown[]) {
      if (self.depth > 0) return original.apply(this, args);
      self.depth++;
      const t0 = performance.now();
      try {
        return original.apply(this, args);
      } finally {
        self.ms += performance.now() - t0;
        self.depth--;
      }
    };
  }
  const doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const config = parseConfig(
    {
      ...doc,
      server: { workers: 1, ...(doc['server'] as Record<string, unknown>), host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      upstream: { provider: 'openai', url: `ws://127.0.0.1:${upstreamPort}/v1/realtime`, apiKey: 'sk-bench-upstream' },
    },
    file,
    { BENCH_OTLP_URL: process.env['BENCH_OTLP_URL'] ?? 'http://127.0.0.1:9/v1/traces' },
  );
  const proxy = await startProxy(config, { baseDir: dirname(file) });
  serveChild({ port: proxy.port, adminPort: proxy.adminPort }, { selfTime: () => ({ ms: self.ms }) });
}

// ---- 1. in isolation -------------------------------------------------------------------------

function cpuNs(fn: () => void): number {
  const start = process.cpuUsage();
  fn();
  const d = process.cpuUsage(start);
  return (d.user + d.system) * 1000;
}

function isolated(): void {
  // Turns close at response.done here (no playback wait): the loop runs on a frozen clock.
  const settings = resolveSettings(telemetrySchema().parse({ traces: { exporter: 'none' }, turns: { waitForPlayback: false } }), {});
  // Span records are written for real, then dropped: the main thread's share of tracing (queueing
  // and the OTLP export thread's work are in the end-to-end figure).
  let exported = 0;
  const spans: SpanSink = {
    emit: () => void exported++,
    forceFlush: async () => undefined,
    shutdown: async () => undefined,
  };
  const sdk = new TelemetrySdk(settings);
  const metrics = new TelemetryMetrics(sdk);
  const factory = new TelemetryFilterFactory({ settings, metrics, spans, serverAddress: 'api.openai.com', serverPort: 443 });
  // The same without spans (an unsampled session): metrics and the turn state machine only.
  const untraced = new TelemetryFilterFactory({ settings, metrics, spans: null, serverAddress: 'api.openai.com', serverPort: 443 });
  const sink: ChainSink = { forward: () => undefined, forwardInjected: () => undefined, reject: () => undefined, close: () => undefined, stopped: () => undefined };
  const build = (factories: FilterFactory[]) => new ChainTemplate(factories).instantiate(new FakeSession(), sink);

  const append = Buffer.from(JSON.stringify({ type: 'input_audio_buffer.append', audio: Buffer.alloc(960).toString('base64') }));
  const delta = Buffer.from(
    JSON.stringify({ type: 'response.output_audio.delta', event_id: 'event_abc', response_id: 'resp_1', item_id: 'item_1', output_index: 0, content_index: 0, delta: Buffer.alloc(1920).toString('base64') }),
  );
  const control = (e: { type: string; [k: string]: unknown }) => Buffer.from(JSON.stringify(e));
  const created = control({ type: 'response.created', event_id: 'e', response: { id: 'resp_1', status: 'in_progress', conversation_id: 'conv_1', output_modalities: ['audio'] } });
  const perFrame = (factories: FilterFactory[]) => {
    const chain = build(factories);
    chain.fromServer(new Frame('response.created', created));
    return (
      cpuNs(() => {
        for (let i = 0; i < FRAMES; i++) {
          chain.fromClient(new Frame('input_audio_buffer.append', append));
          chain.fromServer(new Frame('response.output_audio.delta', delta));
        }
      }) /
      (2 * FRAMES)
    );
  };
  perFrame([factory]);
  perFrame([]);
  const offNs = median([perFrame([]), perFrame([]), perFrame([])]);
  const onNs = median([perFrame([factory]), perFrame([factory]), perFrame([factory])]);
  console.log(`in isolation (${FRAMES} appends + ${FRAMES} audio deltas, 20/40 ms chunks):`);
  console.log(`  chain without telemetry ${fmt(offNs, 0)} ns/frame, with ${fmt(onNs, 0)} ns/frame → the filter adds ${fmt(onNs - offNs, 0)} ns per audio frame`);

  // Whole scripted turns: VAD boundary events, 25 audio deltas, usage, spans written.
  const turnEvents = (n: number): Frame[] => {
    const id = `resp_${n}`;
    const evs: Frame[] = [
      new Frame('input_audio_buffer.speech_started', control({ type: 'input_audio_buffer.speech_started', event_id: 'e', audio_start_ms: 0, item_id: `item_u${n}` })),
      new Frame('input_audio_buffer.speech_stopped', control({ type: 'input_audio_buffer.speech_stopped', event_id: 'e', audio_end_ms: 900, item_id: `item_u${n}` })),
      new Frame('input_audio_buffer.committed', control({ type: 'input_audio_buffer.committed', event_id: 'e', item_id: `item_u${n}` })),
      new Frame('response.created', control({ type: 'response.created', event_id: 'e', response: { id, status: 'in_progress', conversation_id: 'conv_1', output_modalities: ['audio'] } })),
    ];
    const d = control({ type: 'response.output_audio.delta', event_id: 'e', response_id: id, item_id: 'item_a', output_index: 0, content_index: 0, delta: Buffer.alloc(1920).toString('base64') });
    for (let i = 0; i < 25; i++) evs.push(new Frame('response.output_audio.delta', d));
    evs.push(
      new Frame(
        'response.done',
        control({
          type: 'response.done',
          event_id: 'e',
          response: {
            id,
            status: 'completed',
            output: [],
            usage: { total_tokens: 300, input_tokens: 200, output_tokens: 100, input_token_details: { text_tokens: 50, audio_tokens: 150, cached_tokens: 0 }, output_token_details: { text_tokens: 20, audio_tokens: 80 } },
          },
        }),
      ),
    );
    return evs;
  };
  const scripts = Array.from({ length: 64 }, (_, i) => turnEvents(i));
  const perTurn = (factories: FilterFactory[]) => {
    const chain = build(factories);
    const ns = cpuNs(() => {
      for (let t = 0; t < TURNS; t++) {
        // Frames cache their parse: rebuild from bytes each time.
        for (const f of scripts[t % scripts.length]!) chain.fromServer(new Frame(f.type, f.bytes));
      }
      chain.close({ initiator: 'client', code: 1000, reason: '' });
    });
    return ns / TURNS;
  };
  perTurn([factory]);
  const offTurn = median([perTurn([]), perTurn([]), perTurn([])]);
  const onTurn = median([perTurn([factory]), perTurn([factory]), perTurn([factory])]);
  const untracedTurn = median([perTurn([untraced]), perTurn([untraced]), perTurn([untraced])]);
  console.log(
    `  a whole VAD turn (30 frames, 25 of them audio): ${fmt(offTurn / 1000, 1)} µs without telemetry, ${fmt(onTurn / 1000, 1)} µs with (${fmt(exported / (4 * TURNS), 1)} spans per turn, metrics), ${fmt(untracedTurn / 1000, 1)} µs for an unsampled session (metrics only)`,
  );
}

// ---- 2. end to end ---------------------------------------------------------------------------

type Variant = 'off' | 'metrics' | 'on';

function configFor(variant: Variant, dir: string): string {
  const telemetry =
    variant === 'off'
      ? { enabled: false }
      : variant === 'metrics'
        ? { enabled: true, traces: { exporter: 'none' }, metrics: { prometheus: { enabled: true } } }
        : { enabled: true, traces: { exporter: 'otlp', endpoint: '${BENCH_OTLP_URL}', protocol: 'http/protobuf', sampleRatio: 1 }, metrics: { prometheus: { enabled: true } } };
  const config = {
    server: { maxSessions: 20000 },
    logging: { level: 'warn' },
    // The figure is about telemetry: the other concerns stay out of every variant.
    metering: { enabled: false },
    telemetry,
    tenants: { bench: { keys: [{ key: TENANT_KEY }] } },
  };
  const file = join(dir, `proxy-telemetry-${variant}.json`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

interface Snapshot {
  readonly relay: ProcStats;
  readonly self: { ms: number };
  readonly load: LoadStats;
  readonly up: FakeUpstreamStats & { otlpRequests?: number };
  readonly at: number;
}

interface VariantResult {
  readonly usPerFrame: number;
  readonly selfUsPerFrame: number;
  readonly framesPerSec: number;
  readonly relayCpuPct: number;
  readonly otlpRequests: number;
  readonly turns: number;
  readonly errors: number;
}

async function runVariant(variant: Variant, dir: string): Promise<VariantResult> {
  const pin = (c: string) => (PIN ? c : null);
  const upstream = new Child('upstream', 'bench/procs/upstream.ts', { cpus: pin('1'), args: [JSON.stringify({ pacing: 'realtime' })], stdout: 'ignore' });
  let relay: Child | null = null;
  let load: Child | null = null;
  try {
    const { port: upPort, otlpUrl } = (await upstream.ready) as { port: number; otlpUrl: string };
    relay = new Child(`proxy-${variant}`, 'bench/telemetry.ts', {
      cpus: pin('0'),
      nodeArgs: RELAY_NODE_FLAGS,
      args: ['--relay-child', String(upPort), configFor(variant, dir)],
      env: { BENCH_OTLP_URL: otlpUrl },
      stdout: process.env['BENCH_RELAY_LOG'] ? openSync(process.env['BENCH_RELAY_LOG'], 'a') : 'ignore',
    });
    const { port, adminPort } = (await relay.ready) as { port: number; adminPort: number };
    const target: LoadTarget = { host: '127.0.0.1', port, path: '/v1/realtime?model=gpt-realtime', headers: { authorization: `Bearer ${TENANT_KEY}` } };
    load = new Child('loadgen', 'bench/procs/loadgen.ts', { cpus: pin('1'), args: [JSON.stringify(target)], stdout: 'ignore' });
    await load.ready;
    await load.call('open', { n: SESSIONS, perSecond: 1000 });
    await load.call('paced', { turnMs: TURN_MS });
    await sleep(WARMUP_MS);
    const snap = async (): Promise<Snapshot> => {
      const [r, self, l, u] = await Promise.all([
        relay!.call<ProcStats>('stats'),
        relay!.call<{ ms: number }>('selfTime'),
        load!.call<LoadStats>('counters'),
        upstream.call<FakeUpstreamStats & { otlpRequests?: number }>('counters'),
      ]);
      return { relay: r, self, load: l, up: u, at: performance.now() };
    };
    const a = await snap();
    if (flags.profile) await relay.call('profileStart', 200);
    await sleep(MEASURE_MS);
    const b = await snap();
    if (flags.profile) {
      const file = process.env['BENCH_PROFILE_FILE'] ? `${process.env['BENCH_PROFILE_FILE']}-${variant}.cpuprofile` : null;
      const p = await relay.call<ProfileSummary>('profileStop', file);
      console.log(`  profile (${variant}): gc ${fmt(p.gcPct, 1)}%, areas ${Object.entries(p.areas).map(([k, v]) => `${k} ${fmt(v, 1)}%`).join(', ')}`);
      for (const l of p.top.slice(0, 12)) console.log(`    ${fmt(l.selfPct, 1)}% ${l.fn} ${l.where}`);
    }
    let turns = 0;
    if (variant !== 'off') {
      const text = await fetch(`http://127.0.0.1:${adminPort}/metrics`).then((r) => r.text());
      for (const m of text.matchAll(/^rtproxy_turns_total\{[^}]*\} (\S+)$/gm)) turns += Number(m[1]);
    }
    await load.call('stopTraffic');
    const end = await load.call<LoadStats>('counters');
    await load.call('closeAll');
    const cpuUs = b.relay.cpuUserUs + b.relay.cpuSystemUs - (a.relay.cpuUserUs + a.relay.cpuSystemUs);
    // Relayed frames: client → upstream (arrived upstream) plus upstream → client (arrived at the client).
    const frames = b.up.framesIn - a.up.framesIn + (b.load.framesRecv - a.load.framesRecv);
    const sec = (b.at - a.at) / 1000;
    return {
      usPerFrame: cpuUs / Math.max(1, frames),
      selfUsPerFrame: ((b.self.ms - a.self.ms) * 1000) / Math.max(1, frames),
      framesPerSec: frames / sec,
      relayCpuPct: (cpuUs / (sec * 1e6)) * 100,
      otlpRequests: (b.up.otlpRequests ?? 0) - (a.up.otlpRequests ?? 0),
      turns,
      errors: end.failed + end.unexpectedCloses + end.errorEvents + end.stalled,
    };
  } finally {
    await Promise.all([load?.stop(), relay?.stop(), upstream.stop()]);
  }
}

async function endToEnd(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rtp-bench-telemetry-'));
  const results: Record<Variant, VariantResult[]> = { off: [], metrics: [], on: [] };
  try {
    console.log(`end to end: ${SESSIONS} paced sessions (turn every ${TURN_MS} ms), ${WARMUP_MS / 1000} s warm-up, ${MEASURE_MS / 1000} s window, ${REPEAT} repetitions${PIN ? ', relay pinned to core 0' : ''}`);
    const variants: Variant[] = flags['with-metrics-only'] ? ['off', 'metrics', 'on'] : ['off', 'on'];
    for (let rep = 0; rep < REPEAT; rep++) {
      // Alternate the order so drift (thermal, other load) does not favour one variant.
      const order = rep % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        const r = await runVariant(v, dir);
        results[v].push(r);
        console.log(
          `  rep ${rep + 1} ${v === 'off' ? 'telemetry off' : v === 'metrics' ? 'metrics only ' : 'tracing on   '}: ${fmt(r.usPerFrame, 3)} µs CPU / relayed frame, ${fmt(r.framesPerSec, 0)} frames/s, relay ${fmt(r.relayCpuPct, 0)}% of a core` +
            (v !== 'off' ? `; filter's own time ${fmt(r.selfUsPerFrame, 3)} µs / frame, ${r.turns} turns` : '') +
            (v === 'on' ? `, ${r.otlpRequests} OTLP exports` : '') +
            (r.errors ? `, ${r.errors} load errors` : ''),
        );
      }
    }
    const off = median(results.off.map((r) => r.usPerFrame));
    for (const v of ['metrics', 'on'] as const) {
      if (results[v].length === 0) continue;
      const cpu = median(results[v].map((r) => r.usPerFrame));
      const self = median(results[v].map((r) => r.selfUsPerFrame));
      const label = v === 'on' ? 'tracing on' : 'metrics only';
      console.log(
        `  ${label}: relay CPU ${fmt(off, 3)} → ${fmt(cpu, 3)} µs/frame (${fmt(((cpu - off) / off) * 100, 1)} %, noisy on a shared machine); ` +
          `the filter's own time ${fmt(self, 3)} µs/frame = ${fmt((self / off) * 100, 1)} % of the relay's CPU per frame (target ≤ 10 %)`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (CHILD) {
  await relayChild(Number(process.argv[3]), process.argv[4] ?? '');
} else if (flags.help) {
  console.log(
    'usage: npx tsx bench/telemetry.ts [--sessions N] [--warmup S] [--measure S] [--repeat N] [--turn-ms MS] [--frames N] [--turns N] [--no-e2e] [--with-metrics-only] [--no-pin] [--profile]',
  );
} else {
  isolated();
  if (flags['no-e2e'] !== true) await endToEnd();
}
