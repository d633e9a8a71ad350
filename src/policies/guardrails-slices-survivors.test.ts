import { afterEach, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { LoggedSession } from '../../test/support/fake-session.js';
import { guardrailsWith, policyFrom, responseCreated, userText, wire } from '../../test/policies/support.js';
import { allowScanWindows } from '../../test/policies/scan-windows.js';
import type { Verdict } from '../pipeline/filter.js';
import { defineGuardrail, type Decision, type GuardrailDefinition } from './api.js';
import { checkSessionConfig } from './session-config-check.js';
import { SCAN_LIMIT_RULE } from './guardrail-scans.js';

/**
 * Tests for the mutants of src/policies/guardrails.ts's sliced scanning (texts longer than one
 * window, `maxInputChars`) that survived the range run of 2026-12-06 (/tmp/guard-survivors.txt):
 * a scan cut short by the event's budget gets `scan_time`, in whichever step it runs out (a text,
 * its rescan, a match across texts, a custom guardrail's replacement); the texts scanned in slices
 * are those some rule reads (not an item the client typed, echoed back); seeds (segments) as at once.
 * The budget is made to run out after exactly `n` windows (ScanBudget.next answers false from then
 * on): no timed assertions.
 */

type Json = Record<string, unknown>;

/** Counts the windows scanned in slices (the budget never runs out). */
function counted(): { used: () => number } {
  return allowScanWindows(Number.MAX_SAFE_INTEGER);
}

const isPromise = (v: unknown): v is Promise<Verdict> => typeof (v as Promise<Verdict>)?.then === 'function';
const setup = (yaml: string, g?: GuardrailDefinition) => guardrailsWith(yaml, g);
const reports = (s: LoggedSession) => s.reports.flatMap((r) => (r.kind === 'guardrail' ? [[r.ruleId, r.action]] : []));
const tripped = (s: LoggedSession) => s.lines.filter((l) => l['msg'] === 'guardrail tripped').map((l) => [l['rule'], l['matcher']]);
const typed = (text: string, id: string) => wire({ type: 'conversation.item.create', item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
const sentText = (v: Verdict): unknown => (v.kind === 'replace' ? (v.frame.json() as { item: { content: { text: string }[] } }).item.content[0]!.text : v.kind);
const info = { sessionId: '', tenantId: 'acme', model: 'gpt-realtime', policy: 'test', log: pino({ level: 'silent' }) };
const segment = (itemId: string, text: string) =>
  wire({ type: 'conversation.item.input_audio_transcription.segment', item_id: itemId, content_index: 0, id: `seg_${itemId}`, speaker: 'A', start: 0.5, end: 1.5, text });
const assistant = (id: string, text: string): Json => ({ id, type: 'message', object: 'realtime.item', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text }] });
const user = (id: string, text: string): Json => ({ id, type: 'message', object: 'realtime.item', role: 'user', status: 'completed', content: [{ type: 'input_text', text }] });

const INJ = 'guardrails:\n  rules: [{ id: inj, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }]';
const MAIL = 'guardrails:\n  rules: [{ id: mail, sources: [input], match: { pii: [email] }, action: redact, replacement: "[address removed]" }]';
/** 3 windows of 1024. */
const LONG = 3000;
const pad = (n: number) => 'a'.repeat(n);

afterEach(() => {
  vi.restoreAllMocks();
});

describe("a client text's sliced scan", () => {
  it("a rules' redaction found in slices is what goes upstream", async () => {
    const { client } = await setup(MAIL);
    const v = await client(typed(`${pad(LONG)} write to jane@example.com`, 'item_1'));
    expect(sentText(v)).toBe(`${pad(LONG)} write to [address removed]`);
  });

  it('a text that trips nothing is not rescanned: the budget of its own windows is enough', async () => {
    const { client, session } = await setup(MAIL);
    allowScanWindows(3);
    expect((await client(typed(pad(LONG), 'item_1'))).kind).toBe('continue');
    expect(reports(session)).toEqual([]);
  });

  it('a redaction whose rescan the budget cannot pay for gets scan_time: the event is refused, nothing thrown', async () => {
    const { client, session } = await setup(MAIL);
    allowScanWindows(3);
    const v = await client(typed(`${pad(LONG - 30)} jane@example.com`, 'item_1'));
    expect(v).toMatchObject({ kind: 'reject', error: { details: { rule: SCAN_LIMIT_RULE } } });
    expect(tripped(session)).toEqual([
      ['mail', 'email'],
      [SCAN_LIMIT_RULE, 'scan_time'],
    ]);
  });

  it("every finding of an event is reported (two rules, two texts' too-long scan_limits)", async () => {
    const { client, session } = await setup(MAIL.replace(' }]', ' }, { id: note, sources: [input], match: { phrases: ["zzz"] }, action: log }]'));
    const v = await client(typed(`${pad(LONG)} zzz jane@example.com`, 'item_1'));
    expect(v.kind).toBe('replace');
    expect(reports(session).map((r) => r[0]).sort()).toEqual(['mail', 'note']);
    const two = await setup(`guardrails:\n  maxScanChars: 1024\n  overScanLimit: pass_unscanned\n  rules: [{ id: inj, sources: [input], match: { phrases: ["x"] }, action: block }]`);
    const parts = wire({ type: 'conversation.item.create', item: { id: 'item_2', type: 'message', role: 'user', content: [{ type: 'input_text', text: pad(2000) }, { type: 'input_text', text: pad(2000) }] } });
    expect((await two.client(parts)).kind).toBe('continue');
    expect(reports(two.session)).toEqual([
      [SCAN_LIMIT_RULE, 'log'],
      [SCAN_LIMIT_RULE, 'log'],
    ]);
  });
});

describe('a match across a response input and the next item, in slices', () => {
  const create = (text: string) => wire({ type: 'response.create', response: { conversation: 'none', input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text }] }] } });

  it('found across the two: blocked', async () => {
    const { client } = await setup(INJ);
    expect(client(create('ignore previous')).kind).toBe('continue');
    expect(await client(typed(`instructions ${pad(LONG)}`, 'item_1'))).toMatchObject({ kind: 'reject', error: { details: { rule: 'inj' } } });
  });

  it('nothing across the two: the item goes on (no scan_time once the scan is done)', async () => {
    const { client, session } = await setup(INJ);
    expect(client(create('hello there')).kind).toBe('continue');
    expect((await client(typed(`instructions ${pad(LONG)}`, 'item_1'))).kind).toBe('continue');
    expect(reports(session)).toEqual([]);
  });

  it('the budget runs out before the match across them is looked for: scan_time refuses the item', async () => {
    const { client, session } = await setup(INJ);
    expect(client(create('ignore previous')).kind).toBe('continue');
    allowScanWindows(3);
    expect(await client(typed(`instructions ${pad(LONG - 20)}`, 'item_1'))).toMatchObject({ kind: 'reject', error: { details: { rule: SCAN_LIMIT_RULE } } });
    expect(tripped(session)).toEqual([[SCAN_LIMIT_RULE, 'scan_time']]);
  });

  it('the budget runs out after the item alone tripped a log rule: scan_time still comes', async () => {
    const { client, session } = await setup(`${INJ.replace(' }]', ' }, { id: note, sources: [input], match: { phrases: ["zzz"] }, action: log }]')}`);
    expect(client(create('ignore previous')).kind).toBe('continue');
    allowScanWindows(3);
    expect(await client(typed(`instructions zzz ${pad(LONG - 20)}`, 'item_1'))).toMatchObject({ kind: 'reject', error: { details: { rule: SCAN_LIMIT_RULE } } });
    expect(tripped(session)).toEqual([
      ['note', 'phrase'],
      [SCAN_LIMIT_RULE, 'scan_time'],
    ]);
  });

  it('the budget runs out between the joined scan and the scan alone: scan_time, nothing thrown', async () => {
    const { client, session } = await setup(INJ);
    expect(client(create('ignore previous')).kind).toBe('continue');
    // The item's own scan (3 windows), the joined scan (3): the scan alone is past the budget.
    allowScanWindows(6);
    expect(await client(typed(`instructions ${pad(LONG - 20)}`, 'item_1'))).toMatchObject({ kind: 'reject', error: { details: { rule: SCAN_LIMIT_RULE } } });
    expect(tripped(session)).toEqual([[SCAN_LIMIT_RULE, 'scan_time']]);
  });

  it('nothing across the two: the scan alone is not paid for (the budget of the item and the joined scan is enough)', async () => {
    const { client, session } = await setup(INJ);
    expect(client(create('hello there')).kind).toBe('continue');
    allowScanWindows(6);
    expect((await client(typed(`instructions ${pad(LONG - 20)}`, 'item_1'))).kind).toBe('continue');
    expect(reports(session)).toEqual([]);
  });

  it('with no rule that stops, no match across them is looked for (the budget of the item alone is enough)', async () => {
    const { client, session } = await setup(INJ.replace('action: block', 'action: log'));
    expect(client(create('ignore previous')).kind).toBe('continue');
    allowScanWindows(3);
    expect((await client(typed(`instructions ${pad(LONG - 20)}`, 'item_1'))).kind).toBe('continue');
    expect(reports(session)).toEqual([]);
  });
});

describe("a custom guardrail's replacement of a long text", () => {
  const g = defineGuardrail({ name: 'g', wants: ['input'], evaluate: (e) => ({ action: 'redact', text: e.text.replace('secret', 'hidden') }) });
  const WITH_G = `${INJ}\n  custom: [{ id: g, module: ./x.ts }]`;

  it('is rescanned within the budget: past it, scan_time (nothing thrown)', async () => {
    const { client, session } = await setup(WITH_G, g);
    allowScanWindows(3);
    const v = await client(typed(`secret ${pad(LONG - 10)}`, 'item_1'));
    expect(v).toMatchObject({ kind: 'reject', error: { details: { rule: SCAN_LIMIT_RULE } } });
    expect(tripped(session)).toEqual([
      ['g', 'custom:verdict'],
      [SCAN_LIMIT_RULE, 'scan_time'],
    ]);
  });

  it('of a source no rule reads is not rescanned (no budget spent on it)', async () => {
    // The text part (a rule reads it) takes the budget; the guardrail redacts an image URL no rule reads.
    const images = defineGuardrail({ name: 'g', wants: ['image'], evaluate: (e) => ({ action: 'redact', text: e.text.replace('secret', 'hidden') }) });
    const { client, session } = await setup(WITH_G, images);
    allowScanWindows(3);
    const content = [{ type: 'input_text', text: pad(LONG) }, { type: 'input_image', image_url: 'https://example.com/secret.png' }];
    const v = await client(wire({ type: 'conversation.item.create', item: { id: 'item_1', type: 'message', role: 'user', content } }));
    expect(v.kind === 'replace' ? (v.frame.json() as { item: { content: { image_url?: string }[] } }).item.content[1]!.image_url : v.kind).toBe('https://example.com/hidden.png');
    expect(tripped(session)).toEqual([['g', 'custom:verdict']]);
  });
});

describe('a session config minted over HTTP, in slices', () => {
  it("a rule limited to session.update's events judges it", async () => {
    const policy = await policyFrom('guardrails:\n  rules: [{ id: inj, sources: [input], events: [session.update], match: { phrases: ["ignore previous instructions"] }, action: block }]');
    const r = await checkSessionConfig(policy, { instructions: `${pad(LONG)} ignore previous instructions` }, info);
    expect(r.refusal?.details).toMatchObject({ rule: 'inj' });
  });

  it("instructions only a session.update rule reads take the sliced path, under the event's budget: past it, scan_time", async () => {
    const policy = await policyFrom('guardrails:\n  rules: [{ id: inj, sources: [input], events: [session.update], match: { phrases: ["ignore previous instructions"] }, action: block }]');
    allowScanWindows(1);
    const r = await checkSessionConfig(policy, { instructions: pad(LONG) }, info);
    expect(r.refusal?.details).toMatchObject({ rule: SCAN_LIMIT_RULE });
  });

  it('the instructions are matched from their start (no context before them)', async () => {
    const policy = await policyFrom("guardrails:\n  rules: [{ id: starts, sources: [input], match: { regex: ['^\\s*ignore'] }, action: block }]");
    const r = await checkSessionConfig(policy, { instructions: `ignore ${pad(LONG)}` }, info);
    expect(r.refusal?.details).toMatchObject({ rule: 'starts' });
  });
});

describe('which texts take the sliced path', () => {
  it('a text over maxScanChars does not count toward one window (judged at once)', async () => {
    const { client, session } = await setup(`guardrails:\n  maxScanChars: 2048\n  overScanLimit: pass_unscanned\n${INJ.replace('guardrails:\n', '')}`);
    const parts = wire({ type: 'conversation.item.create', item: { id: 'item_1', type: 'message', role: 'user', content: [{ type: 'input_text', text: pad(2049) }, { type: 'input_text', text: 'hello' }] } });
    const v = client(parts);
    expect(isPromise(v)).toBe(false);
    expect(reports(session)).toEqual([[SCAN_LIMIT_RULE, 'log']]);
  });

  it('a text of exactly maxScanChars is scanned, in slices', async () => {
    const { client } = await setup(`guardrails:\n  maxScanChars: 2048\n${INJ.replace('guardrails:\n', '')}`);
    const v = client(typed(`${pad(2048 - 29)} ignore previous instructions`, 'item_1'));
    expect(isPromise(v)).toBe(true);
    expect(await v).toMatchObject({ kind: 'reject', error: { details: { rule: 'inj' } } });
  });

  it('a long text no rule reads does not count (judged at once)', async () => {
    const { client } = await setup('guardrails:\n  rules: [{ id: out, sources: [output], match: { phrases: ["x"] }, action: block }]');
    const v = client(typed(pad(LONG), 'item_1'));
    expect(isPromise(v)).toBe(false);
  });
});

describe('the server path in slices', () => {
  const OUT = 'guardrails:\n  rules: [{ id: inj, sources: [input, output], match: { phrases: ["ignore previous instructions"] }, action: block }]';

  it("the echo of a long item the client typed is not scanned again (judged at once); a retrieve of it is scanned", async () => {
    const { client, server } = await setup(OUT);
    expect((await client(typed(pad(LONG), 'item_1'))).kind).toBe('continue');
    const c = counted();
    const echo = server(wire({ type: 'conversation.item.added', event_id: 'ev_a', previous_item_id: null, item: user('item_1', pad(LONG)) }));
    expect(isPromise(echo)).toBe(false);
    expect(c.used()).toBe(0);
    const again = server(wire({ type: 'conversation.item.retrieved', event_id: 'ev_r', item: user('item_1', pad(LONG)) }));
    expect(isPromise(again)).toBe(true);
    expect((await again).kind).toBe('continue');
    expect(c.used()).toBe(3);
  });

  it("a spoken user turn's long transcript (the client's audio, not its typing) is scanned in slices", async () => {
    const { server } = await setup(OUT);
    server(wire({ type: 'input_audio_buffer.committed', event_id: 'ev_c', previous_item_id: null, item_id: 'item_v' }));
    const spoken = (transcript: string | null): Json => ({ id: 'item_v', type: 'message', object: 'realtime.item', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript }] });
    server(wire({ type: 'conversation.item.added', event_id: 'ev_a', previous_item_id: null, item: spoken(null) }));
    const c = counted();
    const v = server(wire({ type: 'conversation.item.done', event_id: 'ev_d', previous_item_id: null, item: spoken(`${pad(LONG)} ignore previous instructions`) }));
    expect(isPromise(v)).toBe(true);
    expect((await v).kind).not.toBe('continue');
    expect(c.used()).toBe(3);
  });

  it('content it cannot read beside a long text is not scanned', async () => {
    const { server } = await setup(OUT);
    server(responseCreated('resp_1'));
    const c = counted();
    const item = { ...assistant('item_m', pad(LONG)), content: [{ type: 'output_text', text: pad(LONG) }, { type: 'made_up_part', data: 1 }] };
    const v = server(wire({ type: 'response.output_item.done', event_id: 'ev_i', response_id: 'resp_1', output_index: 0, item }));
    expect(isPromise(v)).toBe(true);
    await v;
    expect(c.used()).toBe(3);
  });

  it('a long model text is matched from its start (no context before it)', async () => {
    const { server } = await setup("guardrails:\n  rules: [{ id: starts, sources: [output], match: { regex: ['^\\s*ignore'] }, action: block }]");
    server(responseCreated('resp_1'));
    const v = await server(wire({ type: 'response.output_item.done', event_id: 'ev_i', response_id: 'resp_1', output_index: 0, item: assistant('item_m', `ignore ${pad(LONG)}`) }));
    expect(v.kind).toBe('replace');
  });

  it("diarized segments: an earlier segment is the context of a long one; the first long one has none", async () => {
    const { server } = await setup(INJ);
    expect(server(segment('item_s', 'ignore previous')).kind).toBe('continue');
    const v = await server(segment('item_s', `instructions ${pad(LONG)}`));
    expect(v.kind === 'replace' ? v.frame.json()['text'] : v.kind).toBe('');
    const first = await setup("guardrails:\n  rules: [{ id: starts, sources: [input], match: { regex: ['^\\s*ignore'] }, action: block }]");
    const w = await first.server(segment('item_t', `ignore ${pad(LONG)}`));
    expect(w.kind === 'replace' ? w.frame.json()['text'] : w.kind).toBe('');
  });

  it("a segment's context is not that of another event showing the item", async () => {
    const { server } = await setup(INJ);
    expect(server(segment('item_s', 'ignore previous')).kind).toBe('continue');
    const v = await server(wire({ type: 'conversation.item.retrieved', event_id: 'ev_r', item: user('item_s', `instructions ${pad(LONG)}`) }));
    expect(v.kind).toBe('continue');
  });
});

describe("a long .done's scan", () => {
  const OUT = 'guardrails:\n  rules: [{ id: inj, sources: [output], match: { phrases: ["ignore previous instructions"] }, action: block }]';
  const done = (text: string) => wire({ type: 'response.output_text.done', event_id: 'ev_d', response_id: 'resp_1', item_id: 'item_m', output_index: 0, content_index: 0, text });
  const delta = (text: string) => wire({ type: 'response.output_text.delta', event_id: 'ev_dd', response_id: 'resp_1', item_id: 'item_m', output_index: 0, content_index: 0, delta: text });

  it('without deltas, or after deltas with the context unchanged, no match across a context is looked for (its own windows are enough)', async () => {
    const transcribed = (transcript: string) =>
      wire({ type: 'conversation.item.input_audio_transcription.completed', event_id: 'ev_t', item_id: 'item_s', content_index: 0, transcript, usage: { type: 'duration', seconds: 1 } });
    const a = await setup(INJ);
    allowScanWindows(3);
    expect((await a.server(transcribed(pad(LONG)))).kind).toBe('continue');
    expect(reports(a.session)).toEqual([]);
    vi.restoreAllMocks();
    const b = await setup(INJ);
    expect(b.server(wire({ type: 'conversation.item.input_audio_transcription.delta', event_id: 'ev_td', item_id: 'item_s', content_index: 0, delta: 'hello' })).kind).not.toBe('drop');
    allowScanWindows(3);
    expect((await b.server(transcribed(pad(LONG)))).kind).toBe('continue');
    expect(reports(b.session)).toEqual([]);
  });

  it('response.text.done (its text in `text`): a redaction replaces the text', async () => {
    const { server } = await setup('guardrails:\n  rules: [{ id: mail, sources: [output], match: { pii: [email] }, action: redact, replacement: "[address removed]" }]');
    server(responseCreated('resp_1'));
    const v = await server(wire({ type: 'response.text.done', event_id: 'ev_t', response_id: 'resp_1', item_id: 'item_m', output_index: 0, content_index: 0, text: 'write to jane@example.com' }));
    expect(v.kind === 'replace' ? v.frame.json()['text'] : v.kind).toBe('write to [address removed]');
  });
});

describe('two sources\' redactions of one long text, merged', () => {
  const MERGE = `
guardrails:
  rules:
    - { id: phone, sources: [tool_output], match: { pii: [phone] }, action: redact, replacement: "***" }
    - { id: wire, sources: [input], match: { phrases: ["wire the money"] }, action: block }
`;
  const toolOutput = (output: string) => wire({ type: 'conversation.item.create', item: { id: 'item_out', type: 'function_call_output', call_id: 'call_1', output } });

  it('the merged text is rescanned within the budget: past it, scan_time refuses the event (nothing thrown)', async () => {
    // tool_output: its scan and its redaction's rescan (3 + 3 windows); input: its scan (3); the merged text's rescan is past the budget.
    const { client, session } = await setup(MERGE);
    allowScanWindows(9);
    const v = await client(toolOutput(`${pad(LONG - 30)} wire the 4155550100 money`));
    expect(v).toMatchObject({ kind: 'reject', error: { details: { rule: SCAN_LIMIT_RULE } } });
    expect(tripped(session)).toEqual([
      ['phone', 'phone'],
      [SCAN_LIMIT_RULE, 'scan_time'],
    ]);
  });

  it('with the budget, the merged text is judged: the phrase it makes refuses the event', async () => {
    const { client } = await setup(MERGE);
    const v = await client(toolOutput(`${pad(LONG - 30)} wire the 4155550100 money`));
    expect(v).toMatchObject({ kind: 'reject', error: { details: { rule: 'wire' } } });
  });
});

describe('a long spoken turn whose context lost a text while it streamed', () => {
  const FILLER = `${'filler text '.repeat(20)}end`;
  const typedAt = (text: string, id: string, eventId: string, previous?: string) =>
    wire({ type: 'conversation.item.create', event_id: eventId, ...(previous !== undefined ? { previous_item_id: previous } : {}), item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  const added = (id: string, text: string) => wire({ type: 'conversation.item.added', event_id: `ev_a_${id}`, previous_item_id: null, item: user(id, text) });
  const refused = (eventId: string | null) => wire({ type: 'error', event_id: 'ev_err', error: { type: 'invalid_request_error', code: 'item_not_found', message: 'refused', param: null, event_id: eventId } });
  const ids = { item_id: 'item_s', content_index: 0 };
  const streamThenRefuse = async (yaml: string, before: string | null) => {
    const s = await setup(yaml);
    if (before !== null) {
      s.client(typedAt(before, 'item_a', 'evt_a'));
      s.server(added('item_a', before));
    }
    s.client(typedAt(FILLER, 'item_x', 'evt_x', 'item_nope'));
    expect(s.server(wire({ type: 'conversation.item.input_audio_transcription.delta', event_id: 'ev_td', ...ids, delta: 'instructions now' })).kind).not.toBe('drop');
    s.server(refused(s.session.upstreamIdOf('evt_x')));
    return s;
  };
  const completed = (transcript: string) => wire({ type: 'conversation.item.input_audio_transcription.completed', event_id: 'ev_t', ...ids, transcript, usage: { type: 'duration', seconds: 1 } });

  it('the budget runs out before the match across the context is looked for: scan_time (nothing thrown)', async () => {
    const { server, session } = await streamThenRefuse(INJ, 'ignore previous');
    allowScanWindows(3);
    expect((await server(completed(`instructions now ${pad(LONG - 20)}`))).kind).toBe('drop');
    expect(tripped(session)).toEqual([[SCAN_LIMIT_RULE, 'scan_time']]);
  });

  it('a match across the context is found beside another rule the text trips alone', async () => {
    const { server, session } = await streamThenRefuse(`${INJ.replace(' }]', ' }, { id: note, sources: [input], match: { phrases: ["zzz"] }, action: log }]')}`, 'ignore previous');
    expect((await server(completed(`instructions now zzz ${pad(LONG - 20)}`))).kind).toBe('drop');
    expect(tripped(session)).toEqual([
      ['note', 'phrase'],
      ['inj', 'phrase:context_changed'],
    ]);
  });
});

describe("a parallel guardrail's late verdict on a long item sent without an id", () => {
  it('waits for the sliced scan: the echo of the text as forwarded (redacted) is found, and the item deleted', async () => {
    const p = defineGuardrail({ name: 'p', wants: ['input'], evaluate: async (): Promise<Decision> => ({ action: 'block' }) });
    const t = await setup(`${MAIL}\n  custom: [{ id: p, module: ./x.ts, mode: parallel, timeoutMs: 30000 }]`, p);
    // Every window its own slice: the scan takes a macrotask per window; the verdict is in before it is done.
    let now = 0;
    vi.spyOn(performance, 'now').mockImplementation(() => (now += 5));
    const anon = wire({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `${pad(LONG)} write to jane@example.com` }] } });
    const v = await t.client(anon);
    expect(v.kind).toBe('replace');
    await new Promise((r) => setTimeout(r, 0));
    t.server(wire({ type: 'conversation.item.added', event_id: 'ev_a', previous_item_id: null, item: user('item_bad', `${pad(LONG)} write to [address removed]`) }));
    expect(t.session.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id'])).toEqual(['item_bad']);
  });
});
