import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { parseConfig } from '../src/config/load.js';
import { startProxy } from '../src/main.js';
import { startSimulator } from '../src/simulator/index.js';
import { TestClient } from '../test/support/client.js';
import { Child, REPO_ROOT, serveChild, type ProcStats } from './lib/ipc.js';
import { RELAY_NODE_FLAGS } from '../src/server/node-flags.js';
import type { LoadStats, LoadTarget } from './lib/load.js';

/**
 * `npx tsx bench/policies.ts [flags]`: what the policy engine costs. Not a test: numbers only.
 *
 * 1. CPU per relayed audio frame, proxy with no policy (built-in permissive default) vs the
 *    shipped strict policy (policies/customer-support.yaml: output guardrails on every transcript
 *    delta, input rules, locks, truncation budget). Same rig as `npm run bench`: the fake upstream
 *    and the load generator on core 1, the proxy alone on core 0, paced realtime sessions; the
 *    proxy's own CPU time over the window divided by the audio frames it relayed (appends + audio
 *    deltas). Target: strict ≤ 1.1 × none.
 * 2. Guardrail trip-to-cancel time: the proxy alone in a pinned process relays to the simulator
 *    (this process), whose responses say a forbidden phrase. Reported: the proxy's own decision
 *    time (offending frame in → response.cancel written, `decisionMs` of its guardrail log line),
 *    and the simulator's view (settling transcript delta written → response.cancel read: two
 *    loopback hops on top).
 */

const TENANT_KEY = 'rpk_bench_0123456789abcdef';
const FORBIDDEN = 'legal advice';
/** Words before the phrase, the phrase, then a tail; the match settles on the first tail word. */
const TEXT = `Well, I cannot give you any ${FORBIDDEN} about this contract, but here is what I can tell you about your order today.`;
const WARMUP_TRIPS = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
const median = (xs: readonly number[]) => quantile([...xs].sort((a, b) => a - b), 0.5);

interface Options {
  readonly sessions: number;
  readonly warmupS: number;
  readonly measureS: number;
  readonly repeat: number;
  readonly trips: number;
  readonly pin: boolean;
}

// ---- 1. CPU per relayed audio frame --------------------------------------------------------------

type Variant = 'none' | 'strict';

function writeConfig(dir: string, variant: Variant): string {
  const file = join(dir, `proxy-${variant}.yaml`);
  const policies = variant === 'strict' ? `policies:\n  dir: ${join(REPO_ROOT, 'policies')}\n  default: customer-support\n  watch: false\n` : '';
  const policyLine = variant === 'strict' ? '    policy: customer-support\n' : '';
  // `none`: no policies directory next to this file, so the built-in permissive default applies.
  writeFileSync(file, `server:\n  maxSessions: 20000\nlogging:\n  level: warn\n${policies}tenants:\n  bench:\n    keys:\n      - key: ${TENANT_KEY}\n${policyLine}`);
  return file;
}

interface CpuResult {
  readonly usPerAudioFrame: number;
  readonly audioFramesPerSec: number;
  readonly relayCpuPct: number;
  readonly errors: number;
}

async function cpuRun(o: Options, configFile: string): Promise<CpuResult> {
  const pin = (c: string) => (o.pin ? c : null);
  const upstream = new Child('upstream', 'bench/procs/upstream.ts', { cpus: pin('1'), args: [JSON.stringify({ pacing: 'realtime' })], stdout: 'ignore' });
  let relay: Child | null = null;
  let load: Child | null = null;
  try {
    const { port: upPort } = (await upstream.ready) as { port: number };
    relay = new Child('proxy', 'bench/procs/relay-proxy.ts', { cpus: pin('0'), nodeArgs: RELAY_NODE_FLAGS, args: [String(upPort), configFile], stdout: 'inherit' });
    const { port } = (await relay.ready) as { port: number };
    const target: LoadTarget = { host: '127.0.0.1', port, path: '/v1/realtime?model=gpt-realtime', headers: { authorization: `Bearer ${TENANT_KEY}` } };
    load = new Child('loadgen', 'bench/procs/loadgen.ts', { cpus: pin('1'), args: [JSON.stringify(target)], stdout: 'ignore' });
    await load.ready;
    await load.call('open', { n: o.sessions, perSecond: 1000 });
    await load.call('paced', { turnMs: 4000 });
    await sleep(o.warmupS * 1000);
    const cpu = (s: ProcStats) => s.cpuUserUs + s.cpuSystemUs;
    const a = { relay: await relay.call<ProcStats>('stats'), load: await load.call<LoadStats>('counters'), at: performance.now() };
    await sleep(o.measureS * 1000);
    const b = { relay: await relay.call<ProcStats>('stats'), load: await load.call<LoadStats>('counters'), at: performance.now() };
    await load.call('stopTraffic');
    const end = await load.call<LoadStats>('counters');
    const frames = b.load.appends - a.load.appends + (b.load.audioDeltas - a.load.audioDeltas);
    const relayUs = cpu(b.relay) - cpu(a.relay);
    const windowS = (b.at - a.at) / 1000;
    return {
      usPerAudioFrame: relayUs / Math.max(1, frames),
      audioFramesPerSec: frames / windowS,
      relayCpuPct: (relayUs / (windowS * 1e6)) * 100,
      errors: end.failed + end.unexpectedCloses + end.errorEvents + end.stalled,
    };
  } finally {
    await Promise.all([load?.stop(), relay?.stop(), upstream.stop()]);
  }
}

async function cpuBench(o: Options): Promise<void> {
  console.log(`CPU per relayed audio frame: ${o.sessions} paced sessions, ${o.warmupS} s warm-up, ${o.measureS} s window, ${o.repeat} repetitions${o.pin ? ', pinned' : ''}`);
  const dir = mkdtempSync(join(tmpdir(), 'rtp-policy-bench-'));
  const files: Record<Variant, string> = { none: writeConfig(dir, 'none'), strict: writeConfig(dir, 'strict') };
  const results: Record<Variant, CpuResult[]> = { none: [], strict: [] };
  try {
    for (let rep = 0; rep < o.repeat; rep++) {
      // Interleave the variants so drift on the machine hits both.
      const order: Variant[] = rep % 2 === 0 ? ['none', 'strict'] : ['strict', 'none'];
      for (const v of order) {
        const r = await cpuRun(o, files[v]);
        results[v].push(r);
        console.log(`  ${v.padEnd(6)} rep ${rep + 1}: ${r.usPerAudioFrame.toFixed(3)} µs CPU / audio frame, ${r.audioFramesPerSec.toFixed(0)} frames/s, proxy ${r.relayCpuPct.toFixed(1)}% of a core, errors ${r.errors}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const none = median(results.none.map((r) => r.usPerAudioFrame));
  const strict = median(results.strict.map((r) => r.usPerAudioFrame));
  console.log(`  median: none ${none.toFixed(3)} µs, strict ${strict.toFixed(3)} µs → ratio ${(strict / none).toFixed(3)} (target ≤ 1.10)`);
}

// ---- 2. trip-to-cancel ---------------------------------------------------------------------------

/** Child role: the proxy alone in its process, relaying to the simulator at `simUrl`. */
async function proxyChild(simUrl: string): Promise<void> {
  const decisions: number[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.includes('guardrail tripped')) continue;
        const rec = JSON.parse(line) as { decisionMs?: unknown };
        if (typeof rec.decisionMs === 'number') decisions.push(rec.decisionMs);
      }
      cb();
    },
  });
  const config = parseConfig(
    {
      server: { host: '127.0.0.1', port: 0, workers: 1 },
      admin: { port: 0 },
      upstream: { provider: 'openai', url: simUrl, apiKey: 'sk-bench' },
      logging: { level: 'info' },
      policies: { dir: join(REPO_ROOT, 'policies'), watch: false },
      tenants: { bench: { keys: [{ key: TENANT_KEY }], policy: 'customer-support' } },
    },
    '(bench)',
    {},
  );
  const proxy = await startProxy(config, { logDestination: sink });
  serveChild({ port: proxy.port }, { decisions: () => decisions });
}

async function tripBench(o: Options): Promise<void> {
  console.log(`Guardrail trip-to-cancel: ${o.trips} responses (after ${WARMUP_TRIPS} warm-up) saying "${FORBIDDEN}", strict policy, proxy in its own process${o.pin ? ' on core 0' : ''}`);
  const sim = await startSimulator({ recordAudio: false, pingIntervalMs: 0 });
  const proxy = new Child('proxy', 'bench/policies.ts', { cpus: o.pin ? '0' : null, nodeArgs: RELAY_NODE_FLAGS, args: ['--proxy-child', sim.url], stdout: 'inherit' });
  const words = TEXT.match(/\s*\S+/g)!;
  const settleIndex = words.findIndex((_w, i) => words.slice(0, i + 1).join('').endsWith(FORBIDDEN)) + 1;
  const wire: number[] = [];
  let decisions: number[] = [];
  try {
    const { port } = (await proxy.ready) as { port: number };
    const c = new TestClient(`ws://127.0.0.1:${port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
    await c.opened;
    await c.next('session.created');
    const conn = sim.connections[sim.connections.length - 1]!;
    const measured: string[] = [];
    for (let i = 0; i < WARMUP_TRIPS + o.trips; i++) {
      // Keep the client's event log short (its waiters scan it).
      c.events.length = 0;
      c.say(`say: ${TEXT}`);
      const done = await c.next('response.done', 10_000);
      if (i >= WARMUP_TRIPS) measured.push((done['response'] as { id: string }).id);
    }
    c.close();
    // The simulator may read a cancel after the client saw response.done: settle before matching.
    await sleep(300);
    const deltasOf = new Map<string, number[]>();
    for (const x of conn.sent) {
      if (x.type !== 'response.output_audio_transcript.delta' || x.responseId === null) continue;
      const list = deltasOf.get(x.responseId) ?? [];
      list.push(x.t);
      deltasOf.set(x.responseId, list);
    }
    const cancelAt = new Map<string, number>();
    for (const r of conn.received) {
      const id = (r.event as { response_id?: unknown }).response_id;
      if (r.type === 'response.cancel' && typeof id === 'string' && !cancelAt.has(id)) cancelAt.set(id, r.t);
    }
    for (const id of measured) {
      const settling = deltasOf.get(id)?.[settleIndex];
      const cancel = cancelAt.get(id);
      if (settling !== undefined && cancel !== undefined) wire.push(cancel - settling);
    }
    decisions = (await proxy.call<number[]>('decisions')).slice(WARMUP_TRIPS);
  } finally {
    await proxy.stop();
    await sim.close();
  }
  wire.sort((a, b) => a - b);
  decisions.sort((a, b) => a - b);
  const f = (xs: number[]) => `p50 ${quantile(xs, 0.5).toFixed(3)} ms, p99 ${quantile(xs, 0.99).toFixed(3)} ms, max ${quantile(xs, 1).toFixed(3)} ms (n=${xs.length})`;
  console.log(`  proxy decision (offending delta in → response.cancel written): ${f(decisions)}`);
  console.log(`  simulator view (delta written → response.cancel read, 2 loopback hops): ${f(wire)}`);
}

// ---- main ----------------------------------------------------------------------------------------

if (process.argv[2] === '--proxy-child') {
  await proxyChild(process.argv[3]!);
} else {
  const { values: flags } = parseArgs({
    options: {
      sessions: { type: 'string', default: '200' },
      warmup: { type: 'string', default: '3' },
      measure: { type: 'string', default: '8' },
      repeat: { type: 'string', default: '3' },
      trips: { type: 'string', default: '1000' },
      'no-pin': { type: 'boolean', default: false },
      'skip-cpu': { type: 'boolean', default: false },
      'skip-trips': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (flags.help) {
    console.log('usage: npx tsx bench/policies.ts [--sessions N] [--warmup S] [--measure S] [--repeat N] [--trips N] [--no-pin] [--skip-cpu] [--skip-trips]');
  } else {
    const o: Options = {
      sessions: Number(flags.sessions),
      warmupS: Number(flags.warmup),
      measureS: Number(flags.measure),
      repeat: Number(flags.repeat),
      trips: Number(flags.trips),
      pin: flags['no-pin'] !== true,
    };
    if (flags['skip-cpu'] !== true) await cpuBench(o);
    if (flags['skip-trips'] !== true) await tripBench(o);
  }
}
