import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Histogram, median, type HistogramJson } from './lib/histogram.js';
import { Child, REPO_ROOT, type LoopStats, type ProcStats } from './lib/ipc.js';
import { cliStartRss } from './lib/cli-rss.js';
import { compileChild } from './lib/compiled.js';
import type { LoadStats, LoadTarget } from './lib/load.js';
import { coreTimes, coreUtilisation, machineInfo, type MachineInfo } from './lib/machine.js';
import { perfLines, perfRecord } from './lib/perf.js';
import { summarisePairs, type PairedSummary } from './lib/paired.js';
import type { AllocationLine, ProfileSummary } from './lib/profile.js';
import type { FakeUpstreamStats } from './fake-upstream.js';
import { RELAY_NODE_FLAGS } from '../src/server/node-flags.js';

/**
 * `npm run bench [-- flags]`: the same load against each relay, in one invocation.
 *
 *   direct       load generator → fake upstream (the floor; no relay process)
 *   passthrough  byte-level WebSocket passthrough (http-proxy, ws: true)
 *   naive        `ws` relay that parses and re-serialises every event
 *   proxy        this proxy, every module at its defaults (bench/config/proxy-bare.yaml)
 *   governed     this proxy with auth, metering + SQLite ledger, strict policy, tracing (bench/config/proxy-governed.yaml)
 *
 * The relay under test runs alone on core 0; the load generator and the fake upstream share core 1.
 */

const HELP = `usage: npm run bench -- [flags]
  --quick                   short run: 200 sessions, 2 s warm-up, 4 s windows, 1 repetition
  --targets LIST            comma list of direct,passthrough,naive,portkey,proxy,governed (default: all)
  --sessions LIST           paced session counts (default 1000,2000)
  --idle N                  idle sessions for the RSS-per-session figure (default 2000): N opened first, then N
                            more on the same process (kept open beside the first), at most
                            64 handshakes pending; the figure is the second N's (the first pays
                            one-off costs: compiled code, the compiler's zones, old-space growth)
  --warmup S                seconds of load before each measurement window (default 5)
  --process-warmup S        seconds of load a fresh relay process gets before its first paced window, on top of
                            --warmup (default 30): V8 compiles the proxy's code on its helper thread for about
                            that long after load starts (governed, 250 sessions: 18 % of a core in the first 5 s,
                            6-7 % up to 25 s, 1-2 % after 30 s), work a running proxy has behind it
  --measure S               measurement window, seconds (default 10)
  --throughput-sessions N   closed-loop sessions in the unpaced throughput phase (default 64)
  --no-throughput           skip the throughput phase
  --turn-ms MS              mean time between turns in paced mode (default 4000)
  --repeat N                repetitions (targets interleaved per repetition; medians reported) (default 3)
  --profile                 after the measurements, profile the proxy targets under paced load (V8 sampler, 200 µs)
  --profile-sessions N      paced sessions while profiling (default 1000)
  --profile-throughput      profile the unpaced throughput load instead of paced sessions
  --heap-sample             with --profile: then sample allocations that survive a scavenge (promoted to the
                            old generation) for one window and print the top sites, each with the proxy's own
                            frame that led to it (a minor GC ends the window, so garbage not yet collected
                            does not count)
  --heap-all                with --heap-sample: sample every allocation, not only the promoted ones
  --perf                    with --profile: then record the relay with Linux perf (software clock) for one window and
                            print its kernel share and syscalls in µs/event (results/profiles/*.perf.data)
  --max-foreign PCT         re-measure a window when other work used more than PCT% of either core (default 15)
  --attempts N              measurement attempts per window before keeping the quietest (default 3)
  --relay-node-args=ARGS    extra node flags for the relay processes, e.g. --relay-node-args="--max-semi-space-size=64 --trace-gc"
                            (with "=": a value starting with a dash is otherwise refused)
  --workers LIST            also measure the governed target's unpaced throughput with server.workers = each of
                            LIST (e.g. 1,2): the relay on cores 0..N-1, and print the scaling against the first
  --capacity LIST           for each target of LIST (e.g. governed,passthrough): the most paced sessions one core
                            carries with u→c p99 ≤ 10 ms and no errors (doubling from 100, then bisection in steps
                            of 50; fresh processes and one window per probe)
  --capacity-max N          upper end of that search (default 3000)
  --capacity-windows N      windows per capacity probe, each on fresh processes; the probe is judged on their median
                            p99 and carried only with no errors in any (default 3: one window moves by 2x between
                            processes)
  --settle SEC              RSS at start is also read once V8 has given back the young generation boot grew
                            (its memory reducer, ~25 s after the last allocation burst): wait up to SEC for it
                            before the idle sessions open (default 45; 0: only the RSS as booted). Beside that
                            process, this proxy is also started by its CLI (dist/cli.js with the production V8
                            flags, no bench harness) and its RSS read after SEC: the figure the goal is judged on
  --no-pin                  do not pin processes to cores with taskset
  --from-source             run the relays through tsx from TypeScript (default: compiled, as production
                            runs: the proxy from dist/, built by tsc first; the bench's relay scripts
                            bundled with esbuild; no tsx loader in any relay process)
  --out DIR                 results directory (default bench/results)
  --paired A,B              instead of the run above: two targets (e.g. governed-base,governed, or governed,governed for
                            the noise floor) measured in --pairs alternating windows (AB, BA, AB, …) on processes kept
                            up, at the first --sessions count; prints B/A per pair, the median ratio with a 90 %
                            interval and a sign test, for CPU per event and both p99s. This VM drifts ±15 % in
                            minutes: only windows measured back to back compare within a few per cent
  --pairs N                 pairs of windows for --paired (default 12)
  --baseline DIR            a checkout of another commit (its src/ and bench/, e.g. from \`git archive\`, with
                            node_modules linked): adds the targets proxy-base and governed-base, that commit's
                            proxy on this tree's configs, so before/after compare in one run`;

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    targets: { type: 'string' },
    sessions: { type: 'string' },
    idle: { type: 'string' },
    warmup: { type: 'string' },
    'process-warmup': { type: 'string' },
    measure: { type: 'string' },
    'throughput-sessions': { type: 'string' },
    'no-throughput': { type: 'boolean', default: false },
    'turn-ms': { type: 'string' },
    repeat: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'profile-sessions': { type: 'string' },
    'profile-throughput': { type: 'boolean', default: false },
    'heap-sample': { type: 'boolean', default: false },
    'heap-all': { type: 'boolean', default: false },
    perf: { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    'from-source': { type: 'boolean', default: false },
    'max-foreign': { type: 'string' },
    'relay-node-args': { type: 'string' },
    attempts: { type: 'string' },
    out: { type: 'string' },
    baseline: { type: 'string' },
    paired: { type: 'string' },
    pairs: { type: 'string' },
    workers: { type: 'string' },
    capacity: { type: 'string' },
    'capacity-max': { type: 'string' },
    'capacity-windows': { type: 'string' },
    settle: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

if (flags.help) {
  console.log(HELP);
  process.exit(0);
}

type TargetName = 'direct' | 'passthrough' | 'naive' | 'portkey' | 'proxy' | 'governed' | 'proxy-base' | 'governed-base';

interface TargetDef {
  readonly label: string;
  readonly script: string | null;
  readonly config?: string;
}

const TARGETS: Record<TargetName, TargetDef> = {
  direct: { label: 'direct (no relay)', script: null },
  passthrough: { label: 'byte passthrough (http-proxy)', script: 'bench/procs/relay-passthrough.ts' },
  naive: { label: 'naive JSON relay (ws)', script: 'bench/procs/relay-naive.ts' },
  portkey: { label: 'Portkey OSS gateway (realtime route)', script: 'bench/procs/relay-portkey.ts' },
  proxy: { label: 'this proxy, modules at defaults', script: 'bench/procs/relay-proxy.ts', config: 'bench/config/proxy-bare.yaml' },
  governed: { label: 'this proxy, full governance', script: 'bench/procs/relay-proxy.ts', config: 'bench/config/proxy-governed.yaml' },
  'proxy-base': { label: 'baseline commit, modules at defaults', script: flags.baseline ? resolve(flags.baseline, 'bench/procs/relay-proxy.ts') : null, config: 'bench/config/proxy-bare.yaml' },
  'governed-base': { label: 'baseline commit, full governance', script: flags.baseline ? resolve(flags.baseline, 'bench/procs/relay-proxy.ts') : null, config: 'bench/config/proxy-governed.yaml' },
};

/** The source tree a target runs from: the baseline checkout for the -base targets, else this one. */
const treeOf = (target: TargetName): string => (target.endsWith('-base') && flags.baseline ? resolve(flags.baseline) : REPO_ROOT);

const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
const quick = flags.quick === true;
const opts = {
  targets: (flags.targets ?? 'direct,passthrough,naive,portkey,proxy,governed').split(',').map((t) => t.trim()) as TargetName[],
  sessions: (flags.sessions ?? (quick ? '200' : '1000,2000')).split(',').map(Number),
  idle: num(flags.idle, quick ? 200 : 2000),
  settleSec: num(flags.settle, quick ? 0 : 45),
  warmupSec: num(flags.warmup, quick ? 2 : 5),
  processWarmupSec: num(flags['process-warmup'], quick ? 0 : 30),
  measureSec: num(flags.measure, quick ? 4 : 10),
  throughputSessions: num(flags['throughput-sessions'], 64),
  throughput: flags['no-throughput'] !== true,
  turnMs: num(flags['turn-ms'], 4000),
  repeat: num(flags.repeat, quick ? 1 : 3),
  profile: flags.profile === true,
  profileSessions: num(flags['profile-sessions'], quick ? 200 : 1000),
  profileThroughput: flags['profile-throughput'] === true,
  heapSample: flags['heap-sample'] === true,
  heapAll: flags['heap-all'] === true,
  perf: flags.perf === true,
  pin: flags['no-pin'] !== true,
  maxForeign: num(flags['max-foreign'], 15),
  relayNodeArgs: (flags['relay-node-args'] ?? '').split(' ').filter((a) => a.length > 0),
  attempts: Math.max(1, num(flags.attempts, quick ? 1 : 3)),
  out: resolve(REPO_ROOT, flags.out ?? 'bench/results'),
  workers: flags.workers ? flags.workers.split(',').map(Number) : [],
  capacity: flags.capacity ? (flags.capacity.split(',').map((t) => t.trim()) as TargetName[]) : [],
  capacityMax: num(flags['capacity-max'], 3000),
  capacityWindows: Math.max(1, num(flags['capacity-windows'], 3)),
  paired: flags.paired ? (flags.paired.split(',').map((t) => t.trim()) as TargetName[]) : [],
  pairs: Math.max(1, num(flags.pairs, 12)),
};
if (opts.paired.length > 0 && opts.paired.length !== 2) throw new Error(`--paired: two targets, got ${opts.paired.join(',')}`);
for (const t of opts.paired) if (!(t in TARGETS) || t === 'direct') throw new Error(`--paired: ${t} is not a relay target`);
for (const t of opts.paired) if (t.endsWith('-base') && !flags.baseline) throw new Error(`--paired: ${t} needs --baseline DIR`);
for (const w of opts.workers) if (!Number.isInteger(w) || w < 1) throw new Error(`--workers: ${w} is not a worker count`);
for (const t of opts.capacity) if (!(t in TARGETS) || t === 'direct') throw new Error(`--capacity: ${t} is not a relay target`);
for (const t of opts.targets) if (!(t in TARGETS)) throw new Error(`unknown target ${t}`);
for (const t of opts.targets) if (t.endsWith('-base') && !flags.baseline) throw new Error(`target ${t} needs --baseline DIR`);

const RELAY_CPU = '0';
const LOAD_CPU = '1';
const TENANT_KEY = 'rpk_bench_0123456789abcdef';
/**
 * Idle sessions' handshakes pending at once: opened faster than the relay completes them, handshakes
 * failed or timed out under foreign load (107-436 of 1,000 opened on 2026-12-08), and a figure from
 * fewer sessions carries more of the one-off cost per session.
 */
const IDLE_HANDSHAKES_IN_FLIGHT = 64;
/** Bound on opening one batch of idle sessions (at 64 in flight, 2,000 take ~2 s on an idle machine). */
const IDLE_OPEN_TIMEOUT_MS = 90_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- result shapes -----------------------------------------------------------------------------

interface Quantiles {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly count: number;
}

interface PacedResult {
  readonly sessions: number;
  readonly opened: number;
  readonly windowSec: number;
  readonly events: number;
  readonly eventsPerSec: number;
  /** Relay process CPU as a share of one core (null for direct). */
  readonly relayCpuPct: number | null;
  readonly relayUsPerEvent: number | null;
  /** Share of the relay's CPU spent in the kernel (syscalls, loopback TCP), %. */
  readonly relaySystemPct: number | null;
  /** Load generator + fake upstream CPU, share of one core: near 100% means the figures are generator-bound. */
  readonly generatorCpuPct: number;
  /** Utilisation of each core from /proc/stat (includes other processes: noise indicator). */
  readonly coreUtilPct: readonly number[];
  /** Core time not used by the bench's own processes on that core (other work, interrupts), %. */
  readonly foreignPct: readonly number[];
  readonly u2c: Quantiles;
  readonly c2u: Quantiles;
  /** Relay RSS at the end of the window (no forced GC: a forced GC changes V8's heap sizing for minutes). */
  readonly relayRssMiB: number | null;
  /** The relay's event-loop delay and GC pauses over the window (null for direct). */
  readonly relayLoop: LoopStats | null;
  readonly errors: number;
  readonly errorDetail: Readonly<Record<string, unknown>>;
  /** Windows measured before one was quiet enough (or the quietest of `attempts`). */
  readonly attempts: number;
}

interface ThroughputResult {
  readonly sessions: number;
  readonly windowSec: number;
  readonly events: number;
  readonly eventsPerSec: number;
  readonly relayCpuPct: number | null;
  readonly relayUsPerEvent: number | null;
  readonly relaySystemPct: number | null;
  readonly generatorCpuPct: number;
  readonly coreUtilPct: readonly number[];
  readonly foreignPct: readonly number[];
  readonly errors: number;
}

/** One batch of idle sessions, measured from the process as it was before the batch opened. */
interface IdleBatch {
  readonly requested: number;
  readonly opened: number;
  /** RSS per session without V8's young generation (an allocation arena that moves between samples). */
  readonly rssPerSessionKiB: number;
  readonly rssWithYoungPerSessionKiB: number;
  readonly heapPerSessionKiB: number;
}

interface IdleResult {
  /** After boot and a forced GC, before any session (V8 still holds the young generation boot grew). */
  readonly baseRssMiB: number;
  /** Once V8's memory reducer has shrunk that young generation (null: not waited for, or it did not within --settle). */
  readonly settledRssMiB: number | null;
  /** After one session was opened and closed (null: no idle sessions measured): the background thread runs. */
  readonly servedRssMiB: number | null;
  /** The first N sessions on the process (null: --idle 0): they also pay one-off costs (code compiled under the burst, the compiler's malloc'd zones, old-space pages grown for handshake garbage). Printed for comparison. */
  readonly first: IdleBatch | null;
  /** N more, opened beside the first (still open): what an idle session adds. The figure judged. */
  readonly second: IdleBatch | null;
}

/** An idle phase and, beside it, the same proxy started by its CLI with the production V8 flags, no bench harness, read after --settle (null: not this proxy, or not read). */
type IdleRun = IdleResult & { readonly cliRssMiB: number | null };

interface TargetRun {
  readonly target: TargetName;
  readonly rep: number;
  readonly ok: boolean;
  readonly failure?: string;
  readonly idle?: IdleRun | null;
  readonly paced: PacedResult[];
  readonly throughput?: ThroughputResult | null;
}

// ---- one target, one repetition -----------------------------------------------------------------

function quantiles(h: HistogramJson): Quantiles {
  const x = Histogram.from(h);
  return { p50: x.quantile(0.5), p99: x.quantile(0.99), p999: x.quantile(0.999), max: x.max, count: x.count };
}

interface Snapshot {
  readonly relay: ProcStats | null;
  readonly load: LoadStats;
  readonly loadProc: ProcStats;
  readonly up: FakeUpstreamStats & { readonly otlpRequests?: number };
  readonly upProc: ProcStats;
  readonly cores: ReturnType<typeof coreTimes>;
  readonly at: number;
}

class Rig {
  readonly target: TargetName;
  readonly logFd: number;
  upstream!: Child;
  relay: Child | null = null;
  load!: Child;
  dataDir: string;

  /** server.workers of the proxy targets (the relay runs on cores 0..workers-1). */
  readonly workers: number;
  /** A paced window ran on this relay process (its code is compiled: see --process-warmup). */
  #warm = false;

  constructor(target: TargetName, logFd: number, workers = 1) {
    this.target = target;
    this.logFd = logFd;
    this.workers = workers;
    this.dataDir = mkdtempSync(join(tmpdir(), 'rtp-bench-'));
  }

  async start(): Promise<void> {
    const pin = (c: string) => (opts.pin ? c : null);
    this.upstream = new Child('upstream', 'bench/procs/upstream.ts', { cpus: pin(LOAD_CPU), args: [JSON.stringify({ pacing: 'realtime' })], stdout: this.logFd });
    const { port: upPort, otlpUrl } = (await this.upstream.ready) as { port: number; otlpUrl: string };
    let port = upPort;
    const def = TARGETS[this.target];
    if (def.script) {
      const root = treeOf(this.target);
      const compiled = !flags['from-source'];
      const script = compiled ? await compileChild(def.script, root) : def.script;
      this.relay = new Child(this.target, script, {
        compiled,
        cpus: pin(this.workers > 1 ? `0-${this.workers - 1}` : RELAY_CPU),
        // This proxy runs with the V8 flags its launchers pass in production; peers run as they ship.
        nodeArgs: ['--expose-gc', ...(def.config ? RELAY_NODE_FLAGS : []), ...opts.relayNodeArgs],
        args: [String(upPort), ...(def.config ? [def.config] : [])],
        env: { BENCH_DATA_DIR: this.dataDir, BENCH_OTLP_URL: otlpUrl, BENCH_WORKERS: String(this.workers) },
        stdout: this.logFd,
      });
      port = ((await this.relay.ready) as { port: number }).port;
    }
    const portkey = this.target === 'portkey';
    const target: LoadTarget = {
      host: '127.0.0.1',
      port,
      path: '/v1/realtime?model=gpt-realtime',
      headers: {
        authorization: `Bearer ${TENANT_KEY}`,
        'user-agent': 'realtime-proxy-bench/1',
        // Portkey's realtime route reaches a local upstream as an Azure AI Foundry endpoint.
        ...(portkey ? { 'x-portkey-provider': 'azure-ai', 'x-portkey-azure-foundry-url': `ws://127.0.0.1:${upPort}/v1` } : {}),
      },
      // It drops the upstream's session.created (sent before its client socket is ready).
      ...(portkey ? { readyOnOpen: true } : {}),
    };
    this.load = new Child('loadgen', 'bench/procs/loadgen.ts', { cpus: pin(LOAD_CPU), args: [JSON.stringify(target)], stdout: this.logFd });
    await this.load.ready;
  }

  async snapshot(): Promise<Snapshot> {
    const [relay, load, loadProc, up, upProc] = await Promise.all([
      this.relay ? this.relay.call<ProcStats>('stats') : Promise.resolve(null),
      this.load.call<LoadStats>('counters'),
      this.load.call<ProcStats>('stats'),
      this.upstream.call<FakeUpstreamStats & { otlpRequests?: number }>('counters'),
      this.upstream.call<ProcStats>('stats'),
    ]);
    return { relay, load, loadProc, up, upProc, cores: coreTimes(), at: performance.now() };
  }

  async gcStats(): Promise<ProcStats | null> {
    return this.relay ? this.relay.call<ProcStats>('gc') : null;
  }

  /**
   * Waits (bounded by --settle) until the relay's young generation is back to its initial size:
   * V8 keeps the arena boot grew until its memory reducer runs after a quiet period. No forced GC:
   * it would not shrink the arena, and the reducer is what a production process gets.
   */
  async settle(): Promise<ProcStats | null> {
    if (!this.relay || opts.settleSec <= 0) return null;
    const end = performance.now() + opts.settleSec * 1000;
    while (performance.now() < end) {
      const s = await this.relay.call<ProcStats>('stats');
      if (s.youngPhysical <= 2 * 1048576) return s;
      await sleep(1000);
    }
    return null;
  }

  async idle(n: number): Promise<IdleResult | null> {
    if (!this.relay) return null;
    const booted = (await this.gcStats())!;
    const settled = n > 0 ? await this.settle() : null;
    // Then one session opened and closed: what a proxy holds once it has served anything (its first
    // exported span starts the background thread, which an idle proxy lets go). The idle sessions
    // are measured against that process, so each counts only what it adds, not the thread.
    let served: ProcStats | null = null;
    if (n > 0) {
      await this.load.call('open', { n: 1, perSecond: 1000 });
      await sleep(500);
      await this.load.call('closeAll');
      // The span-export delay (1 s) and the export itself.
      await sleep(2500);
      served = (await this.gcStats())!;
    }
    const base = served ?? booted;
    // Two batches on the same process, the first left open: the second's figure is what a session
    // adds to a proxy that has opened sessions before, the first's carries the one-off costs too.
    const first = n > 0 ? await this.#idleBatch(n, base) : null;
    const second = first ? await this.#idleBatch(n, first.after) : null;
    await this.load.call('closeAll');
    await sleep(1000);
    return {
      baseRssMiB: booted.rss / 1048576,
      settledRssMiB: settled ? settled.rss / 1048576 : null,
      servedRssMiB: served ? served.rss / 1048576 : null,
      first: first?.batch ?? null,
      second: second?.batch ?? null,
    };
  }

  /** Opens `n` idle sessions at a pace the relay keeps up with and leaves them open; measured against `before`. */
  async #idleBatch(n: number, before: ProcStats): Promise<{ batch: IdleBatch; after: ProcStats }> {
    const { opened } = await this.load.call<{ opened: number }>('open', {
      n,
      perSecond: 1000,
      timeoutMs: IDLE_OPEN_TIMEOUT_MS,
      maxInFlight: IDLE_HANDSHAKES_IN_FLIGHT,
    });
    // Quiet for the compiler's and sweeper's background jobs the burst started, then a forced GC.
    await sleep(2000);
    const after = (await this.gcStats())!;
    const per = (bytes: number) => bytes / Math.max(1, opened) / 1024;
    return {
      after,
      batch: {
        requested: n,
        opened,
        rssPerSessionKiB: per(after.rss - after.youngPhysical - (before.rss - before.youngPhysical)),
        rssWithYoungPerSessionKiB: per(after.rss - before.rss),
        heapPerSessionKiB: per(after.heapUsed - before.heapUsed),
      },
    };
  }

  async paced(n: number): Promise<PacedResult> {
    // Never force a GC before a window: after global.gc() V8 keeps the old generation small and runs
    // mark-compacts every few hundred ms for a long while (seen as 10-30 ms stalls in the p99).
    await this.load.call('reset');
    const { opened } = await this.load.call<{ opened: number }>('open', { n, perSecond: 1000 });
    await this.load.call('paced', { turnMs: opts.turnMs });
    await sleep((opts.warmupSec + (this.#warm ? 0 : opts.processWarmupSec)) * 1000);
    this.#warm = true;
    // Other engineers share the machine: a window in which foreign work took a core is measured again.
    let best: { m: ReturnType<typeof measure>; b: Snapshot; u2c: HistogramJson; c2u: HistogramJson; loop: LoopStats | null } | null = null;
    let attempts = 0;
    const noise = (m: ReturnType<typeof measure>) => Math.max(0, ...m.foreignPct.filter((x) => Number.isFinite(x)));
    while (attempts < opts.attempts) {
      attempts++;
      await Promise.all([this.load.call('record', true), this.upstream.call('record', true), this.relay?.call('loop', true)]);
      const a = await this.snapshot();
      await sleep(opts.measureSec * 1000);
      const b = await this.snapshot();
      const [, , loop] = await Promise.all([this.load.call('record', false), this.upstream.call('record', false), this.relay ? this.relay.call<LoopStats>('loop', false) : null]);
      const [u2c, c2u] = await Promise.all([this.load.call<HistogramJson>('latency'), this.upstream.call<HistogramJson>('latency')]);
      const m = measure(a, b);
      if (!best || noise(m) < noise(best.m)) best = { m, b, u2c, c2u, loop };
      if (noise(m) <= opts.maxForeign) break;
      if (attempts < opts.attempts) log(`  ${this.target} paced ${n}: foreign load ${fmt(noise(m), 0)}% > ${opts.maxForeign}%, measuring again`);
    }
    const { m, b, u2c, c2u, loop } = best!;
    await this.load.call('stopTraffic');
    const end = await this.load.call<LoadStats>('counters');
    await this.load.call('closeAll');
    await sleep(1000);
    const errors = end.failed + end.unexpectedCloses + end.errorEvents + end.stalled;
    return {
      sessions: n,
      opened,
      ...m,
      u2c: quantiles(u2c),
      c2u: quantiles(c2u),
      relayRssMiB: b.relay ? b.relay.rss / 1048576 : null,
      relayLoop: loop,
      errors,
      attempts,
      errorDetail: {
        failed: end.failed,
        unexpectedCloses: end.unexpectedCloses,
        errorEvents: end.errorEvents,
        stalled: end.stalled,
        errorCodes: end.errorCodes,
        closeCodes: end.closeCodes,
        failReasons: end.failReasons,
        responsesRequested: end.responsesRequested,
        responsesDone: end.responsesDone,
        upstreamBackpressured: b.up.backpressured,
        otlpRequests: b.up.otlpRequests ?? 0,
      },
    };
  }

  async throughput(n: number): Promise<ThroughputResult> {
    await this.upstream.call('pacing', 'burst');
    await this.load.call('reset');
    await this.load.call('open', { n, perSecond: 1000 });
    await this.load.call('throughput', { appendsPerBatch: 8, chunkMs: 40 });
    await sleep(Math.min(2, opts.warmupSec) * 1000);
    const a = await this.snapshot();
    await sleep(opts.measureSec * 1000);
    const b = await this.snapshot();
    await this.load.call('stopTraffic');
    const end = await this.load.call<LoadStats>('counters');
    await this.load.call('closeAll');
    await this.upstream.call('pacing', 'realtime');
    await sleep(500);
    return { sessions: n, ...measure(a, b), errors: end.failed + end.unexpectedCloses + end.errorEvents + end.stalled };
  }

  async profile(n: number, file: string): Promise<ProfileSummary | null> {
    if (!this.relay) return null;
    if (opts.profileThroughput) {
      await this.upstream.call('pacing', 'burst');
      await this.load.call('open', { n: opts.throughputSessions, perSecond: 1000 });
      await this.load.call('throughput', { appendsPerBatch: 8, chunkMs: 40 });
    } else {
      await this.load.call('open', { n, perSecond: 1000 });
      await this.load.call('paced', { turnMs: opts.turnMs });
    }
    await sleep(opts.warmupSec * 1000);
    await this.relay.call('profileStart', 200);
    await sleep(opts.measureSec * 1000);
    const summary = await this.relay.call<ProfileSummary>('profileStop', file);
    if (opts.heapSample) {
      // What survives a scavenge under this load: the objects that drive mark-compacts.
      await this.relay.call('heapSampleStart', { interval: 16 * 1024, promotedOnly: !opts.heapAll });
      await sleep(opts.measureSec * 1000);
      const top = await this.relay.call<readonly AllocationLine[]>('heapSampleStop');
      log(`  ${this.target}: ${opts.heapAll ? 'allocations' : 'allocations promoted to the old generation'} in ${opts.measureSec} s (sampled):`);
      for (const l of top.slice(0, 25)) log(`    ${l.mib.toFixed(1)} MiB ${l.pct.toFixed(1)}%  ${l.fn}  ${l.where}`);
    }
    if (opts.perf) {
      // Its own window, without the V8 sampler running: the relay's CPU per event over it converts shares to µs.
      const a = await this.snapshot();
      const perf = await perfRecord(this.relay.pid, opts.measureSec, file.replace(/\.cpuprofile$/, '.perf.data'));
      const b = await this.snapshot();
      if (typeof perf === 'string') log(`  ${this.target}: ${perf}`);
      else {
        const m = measure(a, b);
        log(`  ${this.target}: ${fmt(m.relayUsPerEvent, 2)} µs/event over the perf window (${fmt(m.eventsPerSec, 0)} ev/s)`);
        for (const line of perfLines(perf, m.relayUsPerEvent)) log(`    ${line}`);
      }
    }
    await this.load.call('stopTraffic');
    await this.load.call('closeAll');
    return summary;
  }

  async stop(): Promise<void> {
    await Promise.all([this.load?.stop(), this.relay?.stop(), this.upstream?.stop()]);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

function measure(a: Snapshot, b: Snapshot) {
  const windowSec = (b.at - a.at) / 1000;
  const events = b.up.framesIn - a.up.framesIn + (b.load.framesRecv - a.load.framesRecv);
  const cpu = (s: ProcStats | null) => (s ? s.cpuUserUs + s.cpuSystemUs : 0);
  const relayCpuUs = a.relay && b.relay ? cpu(b.relay) - cpu(a.relay) : null;
  const relaySysUs = a.relay && b.relay ? b.relay.cpuSystemUs - a.relay.cpuSystemUs : null;
  const genCpuUs = cpu(b.loadProc) - cpu(a.loadProc) + cpu(b.upProc) - cpu(a.upProc);
  const coreUtilPct = coreUtilisation(a.cores, b.cores).map((u) => u * 100);
  const relayPct = relayCpuUs === null ? 0 : (relayCpuUs / (windowSec * 1e6)) * 100;
  const genPct = (genCpuUs / (windowSec * 1e6)) * 100;
  return {
    windowSec,
    events,
    eventsPerSec: events / windowSec,
    relayCpuPct: relayCpuUs === null ? null : (relayCpuUs / (windowSec * 1e6)) * 100,
    relayUsPerEvent: relayCpuUs === null ? null : relayCpuUs / Math.max(1, events),
    relaySystemPct: relayCpuUs === null || relaySysUs === null ? null : (relaySysUs / Math.max(1, relayCpuUs)) * 100,
    generatorCpuPct: (genCpuUs / (windowSec * 1e6)) * 100,
    coreUtilPct,
    // Only meaningful when pinned: core 0 runs the relay (nothing of ours for direct), core 1 the generator.
    foreignPct: opts.pin ? [relayCpuUs === null ? Number.NaN : Math.max(0, (coreUtilPct[0] ?? 0) - relayPct), Math.max(0, (coreUtilPct[1] ?? 0) - genPct)] : [],
  };
}

/**
 * Why a child failed, when it died before answering: the last lines of the children's log (a
 * relay that cannot start, e.g. a bad --relay-node-args flag, says so only there).
 */
function failureWithLog(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (!/before it was ready/.test(message)) return message;
  try {
    const file = join(opts.out, 'logs', 'children.log');
    const size = statSync(file).size;
    const fd = openSync(file, 'r');
    const buf = Buffer.alloc(Math.min(size, 2048));
    readSync(fd, buf, 0, buf.length, size - buf.length);
    closeSync(fd);
    const tail = buf.toString('utf8').trim().split('\n').slice(-3).join(' | ');
    return tail ? `${message}; its log ends: ${tail}` : message;
  } catch {
    return message;
  }
}

async function runTarget(target: TargetName, rep: number, logFd: number): Promise<TargetRun> {
  const paced: PacedResult[] = [];
  let rig: Rig | null = null;
  try {
    // Idle RSS on fresh processes of its own: after load the allocator keeps its pages, and the
    // forced GCs it needs would change how the relay's heap behaves in the windows that follow.
    rig = new Rig(target, logFd);
    await rig.start();
    // Beside it (RSS only, nothing else measured then): the same proxy started by its CLI, as production starts it.
    const def = TARGETS[target];
    const cli =
      def.config && opts.idle > 0 && opts.settleSec > 0
        ? cliStartRss(treeOf(target), def.config, opts.settleSec, (m) => log(`  ${target}: ${m}`))
        : Promise.resolve(null);
    const idleOnly = await rig.idle(opts.idle);
    const cliRssMiB = await cli;
    const idle = idleOnly ? { ...idleOnly, cliRssMiB } : null;
    await rig.stop();
    rig = new Rig(target, logFd);
    await rig.start();
    for (const n of opts.sessions) {
      const r = await rig.paced(n);
      paced.push(r);
      log(`  ${target} paced ${n}: ${fmt(r.eventsPerSec, 0)} ev/s, relay ${fmt(r.relayUsPerEvent, 2)} µs/ev (${fmt(r.relayCpuPct, 0)}% core, ${fmt(r.relaySystemPct, 0)}% kernel), u→c p50 ${fmt(r.u2c.p50 / 1000, 3)} ms p99 ${fmt(r.u2c.p99 / 1000, 3)} ms, generator ${fmt(r.generatorCpuPct, 0)}%, foreign load on cores ${r.foreignPct.map((u) => fmt(u, 0) + '%').join('/')}, errors ${r.errors}${r.relayLoop ? `; relay loop delay p99 ${fmt(r.relayLoop.delayP99Ms, 1)} ms max ${fmt(r.relayLoop.delayMaxMs, 1)} ms, GC ${r.relayLoop.gcCount}× max ${fmt(r.relayLoop.gcMaxMs, 1)} ms` : ''}`);
    }
    const throughput = opts.throughput ? await rig.throughput(opts.throughputSessions) : null;
    if (throughput) log(`  ${target} throughput: ${fmt(throughput.eventsPerSec, 0)} ev/s, relay ${fmt(throughput.relayUsPerEvent, 2)} µs/ev (${fmt(throughput.relayCpuPct, 0)}% core, ${fmt(throughput.relaySystemPct, 0)}% kernel), generator ${fmt(throughput.generatorCpuPct, 0)}%, foreign load on cores ${throughput.foreignPct.map((u) => fmt(u, 0) + '%').join('/')}`);
    if (idle) log(`  ${target} idle: ${idle.second ? `second batch ${idleBatchText(idle.second)}; first batch ${idleBatchText(idle.first!)}` : 'no idle sessions'}; RSS at start ${fmt(idle.baseRssMiB, 1)} MiB as booted, ${idle.settledRssMiB === null ? 'not settled' : `${fmt(idle.settledRssMiB, 1)} MiB settled`}${idle.servedRssMiB === null ? '' : `, ${fmt(idle.servedRssMiB, 1)} MiB after one session`}${idle.cliRssMiB === null ? '' : `; started by its CLI ${fmt(idle.cliRssMiB, 1)} MiB`}`);
    return { target, rep, ok: true, idle, paced, throughput };
  } catch (err) {
    const failure = failureWithLog(err);
    log(`  ${target} FAILED: ${failure}`);
    return { target, rep, ok: false, failure, paced };
  } finally {
    await rig?.stop();
  }
}

interface WorkersRun {
  readonly workers: number;
  readonly rep: number;
  readonly throughput: ThroughputResult | null;
  readonly failure?: string;
}

/** The governed target's unpaced throughput with `workers` relay processes (issue 13: 1 → 2 cores ≥ 1.8×). */
async function runWorkers(workers: number, rep: number, logFd: number): Promise<WorkersRun> {
  const rig = new Rig('governed', logFd, workers);
  try {
    await rig.start();
    const t = await rig.throughput(opts.throughputSessions);
    log(`  governed, ${workers} worker(s): ${fmt(t.eventsPerSec, 0)} ev/s, relay ${fmt(t.relayUsPerEvent, 2)} µs/ev (${fmt(t.relayCpuPct, 0)}% of a core in all), generator ${fmt(t.generatorCpuPct, 0)}%, errors ${t.errors}`);
    return { workers, rep, throughput: t };
  } catch (err) {
    const failure = failureWithLog(err);
    log(`  governed, ${workers} worker(s) FAILED: ${failure}`);
    return { workers, rep, throughput: null, failure };
  } finally {
    await rig.stop();
  }
}

interface WorkersSummary {
  readonly workers: number;
  readonly eventsPerSec: number | null;
  readonly relayCpuPct: number | null;
  readonly relayUsPerEvent: number | null;
  readonly generatorCpuPct: number | null;
  readonly errors: number;
  /** events/s against the first worker count's. */
  readonly scaling: number | null;
}

function summariseWorkers(runs: readonly WorkersRun[]): WorkersSummary[] {
  const rows = opts.workers.map((workers) => {
    const ts = runs.filter((r) => r.workers === workers && r.throughput).map((r) => r.throughput!);
    return {
      workers,
      eventsPerSec: ts.length ? median(ts.map((t) => t.eventsPerSec)) : null,
      relayCpuPct: medOrNull(ts.map((t) => t.relayCpuPct)),
      relayUsPerEvent: medOrNull(ts.map((t) => t.relayUsPerEvent)),
      generatorCpuPct: ts.length ? median(ts.map((t) => t.generatorCpuPct)) : null,
      errors: Math.max(0, ...ts.map((t) => t.errors)),
    };
  });
  const base = rows[0]?.eventsPerSec ?? null;
  return rows.map((r) => ({ ...r, scaling: base && r.eventsPerSec !== null ? r.eventsPerSec / base : null }));
}

function workersMarkdown(rows: readonly WorkersSummary[]): string[] {
  if (rows.length === 0) return [];
  const lines = [
    '',
    `**Governed, unpaced throughput (${opts.throughputSessions} closed-loop sessions) by \`server.workers\`** (relay on cores 0..N-1; the load generator and fake upstream stay on core ${LOAD_CPU}, so with N = 2 they share a core with a worker: a generator near 100% caps the figure)`,
    '',
    '| workers | events/s | scaling | relay CPU, all processes (% of one core) | relay µs/event | generator CPU | errors |',
    '|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(`| ${r.workers} | ${fmt(r.eventsPerSec, 0)} | ${r.scaling === null ? '–' : `${fmt(r.scaling, 2)}×`} | ${fmt(r.relayCpuPct, 0)}% | ${fmt(r.relayUsPerEvent, 2)} | ${r.generatorCpuPct === null ? '–' : `${fmt(r.generatorCpuPct, 0)}%`} | ${r.errors} |`);
  }
  return lines;
}

function workersGoal(rows: readonly WorkersSummary[]): Goal[] {
  const one = rows.find((r) => r.workers === 1);
  const two = rows.find((r) => r.workers === 2);
  if (!one || !two) return [];
  const r = one.eventsPerSec && two.eventsPerSec !== null ? two.eventsPerSec / one.eventsPerSec : null;
  return [{ goal: 'governed: unpaced throughput scales ≥ 1.8× from 1 to 2 workers (cores)', value: r === null ? 'n/a' : `${fmt(r, 2)}× (${fmt(one.eventsPerSec, 0)} → ${fmt(two.eventsPerSec, 0)} ev/s; generator ${fmt(two.generatorCpuPct, 0)}%)`, met: r === null ? null : r >= 1.8 }];
}

async function runProfile(target: TargetName, logFd: number): Promise<ProfileSummary | null> {
  const rig = new Rig(target, logFd);
  try {
    await rig.start();
    const dir = join(opts.out, 'profiles');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, opts.profileThroughput ? `${target}-throughput-${opts.throughputSessions}.cpuprofile` : `${target}-paced-${opts.profileSessions}.cpuprofile`);
    const s = await rig.profile(opts.profileSessions, file);
    log(`  profile written to ${file}`);
    return s;
  } catch (err) {
    log(`  ${target} profile FAILED: ${err instanceof Error ? err.message : String(err)}`);
    return null;
  } finally {
    await rig.stop();
  }
}

interface PairedWindow {
  readonly pair: number;
  readonly target: TargetName;
  readonly result: PacedResult;
}

interface PairedRun {
  readonly targets: readonly [TargetName, TargetName];
  readonly sessions: number;
  readonly windows: readonly PairedWindow[];
  readonly metrics: readonly { readonly metric: string; readonly a: readonly number[]; readonly b: readonly number[]; readonly summary: PairedSummary }[];
}

/** `--paired A,B`: both relays kept up, windows alternating AB, BA, AB, … (see bench/lib/paired.ts). */
async function runPaired(logFd: number): Promise<PairedRun> {
  const [ta, tb] = opts.paired as [TargetName, TargetName];
  const n = opts.sessions[0]!;
  const rigs = [new Rig(ta, logFd), new Rig(tb, logFd)] as const;
  const windows: PairedWindow[] = [];
  try {
    // One after the other: each start waits for its relay's port.
    for (const rig of rigs) await rig.start();
    for (let pair = 1; pair <= opts.pairs; pair++) {
      const order = pair % 2 === 1 ? [0, 1] : [1, 0];
      for (const i of order) {
        const rig = rigs[i]!;
        const r = await rig.paced(n);
        windows.push({ pair, target: rig.target, result: r });
        log(`  pair ${pair}/${opts.pairs} ${i === 0 ? 'A' : 'B'} ${rig.target}: relay ${fmt(r.relayUsPerEvent, 2)} µs/ev (${fmt(r.relayCpuPct, 0)}% core), u→c p99 ${fmt(r.u2c.p99 / 1000, 2)} ms, c→u p99 ${fmt(r.c2u.p99 / 1000, 2)} ms, foreign ${r.foreignPct.map((u) => fmt(u, 0) + '%').join('/')}, errors ${r.errors}`);
      }
    }
  } finally {
    for (const rig of rigs) await rig.stop();
  }
  const side = (i: 0 | 1, value: (r: PacedResult) => number | null) =>
    Array.from({ length: opts.pairs }, (_, k) => {
      // By position, not by target name: with one target on both sides (the noise floor) A is the first rig.
      const inPair = windows.filter((w) => w.pair === k + 1);
      const first = k % 2 === 0 ? 0 : 1;
      const w = inPair[i === 0 ? first : 1 - first];
      const v = w && w.result.errors === 0 ? value(w.result) : null;
      return v ?? Number.NaN;
    });
  const metric = (name: string, value: (r: PacedResult) => number | null) => {
    const a = side(0, value);
    const b = side(1, value);
    return { metric: name, a, b, summary: summarisePairs(a, b) };
  };
  return {
    targets: [ta, tb],
    sessions: n,
    windows,
    metrics: [
      metric('relay µs per event', (r) => r.relayUsPerEvent),
      metric('u→c p99 (ms)', (r) => r.u2c.p99 / 1000),
      metric('c→u p99 (ms)', (r) => r.c2u.p99 / 1000),
    ],
  };
}

function pairedMarkdown(commit: string, machine: MachineInfo, run: PairedRun): string {
  const [ta, tb] = run.targets;
  const lines = [
    `Commit ${commit}. ${machine.nproc} × ${machine.cpuModel}, Node ${machine.node}. Paired windows: A = ${ta}, B = ${tb}, ${run.sessions} paced sessions, ${opts.pairs} pairs (order AB, BA, …), ${opts.warmupSec} s warm-up and ${opts.measureSec} s per window.`,
    '',
    '| metric | A median | B median | B / A median of pairs | 90 % interval | pairs B higher | sign test p |',
    '|---|---:|---:|---:|---|---:|---:|',
  ];
  for (const m of run.metrics) {
    const s = m.summary;
    lines.push(`| ${m.metric} | ${fmt(median(m.a), 2)} | ${fmt(median(m.b), 2)} | ${fmt(s.medianRatio, 3)} | ${s.interval ? `${fmt(s.interval[0], 3)}–${fmt(s.interval[1], 3)}` : '–'} | ${s.bHigher} of ${s.pairs} | ${fmt(s.signTestP, 3)} |`);
  }
  lines.push('', 'Ratios per pair (relay µs per event, B / A): ' + run.metrics[0]!.summary.ratios.map((r) => fmt(r, 3)).join(', '));
  return lines.join('\n') + '\n';
}

/** The p99 (µs) at or under which a paced load counts as carried (issue 13: "before p99 passes 10 ms"). */
const CAPACITY_P99_US = 10_000;
const CAPACITY_STEP = 50;

interface CapacityProbe {
  readonly sessions: number;
  /** Median of the windows' u→c p99 (what the probe is judged on). */
  readonly p99Ms: number;
  /** Each window's u→c p99, in the order run. */
  readonly windowsP99Ms: readonly number[];
  readonly errors: number;
  readonly ok: boolean;
}

interface CapacityResult {
  readonly target: TargetName;
  /** Most sessions carried (0: not even the smallest step), or null when the search failed. */
  readonly sessions: number | null;
  readonly probes: readonly CapacityProbe[];
}

/**
 * The most paced sessions with u→c p99 ≤ 10 ms and no errors: doubling from 100 until a load is not
 * carried, then bisection. Each window of a probe runs on fresh processes, so an overloaded window
 * (its backlog, its grown heap) does not spoil the next one; a probe is judged on the median p99 of
 * its windows because one window's p99 moves by 2x between processes at the same load.
 */
async function runCapacity(target: TargetName, logFd: number): Promise<CapacityResult> {
  const probes: CapacityProbe[] = [];
  const window = async (n: number): Promise<{ p99Ms: number; errors: number; cpuPct: number }> => {
    const rig = new Rig(target, logFd);
    try {
      await rig.start();
      const r = await rig.paced(n);
      // A session that never opened is an error of this load too.
      return { p99Ms: r.u2c.p99 / 1000, errors: r.errors + (n - r.opened), cpuPct: r.relayCpuPct ?? Number.NaN };
    } finally {
      await rig.stop();
    }
  };
  const probe = async (n: number): Promise<boolean> => {
    const windows = [];
    for (let i = 0; i < opts.capacityWindows; i++) windows.push(await window(n));
    const p99Ms = median(windows.map((w) => w.p99Ms));
    const errors = windows.reduce((a, w) => a + w.errors, 0);
    const ok = errors === 0 && p99Ms <= CAPACITY_P99_US / 1000;
    probes.push({ sessions: n, p99Ms, windowsP99Ms: windows.map((w) => w.p99Ms), errors, ok });
    const each = windows.map((w) => `${fmt(w.p99Ms, 2)} ms (${fmt(w.cpuPct, 0)}% core)`).join(', ');
    log(`  ${target} capacity probe ${n}: u→c p99 median ${fmt(p99Ms, 2)} ms of ${each}, errors ${errors} → ${ok ? 'carried' : 'not carried'}`);
    return ok;
  };
  try {
    let lo = 0; // carried
    let hi = 0; // not carried (0: none found yet)
    for (let n = 100; n <= opts.capacityMax; n *= 2) {
      if (await probe(n)) lo = n;
      else {
        hi = n;
        break;
      }
    }
    if (hi === 0) return { target, sessions: lo, probes };
    while (hi - lo > CAPACITY_STEP) {
      const n = Math.round((lo + hi) / 2 / CAPACITY_STEP) * CAPACITY_STEP;
      if (await probe(n)) lo = n;
      else hi = n;
    }
    return { target, sessions: lo, probes };
  } catch (err) {
    log(`  ${target} capacity FAILED: ${failureWithLog(err)}`);
    return { target, sessions: null, probes };
  }
}

function capacityMarkdown(rows: readonly CapacityResult[]): string[] {
  if (rows.length === 0) return [];
  const out = ['', `**Paced sessions one core carries with u→c p99 ≤ ${CAPACITY_P99_US / 1000} ms and no errors** (doubling from 100, then bisection in steps of ${CAPACITY_STEP}; each probe ${opts.capacityWindows} × ${opts.measureSec} s windows on fresh processes, judged on their median p99)`, '', '| target | sessions per core | probes (sessions: median p99 ms [each window]) |', '|---|---:|---|'];
  for (const r of rows) {
    const probes = r.probes.map((p) => `${p.sessions}: ${fmt(p.p99Ms, 1)}${p.windowsP99Ms.length > 1 ? ` [${p.windowsP99Ms.map((w) => fmt(w, 1)).join(', ')}]` : ''}${p.errors ? ` (${p.errors} errors)` : ''}`).join(', ');
    out.push(`| ${TARGETS[r.target].label} | ${r.sessions === null ? 'failed' : r.sessions === 0 ? `< ${CAPACITY_STEP}` : r.sessions} | ${probes} |`);
  }
  return out;
}

// ---- reporting ----------------------------------------------------------------------------------

function fmt(v: number | null | undefined, digits: number): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

function log(line: string): void {
  console.log(line);
}

interface Summary {
  readonly target: TargetName;
  readonly label: string;
  readonly runs: number;
  readonly paced: readonly {
    readonly sessions: number;
    readonly eventsPerSec: number;
    readonly relayCpuPct: number | null;
    readonly relayUsPerEvent: number | null;
    readonly relaySystemPct: number | null;
    readonly generatorCpuPct: number;
    readonly foreignPct: readonly number[];
    readonly u2cP50Ms: number;
    readonly u2cP99Ms: number;
    readonly c2uP50Ms: number;
    readonly c2uP99Ms: number;
    readonly addedU2cP50Ms: number | null;
    readonly addedU2cP99Ms: number | null;
    readonly addedC2uP50Ms: number | null;
    readonly addedC2uP99Ms: number | null;
    readonly relayRssMiB: number | null;
    readonly loopDelayP99Ms: number | null;
    /** Longest event-loop stall in the window (timer lateness at a 1 ms resolution). */
    readonly loopDelayMaxMs: number | null;
    readonly gcMaxMs: number | null;
    /** Mark-compacts in the window (perf_hooks 'major' GC entries). */
    readonly markCompacts: number | null;
    /** GC pauses of every kind in the window (perf_hooks 'gc' entries). */
    readonly gcPauses: number | null;
    /** Worst repetition. */
    readonly errors: number;
    /** Spread of µs/event across repetitions (max − min), the noise. */
    readonly usPerEventSpread: number | null;
  }[];
  readonly throughput: {
    readonly eventsPerSec: number;
    readonly relayUsPerEvent: number | null;
    readonly relaySystemPct: number | null;
    readonly relayCpuPct: number | null;
    readonly generatorCpuPct: number;
    readonly errors: number;
    readonly usPerEventSpread: number | null;
  } | null;
  readonly idle: {
    /** Medians over the repetitions; `opened` the fewest any repetition opened. Null: --idle 0. */
    readonly first: IdleBatch | null;
    readonly second: IdleBatch | null;
    readonly baseRssMiB: number;
    readonly settledRssMiB: number | null;
    readonly servedRssMiB: number | null;
    readonly cliRssMiB: number | null;
  } | null;
}

const medOrNull = (xs: readonly (number | null)[]): number | null => {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length ? median(v) : null;
};
const spread = (xs: readonly (number | null)[]): number | null => {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return v.length > 1 ? Math.max(...v) - Math.min(...v) : null;
};

/** Medians of one idle batch over the repetitions; the fewest sessions any of them opened. */
function medianBatch(batches: readonly (IdleBatch | null)[]): IdleBatch | null {
  const bs = batches.filter((b): b is IdleBatch => b !== null);
  if (bs.length === 0) return null;
  return {
    requested: bs[0]!.requested,
    opened: Math.min(...bs.map((b) => b.opened)),
    rssPerSessionKiB: median(bs.map((b) => b.rssPerSessionKiB)),
    rssWithYoungPerSessionKiB: median(bs.map((b) => b.rssWithYoungPerSessionKiB)),
    heapPerSessionKiB: median(bs.map((b) => b.heapPerSessionKiB)),
  };
}

/** "… of N opened" when a batch fell short: its per-session figure then carries more of the fixed costs. */
const openedText = (b: IdleBatch): string => (b.opened < b.requested ? `only ${b.opened} of ${b.requested} opened` : `${b.opened} sessions`);

function idleBatchText(b: IdleBatch): string {
  return `${fmt(b.rssPerSessionKiB, 1)} KiB RSS/session without the young generation (${fmt(b.rssWithYoungPerSessionKiB, 1)} with it), heap ${fmt(b.heapPerSessionKiB, 1)} KiB (${openedText(b)})`;
}

function summarise(runs: readonly TargetRun[]): Summary[] {
  const out: Summary[] = [];
  for (const target of opts.targets) {
    const mine = runs.filter((r) => r.target === target && r.ok);
    if (mine.length === 0) continue;
    const paced = opts.sessions.map((n) => {
      const rs = mine.map((r) => ({ r: r.paced.find((p) => p.sessions === n), rep: r.rep })).filter((x) => x.r !== undefined) as { r: PacedResult; rep: number }[];
      const added = (pick: (p: PacedResult) => number) =>
        medOrNull(
          rs.map(({ r, rep }) => {
            const d = runs.find((x) => x.target === 'direct' && x.rep === rep && x.ok)?.paced.find((p) => p.sessions === n);
            return d ? (pick(r) - pick(d)) / 1000 : null;
          }),
        );
      return {
        sessions: n,
        eventsPerSec: median(rs.map(({ r }) => r.eventsPerSec)),
        relayCpuPct: medOrNull(rs.map(({ r }) => r.relayCpuPct)),
        relayUsPerEvent: medOrNull(rs.map(({ r }) => r.relayUsPerEvent)),
        relaySystemPct: medOrNull(rs.map(({ r }) => r.relaySystemPct)),
        generatorCpuPct: median(rs.map(({ r }) => r.generatorCpuPct)),
        foreignPct: [0, 1].map((core) => median(rs.map(({ r }) => r.foreignPct[core] ?? Number.NaN))),
        u2cP50Ms: median(rs.map(({ r }) => r.u2c.p50)) / 1000,
        u2cP99Ms: median(rs.map(({ r }) => r.u2c.p99)) / 1000,
        c2uP50Ms: median(rs.map(({ r }) => r.c2u.p50)) / 1000,
        c2uP99Ms: median(rs.map(({ r }) => r.c2u.p99)) / 1000,
        addedU2cP50Ms: target === 'direct' ? null : added((p) => p.u2c.p50),
        addedU2cP99Ms: target === 'direct' ? null : added((p) => p.u2c.p99),
        addedC2uP50Ms: target === 'direct' ? null : added((p) => p.c2u.p50),
        addedC2uP99Ms: target === 'direct' ? null : added((p) => p.c2u.p99),
        relayRssMiB: medOrNull(rs.map(({ r }) => r.relayRssMiB)),
        loopDelayP99Ms: medOrNull(rs.map(({ r }) => r.relayLoop?.delayP99Ms ?? null)),
        loopDelayMaxMs: medOrNull(rs.map(({ r }) => r.relayLoop?.delayMaxMs ?? null)),
        gcMaxMs: medOrNull(rs.map(({ r }) => r.relayLoop?.gcMaxMs ?? null)),
        markCompacts: medOrNull(rs.map(({ r }) => (r.relayLoop ? (r.relayLoop.gcByKind['mark-compact']?.count ?? 0) : null))),
        gcPauses: medOrNull(rs.map(({ r }) => r.relayLoop?.gcCount ?? null)),
        errors: Math.max(0, ...rs.map(({ r }) => r.errors)),
        usPerEventSpread: spread(rs.map(({ r }) => r.relayUsPerEvent)),
      };
    });
    const tps = mine.map((r) => r.throughput).filter((t): t is ThroughputResult => !!t);
    const idles = mine.map((r) => r.idle).filter((t): t is IdleRun => !!t);
    out.push({
      target,
      label: TARGETS[target].label,
      runs: mine.length,
      paced,
      throughput: tps.length
        ? {
            eventsPerSec: median(tps.map((t) => t.eventsPerSec)),
            relayUsPerEvent: medOrNull(tps.map((t) => t.relayUsPerEvent)),
            relaySystemPct: medOrNull(tps.map((t) => t.relaySystemPct)),
            usPerEventSpread: spread(tps.map((t) => t.relayUsPerEvent)),
            relayCpuPct: medOrNull(tps.map((t) => t.relayCpuPct)),
            generatorCpuPct: median(tps.map((t) => t.generatorCpuPct)),
            errors: Math.max(0, ...tps.map((t) => t.errors)),
          }
        : null,
      idle: idles.length
        ? {
            first: medianBatch(idles.map((i) => i.first)),
            second: medianBatch(idles.map((i) => i.second)),
            baseRssMiB: median(idles.map((i) => i.baseRssMiB)),
            settledRssMiB: idles.every((i) => i.settledRssMiB !== null) ? median(idles.map((i) => i.settledRssMiB!)) : null,
            servedRssMiB: medOrNull(idles.map((i) => i.servedRssMiB)),
            cliRssMiB: medOrNull(idles.map((i) => i.cliRssMiB)),
          }
        : null,
    });
  }
  return out;
}

interface Goal {
  readonly goal: string;
  readonly value: string;
  readonly met: boolean | null;
}

/** A relay at or above this share of its core is queueing: its figures say "saturated", not "cost". */
const SATURATED_PCT = 90;

/**
 * GC pauses per second past which a relay at 500 paced sessions is in the "slow GC mode" (normal:
 * ~1.3/s on the 2-core Xeon here; the mode read ~2.9/s on 2026-12-02 and 2026-12-06).
 */
const GC_PAUSES_PER_SEC_MAX = 2;

/** The paced load the tail, stall and GC targets are judged at (issue 13). */
const TAIL_SESSIONS = 500;

/**
 * Issue 13's targets, for each of this proxy's targets present: CPU/event against the byte
 * passthrough (≤ 1.0×, stretch 0.8×) at every paced load, and against the naive relay and the
 * Portkey gateway (≤ 0.5×); one-way p99 within +1 ms of the passthrough's at 500 paced sessions;
 * no event-loop stall > 5 ms and no mark-compact more often than every 10 s at that load; RSS at
 * start ≤ 80 MB and ≤ 32 KiB per idle session. A relay at ≥ 90% of its core is saturated: its
 * CPU/event is printed but says "queueing", not "cost".
 */
function goals(summary: readonly Summary[]): Goal[] {
  const s = (t: TargetName) => summary.find((x) => x.target === t);
  const out: Goal[] = [];
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a != null && b != null && b > 0 ? a / b : null);
  const sat = (p: { relayCpuPct: number | null }) => ((p.relayCpuPct ?? 0) >= SATURATED_PCT ? ' (saturated)' : '');
  for (const t of ['governed', 'proxy'] as const) {
    const mine = s(t);
    if (!mine) continue;
    for (const [other, limit, label] of [
      ['passthrough', 1.0, 'byte passthrough'],
      ['naive', 0.5, 'naive relay'],
      ['portkey', 0.5, 'Portkey gateway'],
    ] as const) {
      const theirs = s(other);
      if (!theirs) continue;
      for (const p of mine.paced) {
        const q = theirs.paced.find((x) => x.sessions === p.sessions);
        const r = q ? ratio(p.relayUsPerEvent, q.relayUsPerEvent) : null;
        out.push({
          goal: `${t}: CPU/event ≤ ${limit.toFixed(1)}× ${label} at ${p.sessions} paced sessions${other === 'passthrough' ? ' (stretch 0.8×)' : ''}`,
          value: r === null ? 'n/a' : `${r.toFixed(2)}× (${fmt(p.relayUsPerEvent, 2)}${sat(p)} vs ${fmt(q!.relayUsPerEvent, 2)}${sat(q!)} µs)`,
          met: r === null ? null : r <= limit,
        });
      }
    }
    const at = mine.paced.find((x) => x.sessions === TAIL_SESSIONS);
    const pass = s('passthrough')?.paced.find((x) => x.sessions === TAIL_SESSIONS);
    if (at && pass) {
      const du = at.u2cP99Ms - pass.u2cP99Ms;
      const dc = at.c2uP99Ms - pass.c2uP99Ms;
      out.push({
        goal: `${t}: one-way p99 within +1 ms of the byte passthrough's at ${TAIL_SESSIONS} paced sessions`,
        value: `u→c ${fmt(at.u2cP99Ms, 3)} vs ${fmt(pass.u2cP99Ms, 3)} ms (${du >= 0 ? '+' : ''}${fmt(du, 3)}); c→u ${fmt(at.c2uP99Ms, 3)} vs ${fmt(pass.c2uP99Ms, 3)} ms (${dc >= 0 ? '+' : ''}${fmt(dc, 3)})`,
        met: Number.isFinite(du) && Number.isFinite(dc) ? du <= 1 && dc <= 1 : null,
      });
    }
    if (at) {
      out.push({
        goal: `${t}: no event-loop stall > 5 ms at ${TAIL_SESSIONS} paced sessions`,
        value: at.loopDelayMaxMs === null ? 'n/a' : `longest ${fmt(at.loopDelayMaxMs, 1)} ms (timer lateness, 1 ms resolution; p99 ${fmt(at.loopDelayP99Ms, 1)} ms; longest GC pause ${fmt(at.gcMaxMs, 1)} ms)`,
        met: at.loopDelayMaxMs === null ? null : at.loopDelayMaxMs <= 5,
      });
      const mc = at.markCompacts;
      out.push({
        goal: `${t}: no mark-compact more often than every 10 s at ${TAIL_SESSIONS} paced sessions`,
        value: mc === null ? 'n/a' : mc === 0 ? `none in the ${opts.measureSec} s window` : `${mc} in ${opts.measureSec} s (one per ${fmt(opts.measureSec / mc, 1)} s)`,
        met: mc === null ? null : mc === 0 || opts.measureSec / mc >= 10,
      });
      // A regression alarm, not one of the issue's targets: twice a change of a few allocations per
      // turn tipped V8 into a mode where scavenges run twice as often and promote ~3x as much
      // (22-24 GC pauses per 8 s window against 10-11; the p99 followed). Caught by eye both times.
      if (at.gcPauses !== null && at.relayUsPerEvent !== null) {
        const perSec = at.gcPauses / opts.measureSec;
        out.push({
          goal: `${t}: GC pauses ≤ ${GC_PAUSES_PER_SEC_MAX}/s at ${TAIL_SESSIONS} paced sessions (regression check: the "slow GC mode")`,
          value: `${fmt(perSec, 2)}/s (${at.gcPauses} in ${opts.measureSec} s)`,
          met: perSec <= GC_PAUSES_PER_SEC_MAX,
        });
      }
    }
    const i = mine.idle;
    if (i) {
      const settled =
        i.settledRssMiB !== null
          ? `${fmt(i.settledRssMiB, 1)} MiB settled (V8 gave back the young generation boot grew)`
          : !i.second || opts.settleSec <= 0
            ? 'settled RSS not read (--idle 0 or --settle 0)'
            : 'not settled within --settle';
      out.push({
        goal: `${t}: RSS at start ≤ 80 MB`,
        value: `${i.cliRssMiB === null ? '' : `**${fmt(i.cliRssMiB, 1)} MiB started by its CLI** (production flags, no bench harness, after --settle); in the bench child: `}${fmt(i.baseRssMiB, 1)} MiB as booted (after a GC, before any session); ${settled}${i.servedRssMiB === null ? '' : `; ${fmt(i.servedRssMiB, 1)} MiB after one session (background thread running)`}`,
        met: (i.cliRssMiB ?? i.settledRssMiB ?? i.baseRssMiB) * 1.048576 <= 80,
      });
      const goal = `${t}: ≤ 32 KiB RSS per idle session`;
      const { first, second } = i;
      // Judged only when every session of both batches opened: a short batch's figure follows the load.
      const complete = !!first && !!second && first.opened === first.requested && second.opened === second.requested;
      out.push(
        !first || !second || second.opened === 0
          ? { goal, value: 'not measured (no idle sessions opened)', met: null }
          : {
              goal,
              value: `${complete ? '' : 'not judged (not all opened): '}second ${second.requested} on the same process: ${idleBatchText(second)}; the first ${first.requested} (one-off costs included): ${idleBatchText(first)}`,
              met: complete ? second.rssPerSessionKiB <= 32 : null,
            },
      );
    }
  }
  return out;
}

function idleCell(b: IdleBatch): string {
  return `${fmt(b.rssPerSessionKiB, 1)} / ${fmt(b.rssWithYoungPerSessionKiB, 1)} KiB; ${fmt(b.heapPerSessionKiB, 1)} KiB${b.opened < b.requested ? ` (${b.opened} of ${b.requested} opened)` : ''}`;
}

function markdown(machine: MachineInfo, summary: readonly Summary[], goalList: readonly Goal[], profiles: Record<string, ProfileSummary | null>): string {
  const lines: string[] = [];
  lines.push(`Machine: ${machine.nproc} × ${machine.cpuModel}, ${machine.memTotalMiB} MiB, Linux ${machine.kernel}, Node ${machine.node}. ` + `Relay pinned alone to core ${RELAY_CPU}; load generator and fake upstream on core ${LOAD_CPU}${opts.pin ? '' : ' (pinning disabled)'}. ` + `Medians of ${opts.repeat} repetition(s); ${opts.measureSec} s windows after ${opts.warmupSec} s warm-up (${opts.warmupSec + opts.processWarmupSec} s for a relay process's first window: its code compiled first). Paced: one append of 20–40 ms PCM16 per 20–40 ms per session, a turn every ~${opts.turnMs / 1000} s (25 × 40 ms audio deltas + transcript deltas).`);
  lines.push('');
  for (const n of opts.sessions) {
    lines.push(`**${n} paced sessions**`);
    lines.push('');
    lines.push('| target | events/s | relay CPU (kernel share) | relay µs/event (spread) | u→c p50 / p99 (ms) | c→u p50 / p99 (ms) | added u→c p50 / p99 (ms) | added c→u p50 / p99 (ms) | relay loop delay p99 / longest GC (ms) | relay RSS | errors | foreign load core 0 / 1 |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const s of summary) {
      const p = s.paced.find((x) => x.sessions === n);
      if (!p) continue;
      lines.push(
        `| ${s.label} | ${fmt(p.eventsPerSec, 0)} | ${p.relayCpuPct === null ? '–' : `${fmt(p.relayCpuPct, 0)}% (${fmt(p.relaySystemPct, 0)}%)`} | ${fmt(p.relayUsPerEvent, 2)}${p.usPerEventSpread === null ? '' : ` (±${fmt(p.usPerEventSpread / 2, 2)})`} | ${fmt(p.u2cP50Ms, 3)} / ${fmt(p.u2cP99Ms, 3)} | ${fmt(p.c2uP50Ms, 3)} / ${fmt(p.c2uP99Ms, 3)} | ${fmt(p.addedU2cP50Ms, 3)} / ${fmt(p.addedU2cP99Ms, 3)} | ${fmt(p.addedC2uP50Ms, 3)} / ${fmt(p.addedC2uP99Ms, 3)} | ${fmt(p.loopDelayP99Ms, 1)} / ${fmt(p.gcMaxMs, 1)} | ${p.relayRssMiB === null ? '–' : `${fmt(p.relayRssMiB, 0)} MiB`} | ${p.errors} | ${p.foreignPct.map((f) => (Number.isFinite(f) ? `${fmt(f, 0)}%` : '–')).join(' / ')} |`,
      );
    }
    lines.push('');
  }
  lines.push(`**Unpaced throughput (${opts.throughputSessions} closed-loop sessions) and idle memory**`);
  lines.push('');
  lines.push('| target | events/s | relay CPU (kernel share) | relay µs/event (spread) | generator CPU | RSS per idle session, second batch (without / with the young generation; heap) [first batch] |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  for (const s of summary) {
    const t = s.throughput;
    lines.push(
      `| ${s.label} | ${fmt(t?.eventsPerSec, 0)} | ${t?.relayCpuPct == null ? '–' : `${fmt(t.relayCpuPct, 0)}% (${fmt(t.relaySystemPct, 0)}%)`} | ${fmt(t?.relayUsPerEvent, 2)}${t?.usPerEventSpread == null ? '' : ` (±${fmt(t.usPerEventSpread / 2, 2)})`} | ${t ? `${fmt(t.generatorCpuPct, 0)}%` : '–'} | ${s.idle?.second && s.idle.first ? `${idleCell(s.idle.second)} [${idleCell(s.idle.first)}]` : '–'} |`,
    );
  }
  lines.push('');
  lines.push('| goal | measured | met |');
  lines.push('|---|---|---|');
  for (const g of goalList) lines.push(`| ${g.goal} | ${g.value} | ${g.met === null ? 'n/a' : g.met ? 'yes' : '**no**'} |`);
  for (const [t, p] of Object.entries(profiles)) {
    if (!p) continue;
    lines.push('');
    lines.push(`**Profile: ${t}, ${opts.profileThroughput ? `unpaced throughput, ${opts.throughputSessions} sessions` : `${opts.profileSessions} paced sessions`}** (self time, % of busy samples; idle ${p.idlePct}%, GC ${p.gcPct}%)`);
    lines.push('');
    lines.push('| area | % |');
    lines.push('|---|---:|');
    for (const [a, v] of Object.entries(p.areas).slice(0, 12)) lines.push(`| ${a} | ${v} |`);
    lines.push('');
    lines.push('| function | where | self % |');
    lines.push('|---|---|---:|');
    for (const l of p.top.slice(0, 20)) lines.push(`| \`${l.fn}\` | ${l.where} | ${l.selfPct} |`);
  }
  return lines.join('\n') + '\n';
}

// ---- main ---------------------------------------------------------------------------------------

/** The commit measured: the checkout's HEAD (plus "dirty" when it has local changes), or BENCH_COMMIT for an exported tree. */
function commitUnderTest(): string {
  try {
    const head = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head} (src/ has uncommitted changes)` : head;
  } catch {
    return process.env['BENCH_COMMIT'] ?? 'unknown';
  }
}

async function main(): Promise<void> {
  const machine = machineInfo();
  const commit = commitUnderTest();
  for (const t of opts.targets) {
    const c = TARGETS[t].config;
    if (c && !existsSync(resolve(REPO_ROOT, c))) throw new Error(`target ${t}: ${c} does not exist`);
  }
  mkdirSync(join(opts.out, 'logs'), { recursive: true });
  const logFile = join(opts.out, 'logs', 'children.log');
  const logFd = openSync(logFile, 'w');
  log(`bench: commit ${commit}; ${machine.nproc} × ${machine.cpuModel}, Node ${machine.node}, load ${machine.loadavg}; ${opts.paired.length === 2 ? `paired ${opts.paired.join(' vs ')}, ${opts.pairs} pairs` : `targets ${opts.targets.join(', ')}`}; paced ${opts.sessions.join('/')}; repeat ${opts.repeat}; child logs in ${logFile}`);
  if (machine.nproc < 2 && opts.pin) log('  warning: fewer than 2 cores; pinning puts everything on one core');
  const started = Date.now();
  if (opts.paired.length === 2) {
    const run = await runPaired(logFd);
    closeSync(logFd);
    const md = pairedMarkdown(commit, machine, run);
    console.log('\n' + md);
    mkdirSync(opts.out, { recursive: true });
    const result = { date: new Date().toISOString(), commit, durationSec: Math.round((Date.now() - started) / 1000), machine, options: opts, paired: run };
    writeFileSync(join(opts.out, 'latest-paired.json'), JSON.stringify(result, null, 2) + '\n');
    writeFileSync(join(opts.out, 'latest-paired.md'), md);
    log(`wrote ${join(opts.out, 'latest-paired.json')} and latest-paired.md`);
    return;
  }
  const runs: TargetRun[] = [];
  for (let rep = 1; rep <= opts.repeat; rep++) {
    // Rotate the order per repetition so slow drift (other work on the machine) spreads over targets.
    const order = opts.targets.map((_, i) => opts.targets[(i + rep - 1) % opts.targets.length]!);
    for (const t of order) {
      log(`rep ${rep}/${opts.repeat}: ${t}`);
      runs.push(await runTarget(t, rep, logFd));
    }
  }
  const workerRuns: WorkersRun[] = [];
  for (let rep = 1; rep <= (opts.workers.length ? opts.repeat : 0); rep++) {
    for (const w of opts.workers) {
      log(`rep ${rep}/${opts.repeat}: governed with ${w} worker(s)`);
      workerRuns.push(await runWorkers(w, rep, logFd));
    }
  }
  const capacity: CapacityResult[] = [];
  for (const t of opts.capacity) {
    log(`capacity: ${t}`);
    capacity.push(await runCapacity(t, logFd));
  }
  const profiles: Record<string, ProfileSummary | null> = {};
  if (opts.profile) {
    for (const t of opts.targets.filter((x) => x.startsWith('proxy') || x.startsWith('governed'))) {
      log(`profile: ${t}`);
      profiles[t] = await runProfile(t, logFd);
    }
  }
  closeSync(logFd);
  const summary = summarise(runs);
  const workersSummary = summariseWorkers(workerRuns);
  const goalList = [...goals(summary), ...workersGoal(workersSummary)];
  const extra = [...workersMarkdown(workersSummary), ...capacityMarkdown(capacity)];
  const md = `Commit ${commit}. ` + markdown(machine, summary, goalList, profiles) + extra.join('\n') + (extra.length ? '\n' : '');
  console.log('\n' + md);
  const result = { date: new Date().toISOString(), commit, durationSec: Math.round((Date.now() - started) / 1000), machine, options: opts, summary, workers: workersSummary, capacity, goals: goalList, profiles, runs, workerRuns };
  mkdirSync(opts.out, { recursive: true });
  const stem = quick ? 'latest-quick' : 'latest';
  writeFileSync(join(opts.out, `${stem}.json`), JSON.stringify(result, null, 2) + '\n');
  writeFileSync(join(opts.out, `${stem}.md`), md);
  log(`wrote ${join(opts.out, `${stem}.json`)} and ${stem}.md`);
}

await main();
