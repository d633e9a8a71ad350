import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { startProxy } from '../../src/main.js';
import { procStats, serveChild, type ProcStats } from '../lib/ipc.js';
import { relayConfigInput } from '../lib/relay-config.js';

/**
 * Child process: this proxy, configured from a bench config file, relaying to the fake upstream.
 * argv[2]: upstream port, argv[3]: config file (bench/config/*.yaml).
 * BENCH_WORKERS: `server.workers` (default 1: the relay is one process pinned to one core).
 */
const upstreamPort = Number(process.argv[2]);
const file = resolve(process.argv[3] ?? 'bench/config/proxy-bare.yaml');
const doc = (parseYaml(readFileSync(file, 'utf8')) ?? {}) as Record<string, unknown>;
const workers = Number(process.env['BENCH_WORKERS'] ?? '1');
const input = relayConfigInput(doc, `ws://127.0.0.1:${upstreamPort}/v1/realtime`, workers);
// Hermetic: no environment overrides from the shell running the bench.
const config = parseConfig(input, file, {
  BENCH_DATA_DIR: process.env['BENCH_DATA_DIR'] ?? '',
  BENCH_OTLP_URL: process.env['BENCH_OTLP_URL'] ?? 'http://127.0.0.1:9/v1/traces',
});
const proxy = await startProxy(config, { baseDir: dirname(file) });

const TICK_US = 1e6 / 100; // USER_HZ: /proc times are in 1/100 s on Linux

/** CPU and RSS of a relay worker process, from /proc (0 when it is gone). */
function workerStats(pid: number): { user: number; system: number; rss: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const rssPages = Number(fields[21]);
    return { user: Number(fields[11]) * TICK_US, system: Number(fields[12]) * TICK_US, rss: rssPages * 4096 };
  } catch {
    return { user: 0, system: 0, rss: 0 };
  }
}

/** This process plus its relay workers: the relay's CPU is the sum of them all. */
function withWorkers(own: ProcStats): ProcStats {
  const pids = proxy.workers?.pids ?? [];
  let user = own.cpuUserUs;
  let system = own.cpuSystemUs;
  let rss = own.rss;
  for (const pid of pids) {
    if (pid === null) continue;
    const w = workerStats(pid);
    user += w.user;
    system += w.system;
    rss += w.rss;
  }
  return { ...own, cpuUserUs: user, cpuSystemUs: system, rss };
}

serveChild(
  { port: proxy.port, workers: proxy.workers?.count ?? 1 },
  {
    counters: async () => ({ sessions: proxy.workers ? await proxy.workers.sessionCount() : proxy.server.sessionCount }),
    stats: () => withWorkers(procStats()),
    // The relay workers go with the relay: drain nothing, stop them, then exit (next turn, for --cpu-prof).
    exit: async () => {
      if (proxy.workers) await proxy.workers.shutdown(0);
      setTimeout(() => process.exit(0), 20);
      return null;
    },
  },
);
