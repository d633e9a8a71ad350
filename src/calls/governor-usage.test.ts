import { afterEach, describe, expect, it } from 'vitest';
import { capturedLog } from '../../test/support/captured-log.js';
import { parseConfig } from '../config/load.js';
import { ProxyError } from '../protocol/errors.js';
import { TenantResolver } from '../tenants/resolver.js';
import { CallGovernors, type Sideband, type SidebandInit } from './governor.js';
import { SqliteCallStore, type CallRecord, type CallStore } from './store.js';

/*
 * The governor's half of a call's usage across takeovers: what it gives a sideband (SessionContext.carried,
 * from the store on a takeover) and how it writes the sideband's settles back (coalesced, before a
 * handover releases the lease). Metering's half: test/calls/takeover-limits-metering.test.ts; end to
 * end: test/calls/takeover-limits.test.ts.
 */
const TENANTS = { acme: { keys: [{ key: 'rpk_test_acme_0123456789abcdef' }] } };
const config = parseConfig(
  { upstream: { provider: 'simulator' }, calls: { enabled: true, leaseSec: 30, bindingTtlSec: 7200, onShutdown: 'handover' }, tenants: TENANTS },
  '(governor usage test)',
  {},
);
const tenants = new TenantResolver(config).tenants;
const WALL = 50_000_000;

/** A sideband that keeps what the governor gave it and ends when closed. */
class Recorded implements Sideband {
  readonly id: string;
  readonly log: SidebandInit['log'];
  ended = false;
  constructor(readonly init: SidebandInit) {
    this.id = init.id;
    this.log = init.log;
  }
  start(): void {}
  tick(): void {}
  fail(): void {}
  idle(): Promise<void> {
    return Promise.resolve();
  }
  endRecord(): Record<string, unknown> {
    return { initiator: 'proxy', upstreamCloseCode: 1000 };
  }
  close(_error: ProxyError): void {
    if (this.ended) return;
    this.ended = true;
    this.init.onEnded(this);
  }
}

function governors(store: CallStore) {
  const { log, lines } = capturedLog('debug');
  const sidebands: Recorded[] = [];
  const g = new CallGovernors({
    config,
    log,
    clock: { now: () => WALL, wall: () => WALL },
    upstream: { control: async () => ({ status: 200, headers: new Headers(), body: Buffer.alloc(0) }), sidebandTarget: () => { throw new Error('not dialled'); } },
    store,
    tenant: (id) => tenants.get(id),
    openSideband: (init) => {
      const s = new Recorded(init);
      sidebands.push(s);
      return s;
    },
  });
  live.push(g);
  return { g, sidebands, lines };
}
let live: CallGovernors[] = [];
afterEach(async () => {
  for (const g of live) await g.close();
  live = [];
});

const record = (extra: Partial<CallRecord> = {}): CallRecord => ({ tenant: 'acme', model: 'gpt-realtime', kind: 'webrtc', expiresAtMs: WALL + 3_600_000, ...extra });

describe('a call\'s usage toward its per-session limits, across instances', () => {
  it('a claimed call\'s sideband carries the call\'s start and the tokens the store kept; its settles go back to the store', async () => {
    const store = new SqliteCallStore(':memory:');
    await store.putCall('rtc_1', record({ startedAtMs: WALL - 40_000 }), { owner: 'gov_dead', untilMs: WALL - 1 }, WALL);
    await store.recordTokens('rtc_1', 'gov_dead', 700);
    const { g, sidebands } = governors(store);
    await g.sweep();
    const carried = sidebands[0]!.init.carried;
    expect([carried.startedAtWallMs, carried.tokens]).toEqual([WALL - 40_000, 700]);
    carried.settled(750);
    carried.settled(740);
    await Promise.resolve();
    // Handed over (the lease released): the next claimer gets 750.
    await g.close();
    expect((await store.claimLapsed('gov_next', WALL + 30_000, WALL, 10)).map((c) => [c.callId, c.tokens])).toEqual([['rtc_1', 750]]);
  });

  it('a record bound before 2026-12-06 (no start): its binding expiry less calls.bindingTtlSec; a call started here: now, with no tokens', async () => {
    const store = new SqliteCallStore(':memory:');
    await store.putCall('rtc_old', record({ expiresAtMs: WALL + 7_200_000 - 25_000 }), { owner: 'gov_dead', untilMs: WALL - 1 }, WALL);
    const { g, sidebands } = governors(store);
    await g.sweep();
    expect([sidebands[0]!.init.carried.startedAtWallMs, sidebands[0]!.init.carried.tokens]).toEqual([WALL - 25_000, 0]);
    g.start({ callId: 'rtc_new', tenant: tenants.get('acme')!, model: 'gpt-realtime', kind: 'webrtc' });
    expect([sidebands[1]!.init.carried.startedAtWallMs, sidebands[1]!.init.carried.tokens]).toEqual([WALL, 0]);
  });

  it('settles coalesce while a write is in flight (one at a time, the latest after it); a handover releases the lease only once the last count is written', async () => {
    const real = new SqliteCallStore(':memory:');
    const calls: string[] = [];
    const pending: (() => void)[] = [];
    const slow: CallStore = Object.assign(Object.create(real) as CallStore, {
      recordTokens: (callId: string, owner: string, tokens: number) => {
        calls.push(`tokens:${tokens}`);
        return new Promise<void>((resolve) => pending.push(() => void real.recordTokens(callId, owner, tokens).then(resolve)));
      },
      releaseCall: (callId: string, owner: string, ended: boolean) => {
        calls.push(`release:${ended}`);
        return real.releaseCall(callId, owner, ended);
      },
    });
    const { g, sidebands } = governors(slow);
    await real.putCall('rtc_1', record({ startedAtMs: WALL }), g.lease(), WALL);
    g.start({ callId: 'rtc_1', tenant: tenants.get('acme')!, model: 'gpt-realtime', kind: 'webrtc', usage: { startedAtMs: WALL, tokens: 0 } });
    const { settled } = sidebands[0]!.init.carried;
    settled(10);
    settled(20);
    settled(30);
    expect(calls).toEqual(['tokens:10']);
    // Shutdown (handover) while 10 is in flight and 30 waits: the lease stays until 30 is written.
    const closing = g.close();
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toEqual(['tokens:10']);
    pending.shift()!();
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toEqual(['tokens:10', 'tokens:30']);
    pending.shift()!();
    await closing;
    expect(calls).toEqual(['tokens:10', 'tokens:30', 'release:false']);
    expect((await real.claimLapsed('gov_next', WALL + 30_000, WALL, 10)).map((c) => [c.callId, c.tokens])).toEqual([['rtc_1', 30]]);
  });

  it('a write the store refuses is logged; the next settle writes the count again', async () => {
    const real = new SqliteCallStore(':memory:');
    let refuse = true;
    const flaky: CallStore = Object.assign(Object.create(real) as CallStore, {
      recordTokens: (callId: string, owner: string, tokens: number) => (refuse ? Promise.reject(new Error('store down')) : real.recordTokens(callId, owner, tokens)),
      releaseCall: (callId: string, owner: string, ended: boolean) => real.releaseCall(callId, owner, ended),
    });
    const { g, sidebands, lines } = governors(flaky);
    await real.putCall('rtc_1', record({ startedAtMs: WALL }), g.lease(), WALL);
    g.start({ callId: 'rtc_1', tenant: tenants.get('acme')!, model: 'gpt-realtime', kind: 'webrtc', usage: { startedAtMs: WALL, tokens: 0 } });
    sidebands[0]!.init.carried.settled(10);
    await new Promise((r) => setTimeout(r, 0));
    expect(lines.some((l) => l['msg'] === 'call usage: the store did not take the settled tokens' && l['err'] === 'store down')).toBe(true);
    refuse = false;
    sidebands[0]!.init.carried.settled(15);
    await g.close();
    expect((await real.claimLapsed('gov_next', WALL + 30_000, WALL, 10)).map((c) => [c.callId, c.tokens])).toEqual([['rtc_1', 15]]);
  });
});
