/**
 * Red team (metering × calls, 19m): two calls of a tenant at once, each within its limit.
 *
 * A call's offer (or incoming SIP call) holds one of the tenant's concurrent-session slots from its
 * check (holdSessionSlot) until its sideband is admitted; that admission (`holdsSlot`) was allowed
 * max + 1 in the ledger's count, and the offer's slot was given back only once the call was bound and
 * governed (after a calls-store write: src/calls startGoverned, then the route's `finally`). With
 * two calls in flight the +1 is one call's only: a tenant allowed 2 whose two calls ring together
 * (two instances on Redis, two relay workers, or a store write slower than a ledger round trip) has
 * offer A, offer B and sideband A counted (3 = 2 + 1) when sideband B is asked: refused, and call B,
 * created or accepted upstream already, is hung up. No adversary needed: an honest tenant loses a
 * call it was entitled to, at every burst. Broken guarantee: a call admitted at its check is
 * governed (the check holds its slot so that nothing can take it before its sideband).
 * The slot is handed over instead: the sideband's admission takes the offer's own slot, by its token,
 * within the limit (nothing beyond it, even for a hold the ledger has lost).
 */
import { describe, expect, it } from 'vitest';
import { AdmissionTicket, type AdmissionAsk } from '../../src/pipeline/filter.js';
import { ProxyError } from '../../src/protocol/errors.js';
import { holdSessionSlot, type SessionSlotHold } from '../../src/metering/session-slots.js';
import { AsyncLedger, setup, T0, tenant } from './filter-harness.js';

const q: ReadonlyMap<string, string> = new Map([['model', 'gpt-realtime']]);
const code = (answer: unknown): string | null => (answer instanceof ProxyError ? answer.code : null);

async function offer(s: ReturnType<typeof setup>, t: ReturnType<typeof tenant>): Promise<SessionSlotHold> {
  const hold = await holdSessionSlot(s.rt, { tenant: t, model: 'gpt-realtime', query: q });
  if (hold instanceof ProxyError) throw hold;
  return hold;
}

/** The sideband's admission of a call whose check holds `hold` (src/calls admitCall). */
async function sideband(s: ReturnType<typeof setup>, t: ReturnType<typeof tenant>, hold: SessionSlotHold): Promise<ProxyError | AdmissionTicket> {
  const ask: AdmissionAsk = { tenant: t, model: 'gpt-realtime', query: q, ...(hold.token !== null ? { holdsSlot: hold.token } : {}) };
  const ticket = new AdmissionTicket();
  const answer = await s.factory.admit!({ ...ask, ticket });
  if (answer instanceof ProxyError) return answer;
  hold.handOver();
  return ticket;
}

describe('red team 19m: two calls of a tenant allowed two, at once', () => {
  it('both offers held, then both sidebands admitted before either offer is released: both governed', async () => {
    const s = setup();
    const t = tenant({ maxConcurrentSessions: 2 });
    const a = await offer(s, t);
    const b = await offer(s, t);
    expect(await sideband(s, t, a)).toBeInstanceOf(AdmissionTicket);
    // Old code: concurrent_sessions_exceeded (offer A, offer B and sideband A counted: 3 of 2 + 1).
    expect(code(await sideband(s, t, b))).toBeNull();
    a.release();
    b.release();
    // The two sidebands hold the tenant's two slots: nothing else gets in, and nothing beyond.
    expect(code(await holdSessionSlot(s.rt, { tenant: t, model: 'gpt-realtime', query: q }))).toBe('concurrent_sessions_exceeded');
    expect(code(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }))).toBe('concurrent_sessions_exceeded');
  });

  it('an offer whose slot the ledger lost (Redis restarted empty): its sideband is not admitted beside a full tenant', async () => {
    const s = setup();
    const t = tenant({ maxConcurrentSessions: 1 });
    const a = await offer(s, t);
    // The ledger forgets it (as Redis does on a restart without persistence, until the next heartbeat)…
    s.rt.ledger.releaseSlot(t.id, a.token!);
    // …and a WebSocket session takes the tenant's one slot meanwhile.
    expect(code(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }))).toBeNull();
    // Old code: admitted (max + 1), two live sessions for a tenant allowed one.
    expect(code(await sideband(s, t, a))).toBe('concurrent_sessions_exceeded');
  });

  it('failMode open, the ledger down at the sideband\'s admission: admitted without a slot, and the offer\'s is not kept (a handed-over hold releases nothing)', async () => {
    let ledger!: AsyncLedger;
    const s = setup({ ledger: { path: ':memory:', failMode: 'open' } }, () => T0, (l) => (ledger = new AsyncLedger(l)));
    const t = tenant({ maxConcurrentSessions: 1 });
    const a = await offer(s, t);
    ledger.slotUnavailable = true;
    expect(await sideband(s, t, a)).toBeInstanceOf(AdmissionTicket);
    a.release();
    ledger.slotUnavailable = false;
    // Kept, the offer's slot would hold the tenant's only place for as long as the process runs (Redis: heartbeats).
    expect(code(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }))).toBeNull();
  });
});
