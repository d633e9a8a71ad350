import { describe, expect, it } from 'vitest';
import { MAX_UPSTREAM_ITEM_IDS, UpstreamItemIds } from './upstream-item-ids.js';

/** An id as long as the conversation view keeps (256 characters), distinct per `i`. */
const longId = (i: number) => `item_${String(i).padStart(8, '0')}_${'é'.repeat(242)}`;

describe('UpstreamItemIds: the model item ids metering remembers', () => {
  it('10,000 ids of 256 characters (about 5 MiB kept whole until 2026-12-07) fit in 64 KiB, and every one is found', () => {
    const ids = new UpstreamItemIds();
    expect(ids.bytes).toBe(0);
    for (let i = 0; i < MAX_UPSTREAM_ITEM_IDS; i++) ids.add(longId(i));
    expect(longId(0)).toHaveLength(256);
    expect({ size: ids.size, bytes: ids.bytes }).toEqual({ size: MAX_UPSTREAM_ITEM_IDS, bytes: 64 * 1024 });
    let missing = 0;
    for (let i = 0; i < MAX_UPSTREAM_ITEM_IDS; i++) if (!ids.mayHave(longId(i))) missing++;
    expect(missing).toBe(0);
  });

  it('an id added again counts once; ids never added are (almost always) not found', () => {
    const ids = new UpstreamItemIds();
    for (let i = 0; i < 1_000; i++) ids.add(`item_${i}`);
    ids.add('item_0');
    expect(ids.size).toBe(1_000);
    let falseMatches = 0;
    for (let i = 0; i < 100_000; i++) if (ids.mayHave(`client_${i}`)) falseMatches++;
    // 1,000 fingerprints of 32 bits: about 0.02 expected in 100,000 asks.
    expect(falseMatches).toBeLessThanOrEqual(2);
  });

  it('past 10,000 every id may be the model\'s (the fail-safe), and the table is dropped', () => {
    const ids = new UpstreamItemIds();
    for (let i = 0; i < MAX_UPSTREAM_ITEM_IDS; i++) ids.add(`item_${i}`);
    expect(ids.mayHave('item_never_made')).toBe(false);
    // An id already kept takes no room.
    ids.add('item_0');
    expect(ids.mayHave('item_never_made')).toBe(false);
    ids.add(`item_${MAX_UPSTREAM_ITEM_IDS}`);
    expect({ never: ids.mayHave('item_never_made'), bytes: ids.bytes }).toEqual({ never: true, bytes: 0 });
  });

  it('an id longer than any the upstream may use is read as its hash: found again, and costs no more', () => {
    const ids = new UpstreamItemIds();
    const huge = 'i'.repeat(1 << 20);
    ids.add(huge);
    expect([ids.mayHave(huge), ids.mayHave(`${huge}j`), ids.bytes]).toEqual([true, false, 64 * 4]);
  });
});
