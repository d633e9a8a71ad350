import { describe, expect, it } from 'vitest';
import type { Frame } from '../pipeline/frame.js';
import type { Verdict } from '../pipeline/filter.js';
import { guardrailsWith, wire } from '../../test/policies/support.js';
import { deleted, typed } from '../../test/policies/item-events.js';

/**
 * Written against the mutants of the client's deletes of forgotten items left open by the
 * twenty-third session (b) and run again in the twenty-fourth (test/mutation/open-survivors.md,
 * "twenty-fourth"): the bound on the forgotten ids listed, and a waiting delete whose own item was
 * confirmed deleted meanwhile. Driven without sockets.
 */

const policy = `
guardrails:
  rules:
    - { id: inj_input, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
`;

/** As guardrails.ts keeps them: the last 128 items placed, the first 1,024 forgotten ids listed. */
const MAX_PLACED = 128;
const MAX_FORGOTTEN_IDS = 1024;

const del = (id: string, eventId = `evt_del_${id}`): Frame => wire({ type: 'conversation.item.delete', event_id: eventId, item_id: id });
const upstreamRefused = (eventId: string): Frame => wire({ type: 'error', event_id: `ev_err_${eventId}`, error: { type: 'invalid_request_error', code: 'item_not_found', message: 'no such item', param: 'item_id', event_id: eventId } });
const kindOf = async (v: Verdict | Promise<Verdict>): Promise<string> => (await v).kind;
async function settled(p: Verdict | Promise<Verdict>): Promise<boolean> {
  let done = false;
  void Promise.resolve(p).then(() => (done = true));
  await Promise.resolve();
  await Promise.resolve();
  return done;
}

describe('the forgotten ids listed are bounded (1,024)', () => {
  it('the 1,024 oldest forgotten items are deleted in order; the 1,025th, not listed, is refused even as the oldest', async () => {
    const rig = await guardrailsWith(policy);
    const ids = Array.from({ length: MAX_FORGOTTEN_IDS + 1 + MAX_PLACED }, (_, i) => `item_${i}`);
    for (const id of ids) expect(await kindOf(rig.client(typed(`note ${id}`, id)))).toBe('continue');
    for (const id of ids.slice(0, MAX_FORGOTTEN_IDS)) {
      expect(await kindOf(rig.client(del(id))), id).toBe('continue');
      rig.server(deleted(id));
    }
    const unlisted = await rig.client(del(ids[MAX_FORGOTTEN_IDS]!));
    expect(unlisted.kind).toBe('reject');
    if (unlisted.kind === 'reject') expect([unlisted.error.code, unlisted.error.details?.['rule']]).toEqual(['guardrail_blocked', 'context-not-kept']);
    // The items kept are not forgotten: the oldest of them is deleted as any recent one.
    expect(await kindOf(rig.client(del(ids[MAX_FORGOTTEN_IDS + 1]!)))).toBe('continue');
  });
});

describe('a waiting delete whose own item the upstream confirms deleted meanwhile', () => {
  it('goes on, and the upstream refusing it (the item is gone) refuses no delete waiting after it', async () => {
    const rig = await guardrailsWith(policy);
    // item_a, item_x, item_b, then 130 notes: the first five places forgotten.
    for (const id of ['item_a', 'item_x', 'item_b']) expect(await kindOf(rig.client(typed(`text ${id}`, id)))).toBe('continue');
    for (let i = 0; i < 130; i++) expect(await kindOf(rig.client(typed(`note ${i}`, `item_f${i}`)))).toBe('continue');
    expect(await kindOf(rig.client(del('item_a', 'evt_a')))).toBe('continue');
    const x = rig.client(del('item_x', 'evt_x'));
    expect(await settled(x)).toBe(false);
    // item_x deleted by someone else: its own delete deletes nothing now, and goes on.
    rig.server(deleted('item_x'));
    expect(await kindOf(x)).toBe('continue');
    // item_b waits behind item_a's delete; the upstream refuses item_x's (already gone).
    const b = rig.client(del('item_b', 'evt_b'));
    expect(await settled(b)).toBe(false);
    rig.server(upstreamRefused('evt_x'));
    expect(await settled(b)).toBe(false);
    rig.server(deleted('item_a'));
    expect(await kindOf(b)).toBe('continue');
  });
});
