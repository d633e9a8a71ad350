import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Child, REPO_ROOT, type ProcStats } from './lib/ipc.js';
import type { LoadStats, LoadTarget } from './lib/load.js';
import { machineInfo } from './lib/machine.js';
import { compileChild } from './lib/compiled.js';
import { RELAY_NODE_FLAGS } from '../src/server/node-flags.js';

/**
 * `npm run soak [-- flags]`: minutes of paced load with session churn against the proxy, sampling
 * the relay's memory. A leak shows as a rising post-GC RSS/heap line; the report fits a slope over
 * the second half of the run (after warm-up and allocator growth) and writes bench/results/soak.*.
 */
const { values: flags } = parseArgs({
  options: {
    sessions: { type: 'string', default: '500' },
    minutes: { type: 'string', default: '10' },
    config: { type: 'string', default: 'bench/config/proxy-governed.yaml' },
    'lifetime-sec': { type: 'string', default: '60' },
    'sample-sec': { type: 'string', default: '10' },
    'gc-every': { type: 'string', default: '6' },
    'no-pin': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results' },
    help: { type: 'boolean', default: false },
  },
});

if (flags.help) {
  console.log(`usage: npm run soak -- [--sessions 500] [--minutes 10] [--config bench/config/proxy-governed.yaml]
  [--lifetime-sec 60]  each session lives 0.5–1.5× this long, then is replaced (0: no churn)
  [--sample-sec 10] [--gc-every 6]  sample every N s; force a GC before every Nth sample
  [--no-pin] [--out bench/results]`);
  process.exit(0);
}

const sessions = Number(flags.sessions);
const minutes = Number(flags.minutes);
const sampleSec = Number(flags['sample-sec']);
const gcEvery = Math.max(1, Number(flags['gc-every']));
const pin = flags['no-pin'] !== true;
const out = resolve(REPO_ROOT, flags.out ?? 'bench/results');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample {
  readonly tSec: number;
  readonly sessions: number;
  readonly rssMiB: number;
  readonly heapMiB: number;
  readonly v8CommittedMiB: number;
  readonly outsideV8MiB: number;
  readonly externalMiB: number;
  readonly gc: boolean;
  readonly cpuPct: number;
  readonly eventsPerSec: number;
  readonly errors: number;
  readonly churned: number;
}

/** Least-squares slope of y over x. */
function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

async function main(): Promise<void> {
  mkdirSync(join(out, 'logs'), { recursive: true });
  const logFd = openSync(join(out, 'logs', 'soak-children.log'), 'w');
  const dataDir = mkdtempSync(join(tmpdir(), 'rtp-soak-'));
  const upstream = new Child('upstream', 'bench/procs/upstream.ts', { cpus: pin ? '1' : null, args: ['{}'], stdout: logFd });
  const { port: upPort, otlpUrl } = (await upstream.ready) as { port: number; otlpUrl: string };
  // The proxy as production runs it: dist/ on plain node (bench/lib/compiled.ts).
  const relay = new Child('proxy', await compileChild('bench/procs/relay-proxy.ts', REPO_ROOT), {
    compiled: true,
    cpus: pin ? '0' : null,
    nodeArgs: ['--expose-gc', ...RELAY_NODE_FLAGS],
    args: [String(upPort), flags.config ?? 'bench/config/proxy-governed.yaml'],
    env: { BENCH_DATA_DIR: dataDir, BENCH_OTLP_URL: otlpUrl },
    stdout: logFd,
  });
  const { port } = (await relay.ready) as { port: number };
  const target: LoadTarget = { host: '127.0.0.1', port, path: '/v1/realtime?model=gpt-realtime', headers: { authorization: 'Bearer rpk_bench_0123456789abcdef' } };
  const load = new Child('loadgen', 'bench/procs/loadgen.ts', { cpus: pin ? '1' : null, args: [JSON.stringify(target)], stdout: logFd });
  await load.ready;

  const machine = machineInfo();
  console.log(`soak: ${sessions} paced sessions for ${minutes} min against ${flags.config}, churn ${flags['lifetime-sec']} s; ${machine.nproc} × ${machine.cpuModel}, Node ${machine.node}`);
  const base = await relay.call<ProcStats>('gc');
  await load.call('open', { n: sessions, perSecond: 500 });
  await load.call('paced', { lifetimeMs: Number(flags['lifetime-sec']) * 1000 });
  const samples: Sample[] = [];
  const t0 = performance.now();
  let prev = { stats: await relay.call<ProcStats>('stats'), load: await load.call<LoadStats & { sessions: number }>('counters'), at: performance.now() };
  let i = 0;
  // V8 MiB: the main isolate's committed heap; outside: RSS minus that (malloc, worker threads, code, the binary).
  console.log('  t(s)  sessions  rss MiB  heap MiB  V8 MiB  outside  ext MiB  cpu%   ev/s  errors  churned');
  while (performance.now() - t0 < minutes * 60_000) {
    await sleep(sampleSec * 1000);
    i++;
    const gc = i % gcEvery === 0;
    const stats = await relay.call<ProcStats>(gc ? 'gc' : 'stats');
    const counters = await load.call<LoadStats & { sessions: number }>('counters');
    const at = performance.now();
    const wall = (at - prev.at) / 1000;
    const s: Sample = {
      tSec: Math.round((at - t0) / 1000),
      sessions: counters.sessions,
      rssMiB: stats.rss / 1048576,
      heapMiB: stats.heapUsed / 1048576,
      v8CommittedMiB: stats.heapTotal / 1048576,
      outsideV8MiB: (stats.rss - stats.heapTotal) / 1048576,
      externalMiB: stats.external / 1048576,
      gc,
      cpuPct: ((stats.cpuUserUs + stats.cpuSystemUs - prev.stats.cpuUserUs - prev.stats.cpuSystemUs) / (wall * 1e6)) * 100,
      eventsPerSec: (counters.framesRecv - prev.load.framesRecv + (counters.framesSent - prev.load.framesSent)) / wall,
      errors: counters.failed + counters.unexpectedCloses + counters.errorEvents,
      churned: counters.churned,
    };
    samples.push(s);
    prev = { stats, load: counters, at };
    console.log(
      `${String(s.tSec).padStart(6)}  ${String(s.sessions).padStart(8)}  ${s.rssMiB.toFixed(1).padStart(7)}  ${s.heapMiB.toFixed(1).padStart(8)}  ${s.v8CommittedMiB.toFixed(1).padStart(6)}  ${s.outsideV8MiB.toFixed(1).padStart(7)}  ${s.externalMiB.toFixed(1).padStart(7)}  ${s.cpuPct.toFixed(0).padStart(4)}  ${s.eventsPerSec.toFixed(0).padStart(6)}  ${String(s.errors).padStart(6)}  ${String(s.churned).padStart(7)}${gc ? '  (after GC)' : ''}`,
    );
  }
  await load.call('stopTraffic');
  const end = await load.call<LoadStats>('counters');
  await load.call('closeAll');
  // Sessions end when their clients close (or after the linger, 5 s, for one mid-response): wait up
  // to 10 s for the relay to hold none, then measure.
  const closedAt = Date.now();
  let sessionsLeft = await relay.call<{ sessions: number }>('counters');
  while (sessionsLeft.sessions > 0 && Date.now() - closedAt < 10_000) {
    await sleep(200);
    sessionsLeft = await relay.call<{ sessions: number }>('counters');
  }
  const drainMs = Date.now() - closedAt;
  await sleep(1000);
  const after = await relay.call<ProcStats>('gc');
  await Promise.all([load.stop(), relay.stop(), upstream.stop()]);
  closeSync(logFd);
  rmSync(dataDir, { recursive: true, force: true });

  const gcSamples = samples.filter((s) => s.gc);
  const half = gcSamples.filter((s) => s.tSec >= (minutes * 60) / 2);
  const hours = (p: Sample) => p.tSec / 3600;
  const result = {
    date: new Date().toISOString(),
    machine,
    options: { sessions, minutes, config: flags.config, lifetimeSec: Number(flags['lifetime-sec']), sampleSec, gcEvery },
    baseRssMiB: base.rss / 1048576,
    afterCloseRssMiB: after.rss / 1048576,
    afterCloseHeapMiB: after.heapUsed / 1048576,
    sessionsLeftOnRelay: sessionsLeft.sessions,
    drainMs,
    rssSlopeMiBPerHour: slope(half.map((s) => [hours(s), s.rssMiB] as const)),
    heapSlopeMiBPerHour: slope(half.map((s) => [hours(s), s.heapMiB] as const)),
    v8CommittedSlopeMiBPerHour: slope(half.map((s) => [hours(s), s.v8CommittedMiB] as const)),
    outsideV8SlopeMiBPerHour: slope(half.map((s) => [hours(s), s.outsideV8MiB] as const)),
    errors: end.failed + end.unexpectedCloses + end.errorEvents,
    errorDetail: { failed: end.failed, unexpectedCloses: end.unexpectedCloses, errorEvents: end.errorEvents, errorCodes: end.errorCodes, closeCodes: end.closeCodes },
    churned: end.churned,
    responsesDone: end.responsesDone,
    samples,
  };
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'soak.json'), JSON.stringify(result, null, 2) + '\n');
  const md = [
    `Soak: ${sessions} paced sessions, ${minutes} min, churn every ~${result.options.lifetimeSec} s (${result.churned} sessions replaced), config ${flags.config}; ${machine.nproc} × ${machine.cpuModel}, Node ${machine.node}.`,
    '',
    '| | value |',
    '|---|---:|',
    `| relay RSS before load (after GC) | ${result.baseRssMiB.toFixed(1)} MiB |`,
    `| relay RSS under load, last post-GC sample | ${(gcSamples.at(-1)?.rssMiB ?? Number.NaN).toFixed(1)} MiB |`,
    `| post-GC RSS slope, second half | ${result.rssSlopeMiBPerHour.toFixed(1)} MiB/h |`,
    `| post-GC heap slope, second half | ${result.heapSlopeMiBPerHour.toFixed(1)} MiB/h |`,
    `| post-GC slopes of the RSS's parts, second half: V8's committed heap / the rest (malloc, worker threads, code) | ${result.v8CommittedSlopeMiBPerHour.toFixed(1)} / ${result.outsideV8SlopeMiBPerHour.toFixed(1)} MiB/h (last post-GC sample ${(gcSamples.at(-1)?.v8CommittedMiB ?? Number.NaN).toFixed(1)} / ${(gcSamples.at(-1)?.outsideV8MiB ?? Number.NaN).toFixed(1)} MiB) |`,
    `| relay RSS after all sessions closed (after GC) | ${result.afterCloseRssMiB.toFixed(1)} MiB (heap ${result.afterCloseHeapMiB.toFixed(1)} MiB, ${result.sessionsLeftOnRelay} sessions left ${(result.drainMs / 1000).toFixed(1)} s after the clients closed) |`,
    `| responses completed | ${result.responsesDone} |`,
    `| errors | ${result.errors} |`,
    '',
  ].join('\n');
  writeFileSync(join(out, 'soak.md'), md);
  console.log('\n' + md);
}

await main();
