/**
 * Survivors of the nineteenth session's mutation run of src/metering/filter.ts, lines 364–420
 * (`SessionSlotHold`, `holdSessionSlot`, `admissionProbe`) and the `holdsSlot` room line of
 * createMeteringFilterFactory (with filter.test.ts and filter-eighteenth-survivors): the hold's
 * release asks the ledger once, however often it is called (the ledger's own release is idempotent,
 * so only the ledger's calls show it).
 */
import { describe, expect, it } from 'vitest';
import { AsyncLedger, setup, T0, tenant } from '../../test/metering/filter-harness.js';
import { ProxyError } from '../protocol/errors.js';
import { admissionProbe, holdSessionSlot } from './session-slots.js';

const q: ReadonlyMap<string, string> = new Map([['model', 'gpt-realtime']]);

function asyncSetup() {
  let a!: AsyncLedger;
  const s = setup({}, () => T0, (l) => (a = new AsyncLedger(l)));
  return { ...s, async: a };
}

const releases = (ledger: AsyncLedger): number => ledger.calls.filter((c) => c === 'releaseSlot').length;

describe("a call's held slot is given back to the ledger once", () => {
  it('a release called twice asks the ledger once, and the slot is free again', async () => {
    const s = asyncSetup();
    const t = tenant({ maxConcurrentSessions: 1 });
    const hold = await holdSessionSlot(s.rt, { tenant: t, model: 'gpt-realtime', query: q });
    if (hold instanceof ProxyError) throw hold;
    expect(hold.held).toBe(true);
    hold.release();
    hold.release();
    expect(releases(s.async)).toBe(1);
    expect(await admissionProbe(s.rt, { tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
    // The probe takes a slot and gives it back: one release more.
    expect(releases(s.async)).toBe(2);
  });
});
