// Survivors of the seventeenth session's mutation runs of src/policies/truncation.ts lines 176–529
// (2026-12-07, at 52da2f0): each test names the mutant it kills and what would go wrong under it.
import { describe, expect, it } from 'vitest';
import { textItem, trackerBudget } from '../../test/policies/support.js';
import type { PolicyRegistry } from './registry.js';
import { ContextTracker, truncationFactory } from './truncation.js';

describe('plan: a budget no delete can meet, without keepSystem (survivors)', () => {
  it('445:135 ArrayDeclaration ([] → ["Stryker was here"]): with nothing pinned for the session, the overhead alone over maxTokens leaves the conversation until it exceeds maxTokens − target', () => {
    // keepSystem off pins no system message: the lasting pins are none. Under the mutant a junk
    // entry makes their tokens NaN, "over maxTokens" is never true, and the one item is deleted at
    // every response for nothing (the overhead alone stays over the budget).
    const t = new ContextTracker();
    t.upsert(textItem('u1', 'user', 400), null); // 104
    const b = trackerBudget(1000, { keepSystem: false }); // target 500
    expect(t.plan(b, 0, new Set(), undefined, 1200)).toBeNull(); // known 1200 > 1000; prunable 104 ≤ 500
    // Once what may be deleted exceeds maxTokens − target, all of it goes.
    t.upsert(textItem('u2', 'user', 1600), 'u1'); // 404: prunable 508 > 500
    expect(t.plan(b, 0, new Set(), undefined, 1200)!.itemIds).toEqual(['u1', 'u2']);
  });
});

describe('truncation factory: the client events it judges (survivors)', () => {
  it("513:63 StringLiteral ('session.update' → \"\"): the chain routes a client's session.update to the filter (its instructions, tools and prompt against the share)", () => {
    // The chain hands a filter only the events its factory wants: without session.update a client
    // could set instructions of any size, and every response would read them over the budget.
    const f = truncationFactory({} as PolicyRegistry);
    expect(f.wants.client).toEqual(['conversation.item.create', 'response.create', 'session.update']);
  });
});
