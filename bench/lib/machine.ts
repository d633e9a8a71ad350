import { readFileSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';

export interface MachineInfo {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly kernel: string;
  readonly memTotalMiB: number;
  readonly loadavg: string;
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export function machineInfo(): MachineInfo {
  const cpuinfo = read('/proc/cpuinfo');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const memKb = Number(/^MemTotal:\s*(\d+)/m.exec(read('/proc/meminfo'))?.[1] ?? 0);
  return {
    nproc: availableParallelism(),
    cpuModel: model,
    node: process.version,
    kernel: release(),
    memTotalMiB: Math.round(memKb / 1024),
    loadavg: read('/proc/loadavg').trim().split(' ').slice(0, 3).join(' '),
  };
}

/** Busy and total jiffies per CPU from /proc/stat (for "how busy was each core" during a window). */
export type CoreTimes = readonly { readonly busy: number; readonly total: number }[];

export function coreTimes(): CoreTimes {
  const out: { busy: number; total: number }[] = [];
  for (const line of read('/proc/stat').split('\n')) {
    const m = /^cpu(\d+)\s+(.+)$/.exec(line);
    if (!m) continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    out[Number(m[1])] = { busy: total - idle, total };
  }
  return out;
}

/** Utilisation (0..1) of each core between two samples. */
export function coreUtilisation(a: CoreTimes, b: CoreTimes): number[] {
  return b.map((t, i) => {
    const p = a[i];
    if (!p) return Number.NaN;
    const total = t.total - p.total;
    return total > 0 ? (t.busy - p.busy) / total : Number.NaN;
  });
}
