import type { Session } from 'node:inspector';
import { createRequire } from 'node:module';
import { basename } from 'node:path';

/** node:inspector is loaded with the first profile, not with the bench child (it would count in the relay's RSS). */
function newSession(): Session {
  const { Session: InspectorSession } = createRequire(import.meta.url)('node:inspector') as typeof import('node:inspector');
  return new InspectorSession();
}

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
  session = newSession();
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
  // The relays run compiled (dist/) unless --from-source: both trees read as the source's areas.
  const u = cf.url.replace('/dist/', '/src/');
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
  // A native method without a script (uWS's send/cork, V8's builtins) is no node core code.
  if (u === '' && !/^(write|writev|writeBuffer|writeUtf8String|writeLatin1String)/.test(f)) return 'native (uWS, syscalls, V8 internals)';
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

interface SamplingHeapNode {
  readonly callFrame: CallFrame;
  readonly selfSize: number;
  readonly children: readonly SamplingHeapNode[];
}

/** `promotedOnly`: leave out objects a scavenge collected, so what remains is what reaches the old generation. */
export async function heapSampleStart(intervalBytes = 32 * 1024, promotedOnly = false): Promise<null> {
  session = newSession();
  session.connect();
  await post(session, 'HeapProfiler.enable');
  // Keep objects already collected in the sample: the churn is what drives the GC.
  await post(session, 'HeapProfiler.startSampling', { samplingInterval: intervalBytes, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !promotedOnly });
  return null;
}

export interface AllocationLine {
  readonly fn: string;
  readonly where: string;
  readonly mib: number;
  readonly pct: number;
}

/** Stops allocation sampling; returns the top allocation sites by bytes allocated (collected or not). */
export async function heapSampleStop(topN = 25): Promise<readonly AllocationLine[]> {
  if (!session) throw new Error('heap sampling not started');
  // Objects allocated since the last scavenge are still in the sample though most are garbage: one
  // minor GC first leaves what a scavenge really copies (the relay runs with --expose-gc).
  const gc = (globalThis as { gc?: (o: { type: 'minor' }) => void }).gc;
  gc?.({ type: 'minor' });
  const { profile } = await post<{ profile: { head: SamplingHeapNode } }>(session, 'HeapProfiler.stopSampling');
  session.disconnect();
  session = null;
  const by = new Map<string, { fn: string; where: string; bytes: number }>();
  let total = 0;
  // `ours`: the nearest frame of this proxy's own code on the stack, so a site inside Node or a
  // dependency says which of our calls led to it.
  const isOurs = (url: string) => /\/(dist|src)\//.test(url) && !url.includes('node_modules');
  const walk = (n: SamplingHeapNode, parent: string, ours: string) => {
    const cf = n.callFrame;
    const fn = cf.functionName || '(anonymous)';
    const where = cf.url ? `${basename(cf.url)}:${cf.lineNumber + 1}` : '';
    const here = where ? `${fn}@${where}` : parent;
    const oursHere = cf.url && isOurs(cf.url) ? `${fn}@${where}` : ours;
    if (n.selfSize > 0) {
      // Native allocations are charged to the JS frame that called them.
      const site = where ? `${fn}@${where}` : `${fn}@${parent}`;
      const key = oursHere && oursHere !== site ? `${site} ← ${oursHere}` : site;
      const e = by.get(key) ?? { fn, where: (where || `(in ${parent})`) + (oursHere && oursHere !== site ? ` ← ${oursHere}` : ''), bytes: 0 };
      e.bytes += n.selfSize;
      by.set(key, e);
      total += n.selfSize;
    }
    for (const c of n.children) walk(c, here, oursHere);
  };
  walk(profile.head, '(root)', '');
  return [...by.values()]
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, topN)
    .map((e) => ({ fn: e.fn, where: e.where, mib: Math.round((e.bytes / 1048576) * 10) / 10, pct: Math.round((e.bytes / Math.max(1, total)) * 1000) / 10 }));
}

export interface RetainedLine {
  readonly type: string;
  readonly name: string;
  readonly count: number;
  readonly kib: number;
}

/** A heap snapshot summarised by object type and constructor name (self sizes), largest first. */
export async function heapSummary(topN = 30): Promise<{ totalMiB: number; top: readonly RetainedLine[] }> {
  const s = newSession();
  s.connect();
  const chunks: string[] = [];
  s.on('HeapProfiler.addHeapSnapshotChunk', (m) => chunks.push((m.params as { chunk: string }).chunk));
  await post(s, 'HeapProfiler.enable');
  await post(s, 'HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  s.disconnect();
  const snap = JSON.parse(chunks.join('')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
    nodes: number[];
    strings: string[];
  };
  const f = snap.snapshot.meta.node_fields;
  const width = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const types = snap.snapshot.meta.node_types[0];
  const by = new Map<string, { type: string; name: string; count: number; bytes: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!] ?? '?';
    // Strings and code are grouped by type; objects by constructor.
    const name = type === 'object' || type === 'closure' ? snap.strings[snap.nodes[i + iName]!] ?? '?' : '';
    const size = snap.nodes[i + iSize]!;
    total += size;
    const key = `${type}:${name}`;
    const e = by.get(key) ?? { type, name, count: 0, bytes: 0 };
    e.count++;
    e.bytes += size;
    by.set(key, e);
  }
  const top = [...by.values()]
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, topN)
    .map((e) => ({ type: e.type, name: e.name, count: e.count, kib: Math.round(e.bytes / 1024) }));
  return { totalMiB: Math.round((total / 1048576) * 10) / 10, top };
}
