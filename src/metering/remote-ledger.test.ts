import { afterEach, describe, expect, it } from 'vitest';
import type { ReserveRequest, UsageRecord } from './ledger.js';
import { NO_CAPS } from './limits.js';
import { LedgerHost, RemoteLedger, type LedgerCall, type LedgerReply } from './remote-ledger.js';
import { SqliteLedger } from './sqlite-ledger.js';

const NOON = Date.UTC(2026, 0, 15, 12);
const ledgers: SqliteLedger[] = [];
afterEach(async () => {
  await Promise.all(ledgers.splice(0).map((l) => l.close()));
});

function owner(): SqliteLedger {
  const l = new SqliteLedger(':memory:', { wall: () => NOON });
  ledgers.push(l);
  return l;
}

/** A worker's RemoteLedger wired to a host over an in-memory channel (structured clone, like IPC). */
function wire(ledger: SqliteLedger, options: { drop?: (c: LedgerCall) => boolean } = {}) {
  const host = new LedgerHost(ledger);
  const sent: LedgerCall[] = [];
  const remote: RemoteLedger = new RemoteLedger({
    kind: 'sqlite',
    timeoutMs: 200,
    send: (call) => {
      sent.push(call);
      if (options.drop?.(call)) return true;
      const c = structuredClone(call);
      queueMicrotask(() => host.handle(c, (r: LedgerReply) => queueMicrotask(() => remote.onReply(structuredClone(r)))));
      return true;
    },
  });
  return { host, remote, sent };
}

const caps = { ...NO_CAPS, dayNanos: 1000 };
const usage = (costNanos: number): UsageRecord => ({ ts: NOON, tenant: 'acme', session: 's', source: 'response', ref: `resp_${costNanos}`, model: 'gpt-realtime', status: 'completed', costNanos, inputTokens: 1, outputTokens: 1, cachedTokens: 0, totalTokens: 2, input: null, cached: null, output: null, seconds: null, estimated: false, settledBy: 'response.done', fallbackPrice: false });
const reserve = (id: string, nanos: number): ReserveRequest => ({ tenant: 'acme', id, amount: { nanos, tokens: 0 }, caps, wallMs: NOON, mode: 'worst_case' });

describe('RemoteLedger + LedgerHost', () => {
  it('two workers reserving against one owner never grant more than the cap together', async () => {
    const l = owner();
    const a = wire(l);
    const b = wire(l);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).remote.reserve(reserve(`r${i}`, 300))));
    expect(results.filter((r) => r.kind === 'ok')).toHaveLength(3);
    expect(results.filter((r) => r.kind === 'over')).toHaveLength(7);
    // Refused for reservations others hold, not for spend: no "cap spent" hint.
    expect(a.remote.knownOver('acme', NOON)).toBeNull();
  });

  it('a spent cap becomes a synchronous hint for a second (server-started responses are cancelled before any frame)', async () => {
    const l = owner();
    const a = wire(l);
    expect(await a.remote.reserve(reserve('r1', 900))).toEqual({ kind: 'ok' });
    await a.remote.settle('r1', usage(1000));
    expect((await a.remote.reserve(reserve('r2', 1))).kind).toBe('over');
    expect(a.remote.knownOver('acme', NOON)).toMatchObject({ cap: 'daily_usd', spent: 1000, limit: 1000 });
    expect(a.remote.knownOver('acme', NOON + 1000)).toBeNull();
  });

  it('a worker that goes away has its reservations and session slots released by the host', async () => {
    const l = owner();
    const a = wire(l);
    const b = wire(l);
    expect(await a.remote.reserve(reserve('r1', 900))).toEqual({ kind: 'ok' });
    expect(await a.remote.acquireSlot('acme', 's1', 1, NOON)).toBe(true);
    expect(a.host.held).toEqual({ reservations: 1, slots: 1 });
    expect((await b.remote.reserve(reserve('r2', 900))).kind).toBe('over');
    expect(await b.remote.acquireSlot('acme', 's2', 1, NOON)).toBe(false);
    a.host.releaseAll();
    expect(await b.remote.reserve(reserve('r3', 900))).toEqual({ kind: 'ok' });
    expect(await b.remote.acquireSlot('acme', 's3', 1, NOON)).toBe(true);
  });

  it('settle bills on the owner and drops the reservation; the host forgets it', async () => {
    const l = owner();
    const a = wire(l);
    await a.remote.reserve(reserve('r1', 500));
    await a.remote.settle('r1', usage(400));
    expect(a.host.held.reservations).toBe(0);
    const s = await a.remote.status('acme', caps, NOON);
    expect(s.day.spent.nanos).toBe(400);
    expect(s.day.reserved.nanos).toBe(0);
  });

  it('every wait is bounded: an owner that does not answer makes reserve and acquireSlot unavailable, and the late grant is released', async () => {
    const l = owner();
    const silent = wire(l, { drop: (c) => c.method === 'reserve' || c.method === 'acquireSlot' });
    expect(await silent.remote.reserve(reserve('r1', 100))).toMatchObject({ kind: 'unavailable' });
    expect(await silent.remote.acquireSlot('acme', 's1', 5, NOON)).toBe('unavailable');
    // After the timeout the worker releases what the owner may still grant.
    expect(silent.sent.map((c) => `${c.method}:${c.id}`)).toEqual(expect.arrayContaining(['release:0', 'releaseSlot:0']));
    await expect(silent.remote.status('acme', caps, NOON)).resolves.toBeDefined();
  });

  it('a closed channel fails every call at once and readiness says so', async () => {
    const l = owner();
    const a = wire(l, { drop: () => true });
    const pending = a.remote.status('acme', caps, NOON);
    a.remote.disconnect();
    await expect(pending).rejects.toThrow(/unreachable/);
    expect(await a.remote.reserve(reserve('r', 1))).toMatchObject({ kind: 'unavailable' });
    expect(a.remote.readiness()).toMatch(/unreachable/);
  });
});
