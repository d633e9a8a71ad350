import { afterEach, describe, expect, it, vi } from 'vitest';
import { capturedLog } from '../../test/support/captured-log.js';
import { parseConfig } from '../config/load.js';
import { ProxyError } from '../protocol/errors.js';
import { TenantResolver } from '../tenants/resolver.js';
import type { Tenant } from '../tenants/tenant.js';
import { CallGovernors, type GovernorDeps } from './governor.js';
import { SqliteCallStore, type CallRecord } from './store.js';
import { FakeSideband } from '../../test/calls/fake-sideband.js';

/**
 * Red team 13 (2026-12-06): a hang-up the upstream failed four times (an OpenAI incident of a few
 * seconds) was remembered as done for good (`#hungUp`, once per call and process). The call's lease
 * lapses and this same instance claims the call again, as designed ("so an instance claims the call
 * again and governs it or finds it gone"), but every later hang-up of that call on this process was
 * a no-op: a call re-claimed over a spent cap was "hung up" without a request and ran on, unmetered
 * and unguarded, and a call governed again after the incident that then reached its cap had its
 * sideband closed and no hang-up sent: the tenant talked on past the cap.
 */


const TENANTS = { acme: { keys: [{ key: 'rpk_test_acme_0123456789abcdef' }] } };
const tenants: ReadonlyMap<string, Tenant> = new TenantResolver(parseConfig({ upstream: { provider: 'simulator' }, tenants: TENANTS }, '(governor red team)', {})).tenants;
const record = (): CallRecord => ({ tenant: 'acme', model: 'gpt-realtime', kind: 'webrtc', expiresAtMs: 100_000_000 });
const answer = (status: number) => Promise.resolve({ status, headers: new Headers(), body: Buffer.alloc(0) });

/** The upstream fails the first `failing` hang-ups (503: an incident), then answers them. */
function rig(failing: number, admitTakenOver: GovernorDeps['admitTakenOver']) {
  const config = parseConfig(
    { upstream: { provider: 'simulator' }, calls: { enabled: true, leaseSec: 30, onCap: 'hangup' }, tenants: TENANTS },
    '(governor red team)',
    {},
  );
  let wall = 1_000_000;
  const store = new SqliteCallStore(':memory:');
  const requests: string[] = [];
  const sidebands: FakeSideband[] = [];
  const { log } = capturedLog('debug');
  const governors = new CallGovernors({
    config,
    log,
    clock: { now: () => wall, wall: () => wall },
    upstream: {
      control: (callId: string, action: string) => {
        requests.push(`${action}:${callId}`);
        return answer(requests.length <= failing ? 503 : 200);
      },
      sidebandTarget: () => {
        throw new Error('not dialled here');
      },
    },
    store,
    tenant: (id) => tenants.get(id),
    ...(admitTakenOver ? { admitTakenOver } : {}),
    openSideband: (init) => {
      const s = new FakeSideband(init);
      sidebands.push(s);
      return s;
    },
  });
  const govern = async (callId: string) => {
    await store.putCall(callId, record(), governors.lease(), wall);
    return governors.start({ callId, tenant: tenants.get('acme')!, model: 'gpt-realtime', kind: 'webrtc' });
  };
  return { governors, store, requests, sidebands, govern, advance: (ms: number) => (wall += ms), wall: () => wall };
}

let open: CallGovernors[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const g of open) await g.close();
  open = [];
});

describe('a hang-up given up is not the end of the call (red team 13)', () => {
  it('a call re-claimed over a spent cap after its hang-up was given up is hung up (a request reaches the upstream), not left running', async () => {
    vi.useFakeTimers();
    const r = rig(4, async () => new ProxyError('budget_exceeded', { close: null }));
    open.push(r.governors);
    await r.govern('rtc_1');
    r.governors.capReached('rtc_1', true);
    // Four attempts (after 1, 2 and 4 s), all failed: given up, the sideband closed anyway.
    await vi.advanceTimersByTimeAsync(8000);
    expect(r.requests).toEqual(['hangup:rtc_1', 'hangup:rtc_1', 'hangup:rtc_1', 'hangup:rtc_1']);
    expect(r.sidebands[0]!.closedWith).toBe('budget_exceeded');
    // The call still runs upstream. Its lease lapses and this instance claims it again: refused
    // admission (the cap is spent), so it is to be hung up.
    r.advance(60_000);
    await r.governors.sweep();
    await vi.advanceTimersByTimeAsync(0);
    expect(r.requests).toEqual(['hangup:rtc_1', 'hangup:rtc_1', 'hangup:rtc_1', 'hangup:rtc_1', 'hangup:rtc_1']);
    // Answered this time: its lease is ended, nobody claims it again.
    r.advance(60_000);
    expect(await r.store.claimLapsed('gov_rival', r.wall() + 30_000, r.wall(), 10)).toEqual([]);
  });

  it('a call governed again after a lost sideband whose hang-up was given up is hung up when it later reaches its cap', async () => {
    vi.useFakeTimers();
    const r = rig(4, async () => null);
    open.push(r.governors);
    await r.govern('rtc_2');
    // The upstream drops the sideband (an incident), and fails the hang-ups for as long.
    r.sidebands[0]!.endBy(1006);
    await vi.advanceTimersByTimeAsync(8000);
    expect(r.requests).toHaveLength(4);
    // The incident is over: the lapsed call is claimed here and governed again.
    r.advance(60_000);
    await r.governors.sweep();
    expect(r.sidebands).toHaveLength(2);
    expect(r.governors.session('rtc_2')).toBe(r.sidebands[1]);
    // Later the call reaches its cap: it is hung up, then its sideband closed.
    r.governors.capReached('rtc_2', true);
    await vi.advanceTimersByTimeAsync(0);
    expect(r.requests).toEqual(['hangup:rtc_2', 'hangup:rtc_2', 'hangup:rtc_2', 'hangup:rtc_2', 'hangup:rtc_2']);
    expect(r.sidebands[1]!.closedWith).toBe('budget_exceeded');
    r.advance(60_000);
    expect(await r.store.claimLapsed('gov_rival', r.wall() + 30_000, r.wall(), 10)).toEqual([]);
  });
});
