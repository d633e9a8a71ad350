import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { startTestProxy } from '../support/harness.js';

/*
 * A platform team applies deploy/kubernetes as shipped on ordinary nodes (16 to 96 cores). The
 * config says `server.workers: auto`: one relay process per usable core, i.e. per core of the pod's
 * CPU limit, or of the node without one. Until 2026-12-07 the Deployment set no CPU limit and a 1 GiB
 * memory limit, so on a 32-core node the pod started 32 relay workers plus the primary: about 3 GiB
 * idle (each process ~90 MiB resident here), and the kernel OOM-killed it at start, over and over.
 *
 * The test measures what one relay process holds idle (a real primary's two workers, from
 * /proc) and checks that the processes the shipped pod starts on a 32-core node fit its limit.
 */

const dir = new URL('../../deploy/kubernetes', import.meta.url).pathname;
const NODE_CORES = 32;
const MIB = 1024 * 1024;

type Doc = Record<string, any>;
const docs = (file: string): Doc[] => parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => d.toJS() as Doc);

/** Kubernetes quantities: "2", "500m"; "1Gi", "512Mi". */
function cpuCores(q: string | number | undefined): number | null {
  if (q === undefined) return null;
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}
function bytes(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(q);
  expect(m, q).not.toBeNull();
  return Number(m![1]) * { Ki: 1024, Mi: MIB, Gi: 1024 * MIB, '': 1 }[m![2] ?? '']!;
}

function residentBytes(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

describe('deploy/kubernetes: relay workers fit the memory limit', () => {
  it(`the processes the pod starts on a ${NODE_CORES}-core node fit limits.memory`, { timeout: 60_000 }, async () => {
    const configMap = docs('config.yaml').find((d) => d['kind'] === 'ConfigMap' && d['metadata'].name === 'realtime-proxy-config')!;
    const container = docs('deployment.yaml').find((d) => d['kind'] === 'Deployment')!['spec'].template.spec.containers[0];
    const config = parseConfig(parse(configMap['data']['proxy.yaml']), 'proxy.yaml', { OPENAI_API_KEY: 'sk-test' });
    const limitCores = cpuCores(container.resources?.limits?.cpu);
    // As usableCores reads the pod's cgroup: the CPU limit's quota, rounded up, else the node's cores.
    const workers = config.server.workers === 'auto' ? Math.min(NODE_CORES, limitCores === null ? NODE_CORES : Math.ceil(limitCores)) : config.server.workers;
    const limit = bytes(container.resources.limits.memory);

    // What one idle relay process holds: the larger of a real primary's two workers, right after start.
    const tp = await startTestProxy({ config: { server: { workers: 2 }, policies: { watch: false }, metering: { ledger: { path: ':memory:' } } } });
    let perProcess = 0;
    try {
      for (const pid of tp.proxy.workers!.pids) if (pid !== null) perProcess = Math.max(perProcess, residentBytes(pid));
    } finally {
      await tp.stop();
    }
    expect(perProcess).toBeGreaterThan(16 * MIB);
    const processes = workers > 1 ? workers + 1 : 1;
    // Plus what the sessions may hold: server.memoryBudgetBytes, split between the workers.
    const need = processes * perProcess + config.server.memoryBudgetBytes;
    expect(need, `${processes} processes × ${Math.round(perProcess / MIB)} MiB idle + the memory budget, against limits.memory ${container.resources.limits.memory}`).toBeLessThan(limit);
  });
});
