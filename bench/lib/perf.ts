import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * Kernel time of a relay process, from Linux `perf` with the software clock (`-e cpu-clock`: the
 * only event these VMs offer; hardware counters are "not supported"). The V8 profile charges a
 * syscall to the JavaScript that made it; this shows what the kernel does inside it (a loopback
 * write, waking the reader) and how much of the relay's CPU is kernel at all.
 */

const run = promisify(execFile);

export interface PerfLine {
  readonly pct: number;
  readonly symbol: string;
}

export interface PerfSummary {
  readonly file: string;
  /** Share of the process's samples spent in the kernel. */
  readonly kernelPct: number;
  /** Kernel symbols by self time, % of all samples. */
  readonly kernel: readonly PerfLine[];
  /** Syscall entry points by inclusive time (what each syscall costs in all), % of all samples. */
  readonly syscalls: readonly PerfLine[];
}

/** Records `pid` (all its threads) for `seconds` into `file`; the reason, as a string, when perf is missing or refused. */
export async function perfRecord(pid: number, seconds: number, file: string): Promise<PerfSummary | string> {
  try {
    await run('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '2000', '-g', '-p', String(pid), '-o', file, '--', 'sleep', String(seconds)], { timeout: (seconds + 30) * 1000 });
  } catch (err) {
    return `perf record failed (install linux-perf; perf_event_paranoid may forbid it): ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
  }
  return perfSummarise(file);
}

/** Summarises a `perf record` data file (kernel share, syscalls, kernel symbols). */
export async function perfSummarise(file: string): Promise<PerfSummary> {
  const report = async (args: readonly string[]): Promise<string> =>
    (await run('perf', ['report', '-i', file, '--stdio', '-q', ...args], { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 })).stdout;
  const byDso = parse(await report(['--no-children', '--sort', 'dso', '-g', 'none']));
  const self = parse(await report(['--no-children', '--sort', 'dso,sym', '-g', 'none', '--percent-limit', '0.5']));
  const inclusive = parse(await report(['--children', '--sort', 'sym', '-g', 'none', '--percent-limit', '0.3']));
  return {
    file,
    kernelPct: byDso.filter((l) => l.symbol.includes('[kernel')).reduce((a, l) => a + l.pct, 0),
    kernel: self.filter((l) => l.symbol.includes('[k]')).map((l) => ({ pct: l.pct, symbol: l.symbol.replace(/^.*\[k\]\s*/, '') })).slice(0, 12),
    syscalls: syscallsOf(inclusive),
  };
}

/**
 * One line per syscall (write, sendto, recvfrom, epoll_pwait…) with its inclusive share: a syscall
 * shows under several kernel entry points (`__x64_sys_write`, `ksys_write`; some inlined), so each
 * name keeps its largest share.
 */
function syscallsOf(inclusive: readonly PerfLine[]): PerfLine[] {
  const byName = new Map<string, number>();
  for (const l of inclusive) {
    const m = /\[k\]\s+(?:__x64_sys_|__arm64_sys_|__sys_|ksys_|do_sys_)(\w+)/.exec(l.symbol);
    if (m) byName.set(m[1]!, Math.max(byName.get(m[1]!) ?? 0, l.pct));
  }
  return [...byName].map(([symbol, pct]) => ({ pct, symbol })).sort((a, b) => b.pct - a.pct).slice(0, 12);
}

/** `  12.34%  rest of the line` → { pct, symbol: rest }. */
function parse(text: string): PerfLine[] {
  const out: PerfLine[] = [];
  for (const line of text.split('\n')) {
    // --children prints two columns (children, self): the first is the inclusive share.
    const m = /^\s*([\d.]+)%\s+(?:[\d.]+%\s+)?(.+?)\s*$/.exec(line);
    if (m) out.push({ pct: Number(m[1]), symbol: m[2]! });
  }
  return out;
}

export function perfLines(p: PerfSummary, usPerEvent: number | null): string[] {
  const us = (pct: number) => (usPerEvent === null ? '' : ` (${((usPerEvent * pct) / 100).toFixed(2)} µs/event)`);
  return [
    `kernel ${p.kernelPct.toFixed(1)}% of the relay's samples${us(p.kernelPct)}; ${p.file}`,
    '  syscalls, inclusive:',
    ...p.syscalls.map((l) => `    ${l.pct.toFixed(1).padStart(5)}%${us(l.pct)}  ${l.symbol}`),
    '  kernel self time:',
    ...p.kernel.map((l) => `    ${l.pct.toFixed(1).padStart(5)}%${us(l.pct)}  ${l.symbol}`),
  ];
}
