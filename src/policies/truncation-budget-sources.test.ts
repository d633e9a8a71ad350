import { describe, expect, it } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import type { Verdict } from '../pipeline/filter.js';
import { textItem, trackerBudget, wire } from '../../test/policies/support.js';
import { checkPromptPrefix, promptTokens, toolsTokens, TruncationFilter } from './truncation.js';

/**
 * What every response reads besides the conversation, as the truncation budget sees it: a reusable
 * prompt's `variables` (found 2026-12-06: not counted at all, so one `session.update` with a
 * 40,000-character variable went through a 2,000-token budget) and MCP tools (their definitions
 * and the `mcp_list_tools` item the server lists them into). What the proxy cannot see (a stored
 * prompt's own text) is calibrated from usage only.
 */

// maxTokens 2,000 × 0.5: target 1,000; instructions, tools and prompt variables share 500.
const b = trackerBudget(2000);
const none = { instructions: 0, tools: 0 };
const prompt = (variables: Record<string, unknown>) => ({ id: 'pmpt_123', version: '3', variables });
const update = (session: object, eventId = 'evt_u') => wire({ type: 'session.update', event_id: eventId, session: { type: 'realtime', ...session } });
const verdictOf = (v: Verdict | Promise<Verdict>) => v as Verdict;

describe('reusable prompt variables count toward the instructions share', () => {
  it('estimates each variable\'s name and value as text (chars / 4 together), an image as an image part, anything else as its JSON; none without variables', () => {
    // "city" + 396 characters: 400 / 4.
    expect(promptTokens(prompt({ city: 'x'.repeat(396) }))).toBe(100);
    expect(promptTokens(prompt({ city: { type: 'input_text', text: 'x'.repeat(396) } }))).toBe(100);
    // Names count too, and the total is rounded up once.
    expect(promptTokens(prompt({ a: 'x', b: 'y' }))).toBe(1);
    expect(promptTokens(prompt({ a: 'xyz', b: 'y' }))).toBe(2);
    expect(promptTokens(prompt({ photo: { type: 'input_image', image_url: 'data:image/png;base64,' + 'A'.repeat(100_000) } }))).toBe(2 + 255);
    const file = { type: 'input_file', file_id: 'file_1' };
    expect(promptTokens(prompt({ doc: file }))).toBe(Math.ceil((3 + JSON.stringify(file).length) / 4));
    expect(promptTokens(prompt({ n: 42 }))).toBe(1);
    expect(promptTokens(prompt({ n: null }))).toBe(Math.ceil(5 / 4));
    expect(promptTokens({ id: 'pmpt_123' })).toBe(0);
    expect(promptTokens(null)).toBe(0);
    expect(promptTokens('pmpt_123')).toBe(0);
    expect(promptTokens({ id: 'p', variables: ['x'.repeat(1000)] })).toBe(0);
  });

  it('a session.update whose prompt variables put instructions, tools and variables over the share is refused (param session.prompt); exactly at it passes', () => {
    expect(checkPromptPrefix(b, none, { prompt: prompt({ city: 'x'.repeat(1996) }) }, 'session', 'evt_1')).toBeNull();
    expect(checkPromptPrefix(b, none, { prompt: prompt({ city: 'x'.repeat(1997) }) }, 'session', 'evt_1')).toMatchObject({
      code: 'context_budget_exceeded',
      param: 'session.prompt',
      eventId: 'evt_1',
      details: { tokens: 501, limit: 500 },
    });
    // With the session's instructions: 400 + 101.
    expect(checkPromptPrefix(b, { instructions: 400, tools: 0 }, { prompt: prompt({ city: 'x'.repeat(400) }) }, 'session', null)).toMatchObject({ param: 'session.prompt', details: { tokens: 501 } });
    // The session's variables count when an update sets instructions only.
    expect(checkPromptPrefix(b, { instructions: 0, tools: 0, prompt: 400 }, { instructions: 'x'.repeat(404) }, 'session', null)).toMatchObject({ param: 'session.instructions', details: { tokens: 501 } });
    // Several fields changed: the largest names the param.
    expect(checkPromptPrefix(b, none, { instructions: 'x'.repeat(400), prompt: prompt({ city: 'x'.repeat(1600) }) }, 'session', null)).toMatchObject({ param: 'session.prompt' });
    // prompt: null clears them: never refused.
    expect(checkPromptPrefix(b, { instructions: 0, tools: 0, prompt: 5000 }, { prompt: null }, 'session', null)).toBeNull();
    // Keeping what the session reads is never refused.
    expect(checkPromptPrefix(b, { instructions: 0, tools: 0, prompt: 2000 }, { prompt: prompt({ city: 'x'.repeat(7996) }) }, 'session', null)).toBeNull();
  });

  it('through the filter: a session.update with a 40,000-character variable is refused and not counted; the session\'s prompt (session.created / updated) counts for later events (found 2026-12-06)', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, b, 'test');
    session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: 'x'.repeat(400), tools: [], prompt: null } }));
    // Until 2026-12-06: continue, and every response read 10,000 more tokens than the budget knew.
    expect(session.fromClient(f, update({ prompt: prompt({ context: 'x'.repeat(40_000) }) }))).toMatchObject({
      kind: 'reject',
      error: { code: 'context_budget_exceeded', param: 'session.prompt', eventId: 'evt_u', details: { tokens: 100 + 10_002, limit: 500 } },
    });
    // Refused: not counted. 100 + 396 fits.
    expect(verdictOf(session.fromClient(f, update({ prompt: prompt({ context: 'x'.repeat(1577) }) }))).kind).toBe('continue');
    // Let through: counted before the upstream answers (100 + 396 + a tool of 12 > 500).
    const tool = [{ type: 'function', name: 'f', parameters: {} }];
    expect(toolsTokens(tool)).toBe(12);
    expect(session.fromClient(f, update({ tools: tool }, 'evt_t'))).toMatchObject({ kind: 'reject', error: { param: 'session.tools', eventId: 'evt_t', details: { tokens: 508, limit: 500 } } });
    // What the upstream shows counts (every update answered): a prompt of 300 tokens of variables.
    session.fromServer(f, wire({ type: 'session.updated', session: { type: 'realtime', instructions: 'x'.repeat(400), tools: [], prompt: prompt({ context: 'x'.repeat(1193) }) } }));
    expect(session.fromClient(f, update({ instructions: 'x'.repeat(804) }))).toMatchObject({ kind: 'reject', error: { param: 'session.instructions', details: { tokens: 201 + 300, limit: 500 } } });
    expect(verdictOf(session.fromClient(f, update({ instructions: 'x'.repeat(800) }))).kind).toBe('continue');
  });

  it('a response.create\'s own prompt replaces the session\'s for that response: over the share refused (param response.prompt), and it counts with a response\'s own input against maxTokens', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, b, 'test');
    session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: '', tools: [], prompt: prompt({ context: 'x'.repeat(1593) }) } })); // 400
    expect(session.fromClient(f, wire({ type: 'response.create', event_id: 'evt_r', response: { prompt: prompt({ context: 'x'.repeat(1997) }) } }))).toMatchObject({
      kind: 'reject',
      error: { code: 'context_budget_exceeded', param: 'response.prompt', eventId: 'evt_r', details: { tokens: 501, limit: 500 } },
    });
    // Its own at the share (2,000 characters with the name): replaces the session's 400.
    expect(verdictOf(session.fromClient(f, wire({ type: 'response.create', response: { prompt: prompt({ context: 'x'.repeat(1993) }) } }))).kind).toBe('continue');
    // With its own input: the session's variables (400) + an input of 1,601 tokens > 2,000.
    const input = [textItem('i', 'user', (1601 - 4) * 4)];
    expect(session.fromClient(f, wire({ type: 'response.create', event_id: 'evt_i', response: { conversation: 'none', input } }))).toMatchObject({
      kind: 'reject',
      error: { param: 'response.input', eventId: 'evt_i', details: { tokens: 2001, limit: 2000 } },
    });
    // Its own prompt without variables replaces the session's: the input alone fits.
    expect(verdictOf(session.fromClient(f, wire({ type: 'response.create', response: { conversation: 'none', input, prompt: { id: 'pmpt_123' } } }))).kind).toBe('continue');
  });
});

describe('MCP tools', () => {
  const mcp = (allowed: number) => ({ type: 'mcp', server_label: 'crm', server_url: 'https://mcp.example.com/sse', require_approval: 'never', allowed_tools: Array.from({ length: allowed }, (_, i) => `tool_number_${i}`) });

  it('an MCP tool\'s definition counts as the characters of its JSON, as a function tool\'s does', () => {
    expect(toolsTokens([mcp(2)])).toBe(Math.ceil(JSON.stringify([mcp(2)]).length / 4));
    const tokens = toolsTokens([mcp(200)]);
    expect(tokens).toBeGreaterThan(500);
    expect(checkPromptPrefix(b, none, { tools: [mcp(200)] }, 'session', 'evt_m')).toMatchObject({ param: 'session.tools', eventId: 'evt_m', details: { tokens, limit: 500 } });
  });

  it('the tools an MCP server lists count once their mcp_list_tools item is complete, as an item of the conversation', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, b, 'test');
    const listing = (tools: unknown[]) => ({ id: 'mcpl_1', type: 'mcp_list_tools', server_label: 'crm', tools });
    session.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: listing([]) }));
    const empty = f.tracker.total();
    expect(empty).toBe(4 + Math.ceil(JSON.stringify(listing([])).length / 4));
    const tools = Array.from({ length: 20 }, (_, i) => ({ name: `tool_${i}`, description: 'd'.repeat(200), input_schema: { type: 'object' } }));
    session.fromServer(f, wire({ type: 'conversation.item.done', previous_item_id: null, item: listing(tools) }));
    expect(f.tracker.total()).toBe(4 + Math.ceil(JSON.stringify(listing(tools)).length / 4));
  });
});

describe('what the proxy knows a response reads counts before usage calibrates it', () => {
  // Budget 2,000 (target 1,000), keepLast 1; six user items of 304 tokens: 1,824.
  const conversation = (session: FakeSession, f: TruncationFilter) => {
    let prev: string | null = null;
    for (let i = 0; i < 6; i++) {
      session.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: prev, item: textItem(`u${i}`, 'user', 1200) }));
      prev = `u${i}`;
    }
  };
  const deleted = (session: FakeSession) => session.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id']);

  it('the first response of a session: the session\'s instructions and prompt variables are pruned for (found 2026-12-06)', () => {
    for (const shown of [{ instructions: 'x'.repeat(2000) }, { prompt: prompt({ context: 'x'.repeat(1993) }) }, { instructions: 'x'.repeat(1000), tools: [{ type: 'function', name: 'f', description: 'd'.repeat(935), parameters: {} }] }]) {
      const session = new FakeSession();
      const f = new TruncationFilter(session, trackerBudget(2000, { keepLast: 1 }), 'test');
      session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: '', tools: [], prompt: null, ...shown } }));
      conversation(session, f);
      // 500 known + 1,824: over 2,000. Until 2026-12-06 nothing was deleted (no usage had calibrated
      // the overhead yet): the first response read 2,324.
      expect(verdictOf(session.fromClient(f, wire({ type: 'response.create' }))).kind).toBe('continue');
      expect(deleted(session)).toEqual(['u0', 'u1', 'u2', 'u3', 'u4']);
    }
  });

  it('a response.create\'s own instructions count for its own prune; a session.update that grows them counts at the next prune point', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, trackerBudget(2000, { keepLast: 1 }), 'test');
    session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: '', tools: [] } }));
    conversation(session, f);
    // 1,824 alone: within the budget.
    expect(verdictOf(session.fromClient(f, wire({ type: 'response.create' }))).kind).toBe('continue');
    expect(deleted(session)).toEqual([]);
    // Its own 200 tokens of instructions: 2,024, down to 808 (≤ the 1,000 target).
    session.fromClient(f, wire({ type: 'response.create', response: { instructions: 'x'.repeat(800) } }));
    expect(deleted(session)).toEqual(['u0', 'u1', 'u2', 'u3']);

    const other = new FakeSession();
    const g = new TruncationFilter(other, trackerBudget(2000, { keepLast: 1 }), 'test');
    other.fromServer(g, wire({ type: 'session.created', session: { type: 'realtime', instructions: '', tools: [] } }));
    conversation(other, g);
    // Calibrated: the response read exactly the items (no overhead).
    other.fromServer(g, wire({ type: 'response.done', response: { id: 'r1', status: 'completed', conversation_id: 'conv_1', output: [], usage: { input_tokens: 1824, output_tokens: 0 } } }));
    expect(deleted(other)).toEqual([]);
    // The session's instructions grow to 400 after that: the next response reads 2,224.
    expect(verdictOf(other.fromClient(g, update({ instructions: 'x'.repeat(1600) }))).kind).toBe('continue');
    other.fromClient(g, wire({ type: 'response.create' }));
    expect(deleted(other)).toEqual(['u0', 'u1', 'u2', 'u3', 'u4']);
  });
});
