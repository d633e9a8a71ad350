import { describe, expect, it } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import { heldBytes } from '../../test/support/heap.js';
import { trackerBudget, wire } from '../../test/policies/support.js';
import type { Verdict } from '../pipeline/filter.js';
import { TruncationFilter } from './truncation.js';

/**
 * A tenant's client sends tool outputs the upstream refuses (a `call_id` of 1 MiB: the upstream
 * answers each with an `error`, and never shows the item). The truncation filter lists every client
 * create until the server shows its item; until 2026-12-07 that list had no bound and kept each
 * `call_id` whole, so 200 such frames left ~200 MiB on the heap for the session's life, outside the
 * memory budget. Now the list keeps the last MAX_PENDING_CREATES and a long id as its hash (keptId).
 * Bytes are measured on the heap after a forced collection.
 */

const MiB = 1024 * 1024;

describe('the truncation filter: client creates the server never shows', () => {
  it('200 refused tool outputs with 1 MiB call ids leave well under their size on the heap', () => {
    const s = new FakeSession();
    const f = new TruncationFilter(s, trackerBudget(1_000_000, { keepLast: 0 }), 'test');
    const before = heldBytes();
    for (let i = 0; i < 200; i++) {
      const v = s.fromClient(f, wire({ type: 'conversation.item.create', event_id: `e${i}`, item: { type: 'function_call_output', call_id: `call_${i}_${'x'.repeat(MiB)}`, output: 'ok' } })) as Verdict;
      expect(v.kind).toBe('continue');
    }
    // What the fake session logged of the frames is the test's, not the filter's.
    s.upstream.splice(0);
    expect(heldBytes() - before).toBeLessThan(16 * MiB);
  });

  it('a long call id still pairs exactly: the output of a call the filter pruned is refused', () => {
    const s = new FakeSession();
    const f = new TruncationFilter(s, trackerBudget(150, { keepLast: 0 }), 'test');
    const long = `call_${'y'.repeat(1000)}`;
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'fc', type: 'function_call', call_id: long, name: 'f', arguments: 'x'.repeat(800) } }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'fc', item: { id: 'u1', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(800) }] } }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id'])).toContain('fc');
    const refused = s.fromClient(f, wire({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: long, output: 'ok' } })) as Verdict;
    expect(refused.kind === 'reject' && refused.error.code).toBe('function_call_pruned');
    const other = s.fromClient(f, wire({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: `${long}z`, output: 'ok' } })) as Verdict;
    expect(other.kind).toBe('continue');
  });
});
