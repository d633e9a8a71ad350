import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Frame } from '../pipeline/frame.js';
import type { Verdict } from '../pipeline/filter.js';
import { guardrailsWith, wire } from '../../test/policies/support.js';
import { deleted, typed } from '../../test/policies/item-events.js';

/**
 * Written against the mutants of the client's deletes of forgotten items (#deleteForgotten and the
 * deletes it waits for: twenty-third session, b) that survived their tests
 * (test/mutation/open-survivors.md, "twenty-third (b)"). Driven without sockets.
 */

const policy = `
guardrails:
  rules:
    - { id: inj_input, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
`;

type Rig = Awaited<ReturnType<typeof guardrailsWith>>;

const del = (id: string, eventId = `evt_del_${id}`): Frame => wire({ type: 'conversation.item.delete', event_id: eventId, item_id: id });
const upstreamRefused = (eventId: string): Frame => wire({ type: 'error', event_id: `ev_err_${eventId}`, error: { type: 'invalid_request_error', code: 'item_not_found', message: 'no', param: 'item_id', event_id: eventId } });
const kindOf = async (v: Verdict | Promise<Verdict>): Promise<string> => (await v).kind;
/** Whether `p` settled by now (its callbacks run): a waiting delete's verdict is a pending promise. */
async function settled(p: Verdict | Promise<Verdict>): Promise<boolean> {
  let done = false;
  void Promise.resolve(p).then(() => (done = true));
  await Promise.resolve();
  await Promise.resolve();
  return done;
}

/** item_a, item_x, item_b, then 130 notes: the first five places forgotten (the last 128 kept). */
async function filled(rig: Rig): Promise<void> {
  for (const id of ['item_a', 'item_x', 'item_b']) expect(await kindOf(rig.client(typed(`text ${id}`, id)))).toBe('continue');
  for (let i = 0; i < 130; i++) expect(await kindOf(rig.client(typed(`note ${i}`, `item_f${i}`)))).toBe('continue');
}

afterEach(() => {
  vi.useRealTimers();
});

describe('deletes with nothing forgotten', () => {
  it('a delete of an item the filter never placed goes on', async () => {
    const rig = await guardrailsWith(policy);
    expect(await kindOf(rig.client(typed('hello', 'item_a')))).toBe('continue');
    expect(await kindOf(rig.client(del('item_model_made')))).toBe('continue');
    expect(await kindOf(rig.client(del('item_a')))).toBe('continue');
  });
});

describe('a delete of a forgotten item sent right behind the deletes of the ones before it', () => {
  it('waits for the confirmation of the delete before it, then goes on; one behind it waits in turn', async () => {
    const rig = await guardrailsWith(policy);
    await filled(rig);
    expect(await kindOf(rig.client(del('item_a')))).toBe('continue');
    // Pipelined with item_a's delete: not the oldest yet.
    const second = rig.client(del('item_x'));
    expect(await settled(second)).toBe(false);
    // A confirmation of an item after it settles nothing.
    rig.server(deleted('item_f100'));
    expect(await settled(second)).toBe(false);
    rig.server(deleted('item_a'));
    expect(await kindOf(second)).toBe('continue');
    // item_x's delete on the way: item_b's waits for it, and then passes too.
    const third = rig.client(del('item_b'));
    expect(await settled(third)).toBe(false);
    rig.server(deleted('item_x'));
    expect(await kindOf(third)).toBe('continue');
  });

  it('an upstream error about another event leaves it waiting; the error about the delete before it refuses it', async () => {
    const rig = await guardrailsWith(policy);
    await filled(rig);
    expect(await kindOf(rig.client(del('item_a', 'evt_a')))).toBe('continue');
    const second = rig.client(del('item_x'));
    rig.server(upstreamRefused('evt_other'));
    rig.server(wire({ type: 'error', event_id: 'ev_err_none', error: { type: 'invalid_request_error', code: 'x', message: 'no id' } }));
    expect(await settled(second)).toBe(false);
    rig.server(upstreamRefused('evt_a'));
    // At the error, not at the end of the wait.
    expect(await settled(second)).toBe(true);
    const v = await second;
    expect(v.kind).toBe('reject');
    if (v.kind === 'reject') expect({ code: v.error.code, eventId: v.error.eventId, rule: v.error.details?.['rule'] }).toEqual({ code: 'guardrail_blocked', eventId: 'evt_del_item_x', rule: 'context-not-kept' });
    // item_a stays the oldest: its delete sent again goes on, and the one behind it waits again.
    expect(await kindOf(rig.client(del('item_a', 'evt_a2')))).toBe('continue');
    const again = rig.client(del('item_x'));
    expect(await settled(again)).toBe(false);
    rig.server(deleted('item_a'));
    expect(await kindOf(again)).toBe('continue');
  });

  it('an error without an event_id, or without an error member, is about no delete (one sent without an event_id included)', async () => {
    const rig = await guardrailsWith(policy);
    await filled(rig);
    expect(await kindOf(rig.client(wire({ type: 'conversation.item.delete', item_id: 'item_a' })))).toBe('continue');
    const second = rig.client(del('item_x'));
    rig.server(wire({ type: 'error', event_id: 'ev_err_1', error: { type: 'invalid_request_error', code: 'x', message: 'no id' } }));
    rig.server(wire({ type: 'error', event_id: 'ev_err_2' }));
    expect(await settled(second)).toBe(false);
    rig.server(deleted('item_a'));
    expect(await kindOf(second)).toBe('continue');
  });

  it('an error about a forgotten item\'s delete with nothing waiting behind it: the item stays the oldest', async () => {
    const rig = await guardrailsWith(policy);
    await filled(rig);
    expect(await kindOf(rig.client(del('item_a', 'evt_a')))).toBe('continue');
    rig.server(upstreamRefused('evt_a'));
    expect(await kindOf(rig.client(del('item_x')))).toBe('reject');
    expect(await kindOf(rig.client(del('item_a', 'evt_a2')))).toBe('continue');
  });

  it('a second delete behind the same unconfirmed ones is refused at once (one waits at most)', async () => {
    const rig = await guardrailsWith(policy);
    await filled(rig);
    expect(await kindOf(rig.client(del('item_a')))).toBe('continue');
    const second = rig.client(del('item_x'));
    expect(await settled(second)).toBe(false);
    expect(await kindOf(rig.client(del('item_b')))).toBe('reject');
    // The same delete again while it waits: refused at once too (the first still waits).
    const twice = rig.client(del('item_x', 'evt_del_x_again'));
    expect(await settled(twice)).toBe(true);
    expect(await kindOf(twice)).toBe('reject');
    expect(await settled(second)).toBe(false);
    rig.server(deleted('item_a'));
    expect(await kindOf(second)).toBe('continue');
  });

  it('refuses at once a delete of an item skipped, or of an id never placed, naming it by its first 64 characters; a recent item\'s delete goes on', async () => {
    const rig = await guardrailsWith(policy);
    await filled(rig);
    expect(await kindOf(rig.client(del('item_a')))).toBe('continue');
    const skipped = await rig.client(del('item_b'));
    expect(skipped.kind).toBe('reject');
    if (skipped.kind === 'reject') expect(skipped.error.message).toBe('Deleting item item_b would join the items around it, which the proxy no longer keeps (the last 128 items) and cannot check together. Delete the oldest items first, in order, or a recent one.');
    const longId = `item_${'u'.repeat(59)}${'v'.repeat(40)}`;
    const unknown = await rig.client(del(longId));
    expect(unknown.kind).toBe('reject');
    if (unknown.kind === 'reject') expect(unknown.error.message).toMatch(new RegExp(`^Deleting item item_u{59} would join`));
    expect(await kindOf(rig.client(del('item_f129')))).toBe('continue');
  });

  it('a recent item\'s delete confirmed leaves the forgotten ones listed: the oldest five deleted one by one', async () => {
    const rig = await guardrailsWith(policy);
    await filled(rig);
    expect(await kindOf(rig.client(del('item_f129')))).toBe('continue');
    rig.server(deleted('item_f129'));
    for (const id of ['item_a', 'item_x', 'item_b', 'item_f0', 'item_f1']) {
      expect(await kindOf(rig.client(del(id))), id).toBe('continue');
      rig.server(deleted(id));
    }
    // Nothing forgotten listed any more: a delete of an id never placed is refused at once (it waits for nothing).
    const unknown = rig.client(del('item_unknown'));
    expect(await settled(unknown)).toBe(true);
    expect(await kindOf(unknown)).toBe('reject');
  });

  it('the session closing with nothing waiting', async () => {
    const rig = await guardrailsWith(policy);
    await filled(rig);
    expect(() => rig.filter.onClose()).not.toThrow();
  });

  it('past the wait (5 s) without a confirmation it is refused', async () => {
    vi.useFakeTimers();
    const rig = await guardrailsWith(policy);
    await filled(rig);
    expect(await kindOf(rig.client(del('item_a')))).toBe('continue');
    const second = rig.client(del('item_x'));
    await vi.advanceTimersByTimeAsync(4_999);
    expect(await settled(second)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await kindOf(second)).toBe('reject');
  });

  it('the session closing while it waits drops it (nothing more goes upstream)', async () => {
    const rig = await guardrailsWith(policy);
    await filled(rig);
    expect(await kindOf(rig.client(del('item_a')))).toBe('continue');
    const second = rig.client(del('item_x'));
    rig.filter.onClose();
    expect(await kindOf(second)).toBe('drop');
  });
});

describe('the forgotten ids listed', () => {
  /** `first` (with its id), item_x, then 130 notes. */
  async function firstThen(rig: Rig, first: string): Promise<void> {
    for (const id of [first, 'item_x']) expect(await kindOf(rig.client(typed(`text ${id}`, id)))).toBe('continue');
    for (let i = 0; i < 130; i++) expect(await kindOf(rig.client(typed(`note ${i}`, `item_f${i}`)))).toBe('continue');
  }

  it('an id of 64 characters is listed: the oldest, its delete goes on, and the next one\'s after it', async () => {
    const rig = await guardrailsWith(policy);
    const id64 = `item_${'s'.repeat(59)}`;
    await firstThen(rig, id64);
    expect(await kindOf(rig.client(del(id64)))).toBe('continue');
    rig.server(deleted(id64));
    expect(await kindOf(rig.client(del('item_x')))).toBe('continue');
  });

  it('an id longer (65) is not, and none after it: neither its delete nor the next item\'s goes on', async () => {
    const rig = await guardrailsWith(policy);
    const id65 = `item_${'s'.repeat(60)}`;
    await firstThen(rig, id65);
    expect(await kindOf(rig.client(del(id65)))).toBe('reject');
    // Listed after an unlisted one, item_x would be taken for the oldest: its delete would join the long one's text and item_b's.
    expect(await kindOf(rig.client(del('item_x')))).toBe('reject');
  });
});

describe('a policy that reads no input', () => {
  it('leaves a delete of a forgotten item alone (no text of it is judged)', async () => {
    const rig = (await guardrailsWith('guardrails:\n  rules:\n    - { id: out, sources: [output], match: { phrases: ["secret"] }, action: block }\n'));
    await filled(rig);
    expect(await kindOf(rig.client(del('item_x')))).toBe('continue');
  });

  it('but reads tool output: the delete of an item between two forgotten ones is refused', async () => {
    const rig = (await guardrailsWith('guardrails:\n  rules:\n    - { id: tool, sources: [tool_output], match: { phrases: ["ignore previous instructions"] }, action: block }\n'));
    await filled(rig);
    expect(await kindOf(rig.client(del('item_x')))).toBe('reject');
  });
});
