import { Session } from 'node:inspector';
import { basename } from 'node:path';

/**
 * V8 CPU profiles of a bench child, limited to the measurement window (the same sampler as
 * `node --cpu-prof`, without start-up and teardown in the picture), and their summary by
 * self time.
 */

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

let session: Session | null = null;

function post<T>(s: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => {
    s.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result as T)));
  });
}

export async function profileStart(intervalUs = 200): Promise<null> {
  session = new Session();
  session.connect();
  await post(session, 'Profiler.enable');
  await post(session, 'Profiler.setSamplingInterval', { interval: intervalUs });
  await post(session, 'Profiler.start');
  return null;
}

export async function profileStop(): Promise<CpuProfile> {
  if (!session) throw new Error('profiler not started');
  const { profile } = await post<{ profile: CpuProfile }>(session, 'Profiler.stop');
  session.disconnect();
  session = null;
  return profile;
}

export interface ProfileLine {
  readonly fn: string;
  readonly where: string;
  readonly selfMs: number;
  readonly selfPct: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Share of samples outside JS and GC: the process was waiting (epoll) — not CPU. */
  readonly idlePct: number;
  readonly gcPct: number;
  /** Self-time share by area, excluding idle (percent of busy time). */
  readonly areas: Readonly<Record<string, number>>;
  /** Top functions by self time, percent of busy time. */
  readonly top: readonly ProfileLine[];
}

/** Which part of the system a frame belongs to, for the "what dominates" breakdown. */
function areaOf(cf: CallFrame): string {
  const u = cf.url;
  const f = cf.functionName;
  if (f === '(garbage collector)') return 'gc';
  if (f === '(program)') return 'native (uWS, syscalls, V8 internals)';
  if (u.includes('/src/relay/')) return 'relay (src/relay)';
  if (u.includes('/src/pipeline/')) return 'pipeline (src/pipeline)';
  if (u.includes('/src/protocol/')) return 'protocol sniffing (src/protocol)';
  if (u.includes('/src/metering/')) return 'metering';
  if (u.includes('/src/policies/')) return 'policies';
  if (u.includes('/src/telemetry/')) return 'telemetry';
  if (u.includes('/src/server/')) return 'server (src/server)';
  if (u.includes('/node_modules/ws/')) return 'ws (upstream socket: framing, masking)';
  if (u.includes('/node_modules/pino') || u.includes('sonic-boom')) return 'logging (pino)';
  if (u.includes('/node_modules/@opentelemetry/')) return 'opentelemetry';
  if (u.includes('/node_modules/better-sqlite3/')) return 'sqlite';
  if (u.startsWith('node:') || u === '') {
    if (/^(write|writev|writeGeneric|writevGeneric|handleWriteReq|onWriteComplete|afterWriteDispatched|_write|_writev|Writable\.write|writeOrBuffer|doWrite)/.test(f) || u.includes('stream')) return 'node streams / socket writes';
    if (u.includes('net') || u.includes('stream_base')) return 'node net';
    if (f === '' && u === '') return 'native (uWS, syscalls, V8 internals)';
    return 'node core';
  }
  if (u.includes('/src/')) return `src/${u.split('/src/')[1]!.split('/')[0]}`;
  return 'other';
}

export function summarise(profile: CpuProfile, topN = 30): ProfileSummary {
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    // A sample's cost is the time until the next sample.
    for (let i = 0; i < samples.length; i++) {
      const next = deltas[i + 1] ?? 0;
      selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + Math.max(0, next));
    }
  } else {
    const per = (profile.endTime - profile.startTime) / Math.max(1, profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0));
    for (const n of profile.nodes) selfUs.set(n.id, (n.hitCount ?? 0) * per);
  }
  let total = 0;
  let idle = 0;
  let gc = 0;
  const byFn = new Map<string, { fn: string; where: string; us: number }>();
  const areas = new Map<string, number>();
  for (const n of profile.nodes) {
    const us = selfUs.get(n.id) ?? 0;
    if (us === 0) continue;
    total += us;
    const cf = n.callFrame;
    if (cf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    if (cf.functionName === '(garbage collector)') gc += us;
    const where = cf.url ? `${basename(cf.url)}:${cf.lineNumber + 1}` : '';
    const fn = cf.functionName || '(anonymous)';
    const key = `${fn}@${where}`;
    const e = byFn.get(key) ?? { fn, where, us: 0 };
    e.us += us;
    byFn.set(key, e);
    const area = areaOf(cf);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const busy = Math.max(1, total - idle);
  const top = [...byFn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((e) => ({ fn: e.fn, where: e.where, selfMs: Math.round(e.us / 100) / 10, selfPct: Math.round((e.us / busy) * 1000) / 10 }));
  const areaPct: Record<string, number> = {};
  for (const [k, v] of [...areas.entries()].sort((a, b) => b[1] - a[1])) areaPct[k] = Math.round((v / busy) * 1000) / 10;
  return {
    totalMs: Math.round(total / 1000),
    idlePct: Math.round((idle / Math.max(1, total)) * 1000) / 10,
    gcPct: Math.round((gc / busy) * 1000) / 10,
    areas: areaPct,
    top,
  };
}
