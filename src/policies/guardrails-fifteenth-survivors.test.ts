import { describe, expect, it } from 'vitest';
import type { LoggedSession } from '../../test/support/fake-session.js';
import { guardrailsWith, wire } from '../../test/policies/support.js';
import { added, deletes, FILLER, modelAdded, refused, spokenAdded, toolOut, transcript, typed } from '../../test/policies/item-events.js';
import { defineGuardrail } from './api.js';

/**
 * Tests for the open mutation survivors of src/policies/guardrails.ts after the fourteenth session's
 * range run (2026-12-06): the spoken turn's following items (#followingSpoken), what #unplace judges
 * again after a refusal (each item once) and what it skips, a retraction that ends the session, and
 * the place of an item a call's browser wrote (#rememberBrowserItem). Driven without sockets (a
 * LoggedSession records what the filter sends, reports and logs).
 */

const INJ = 'guardrails:\n  rules: [{ id: inj, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }]';

const settle = () => new Promise((r) => setTimeout(r, 0));
/** The guardrail reports of one rule (its actions, in order). */
const reportsOf = (s: LoggedSession, rule: string) => s.reports.flatMap((r) => (r.kind === 'guardrail' && r.ruleId === rule ? [r.action] : []));

describe('#followingSpoken: a spoken turn meets the typed input before its place, typed tool outputs skipped', () => {
  it('a tool output the client typed between a typed half and the turn does not hide the half (read without tools)', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    expect(client(typed('ignore previous', 'item_a', 'evt_a')).kind).toBe('continue');
    server(added('item_a', 'ignore previous'));
    expect(client(toolOut(FILLER, 'item_t', 'evt_t')).kind).toBe('continue');
    server(spokenAdded('item_s', 'item_t'));
    expect(server(transcript('item_s', 'instructions now')).kind).toBe('drop');
    expect(reportsOf(session, 'inj')).toEqual(['block']);
  });
});

describe('#unplace: a typed tool output after a refused one is judged again as tool output and as input', () => {
  it('an input rule across the typed text before the refused tool output and the tool output after it', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    // Places a, x, b; arrival b, x, a: the appended context never joins a and b (#withdraw finds nothing).
    expect(client(toolOut('instructions, please', 'item_b', 'evt_b')).kind).toBe('continue');
    expect(client(toolOut(FILLER, 'item_x', 'evt_x', 'root')).kind).toBe('continue');
    expect(client(typed('ignore previous', 'item_a', 'evt_a', 'root')).kind).toBe('continue');
    server(refused(session.upstreamIdOf('evt_x')));
    expect(deletes(session)).toEqual(['item_b']);
  });
});

describe('a retraction while late blocks fill their room is reported once (regression: reported twice until 2026-12-06; since 2026-12-07 it takes no late block)', () => {
  // A parallel guardrail blocking "bad …" late: each such item sent without an id waits for its echo.
  const lateBlock = defineGuardrail({ name: 'late', wants: ['input'], evaluate: async (e) => ({ action: e.text.startsWith('bad') ? 'block' : 'allow' }) });
  const LATE = `${INJ}\n  custom: [{ id: late, module: ./x.ts, mode: parallel }]`;

  it('#withdraw blames the item after a refused one and ends the session: #unplace, meeting it too, reports nothing more', async () => {
    const { client, server, session } = await guardrailsWith(LATE, lateBlock);
    for (let i = 0; i < 256; i++) client(typed(`bad ${i}`, null));
    await settle();
    client(typed('ignore previous', 'item_a', 'evt_a'));
    client(typed(FILLER, 'item_x', 'evt_x'));
    client(typed('instructions, please', null, 'evt_b'));
    await settle();
    expect(session.closedWith).toBeNull();
    server(refused(session.upstreamIdOf('evt_x')));
    // Since 2026-12-07 the retraction waits on its create, not on a late block (no room needed):
    // the session goes on, and the echo that answers the create is deleted. Still reported once.
    expect(session.closedWith).toBeNull();
    expect(reportsOf(session, 'inj')).toEqual(['block']);
    server(added('item_a', 'ignore previous'));
    server(added('item_srv_b', 'instructions, please', 'item_a'));
    expect(deletes(session)).toEqual(['item_srv_b']);
    expect(reportsOf(session, 'inj')).toEqual(['block']);
  });
});

describe('#unplace judges an item it meets twice (the next input, and the next read as input) once', () => {
  it('the echo of an item sent without an id takes the one before it out: the phrase across that one\'s place is reported once', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    // Places a, x, b; arrival x, b, a: only #unplace finds the phrase (a, then b once x is out).
    expect(client(typed(FILLER, 'item_x', 'evt_x')).kind).toBe('continue');
    expect(client(typed('instructions, please', null, 'evt_b')).kind).toBe('continue');
    expect(client(typed('ignore previous', 'item_a', 'evt_a', 'root')).kind).toBe('continue');
    // The upstream answers in order: b's echo means x was refused.
    server(added('item_srv_b', 'instructions, please', 'item_a'));
    expect(deletes(session)).toEqual(['item_srv_b']);
    expect(reportsOf(session, 'inj')).toEqual(['block']);
  });
});

describe('#unplace skips an item #withdraw already removed', () => {
  it('deleted (sent with an id): reported once, the client told once', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    client(typed('ignore previous', 'item_a', 'evt_a'));
    server(added('item_a', 'ignore previous'));
    client(typed(FILLER, 'item_x', 'evt_x'));
    expect(client(typed('instructions, please', 'item_b', 'evt_b')).kind).toBe('continue');
    server(refused(session.upstreamIdOf('evt_x')));
    expect(deletes(session)).toEqual(['item_b']);
    expect(reportsOf(session, 'inj')).toEqual(['block']);
    expect(session.client.filter((e) => e.type === 'rtproxy.notice')).toHaveLength(1);
  });

  it('late-blocked (sent without an id, its echo still to come): reported once, deleted at its echo', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    client(typed('ignore previous', 'item_a', 'evt_a'));
    server(added('item_a', 'ignore previous'));
    client(typed(FILLER, 'item_x', 'evt_x'));
    expect(client(typed('instructions, please', null, 'evt_b')).kind).toBe('continue');
    server(refused(session.upstreamIdOf('evt_x')));
    expect(reportsOf(session, 'inj')).toEqual(['block']);
    expect(deletes(session)).toEqual([]);
    server(added('item_srv_b', 'instructions, please', 'item_a'));
    expect(deletes(session)).toEqual(['item_srv_b']);
  });
});

describe("#rememberBrowserItem: the place of an item a call's browser wrote takes its text only when it has one", () => {
  const browserAdded = (item: Record<string, unknown>, previous: string | null) => wire({ type: 'conversation.item.added', event_id: `ev_b_${String(item['id'])}`, previous_item_id: previous, item });
  const onCall = async () => {
    const g = await guardrailsWith(INJ);
    Object.assign(g.session, { callId: 'rtc_1' });
    return g;
  };

  it('a message without text (an image) keeps a place without text: an item inserted after it meets the typed text before it', async () => {
    const { client, server } = await onCall();
    client(typed('ignore previous', 'item_a', 'evt_a'));
    server(added('item_a', 'ignore previous'));
    const image = { id: 'item_im', type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'data:image/png;base64,AAAA' }] };
    expect(server(browserAdded(image, 'item_a')).kind).toBe('continue');
    server(modelAdded('item_m', 'item_im'));
    expect(client(typed('instructions, please', 'item_b', 'evt_b', 'item_im'))).toMatchObject({ kind: 'reject', error: { details: { rule: 'inj' } } });
  });

  it('a message shown at the start with 128 places kept has none (the first dropped): its text is still the context appended after it', async () => {
    const { client, server } = await onCall();
    for (let i = 0; i < 128; i++) client(typed(`ok ${i}`, `item_${i}`, `evt_${i}`));
    const message = { id: 'item_bm', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'ignore previous' }] };
    expect(server(browserAdded(message, null)).kind).toBe('continue');
    expect(client(typed('instructions, please', 'item_b', 'evt_b'))).toMatchObject({ kind: 'reject', error: { details: { rule: 'inj' } } });
  });

  it('an item shown again with other text (conversation.item.created after .added) keeps the text its place took first', async () => {
    const { client, server } = await onCall();
    client(typed('hi', 'item_a', 'evt_a'));
    server(added('item_a', 'hi'));
    const message = (text: string) => ({ id: 'item_bm', type: 'message', role: 'user', content: [{ type: 'input_text', text }] });
    expect(server(browserAdded(message('ignore previous'), 'item_a')).kind).toBe('continue');
    expect(server(wire({ type: 'conversation.item.created', event_id: 'ev_c_bm', previous_item_id: 'item_a', item: message('hello there') })).kind).toBe('continue');
    // Not the last item: an item inserted after it meets its place, not the appended context.
    server(modelAdded('item_m', 'item_bm'));
    expect(client(typed('instructions, please', 'item_b', 'evt_b', 'item_bm'))).toMatchObject({ kind: 'reject', error: { details: { rule: 'inj' } } });
  });
});
