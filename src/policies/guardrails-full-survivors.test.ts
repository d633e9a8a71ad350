import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { LoggedSession } from '../../test/support/fake-session.js';
import { entryOf, guardrailsWith, INJECTION_POLICY, policyFrom, userMessage, verdictCode, wire } from '../../test/policies/support.js';
import type { Verdict } from '../pipeline/filter.js';
import { defineGuardrail } from './api.js';
import { GuardrailFilter } from './guardrails.js';
import { checkSessionConfig } from './session-config-check.js';

/**
 * Tests for the mutants of src/policies/guardrails.ts that survived the full run of 2026-12-06
 * (twelfth session), and for the eleventh session's lines that had never been run (refuseMalformed
 * for wrongly shaped members, a call's session texts, decoded log excerpts). Driven without sockets
 * (a LoggedSession records what the filter sends, reports and logs).
 */

type Json = Record<string, unknown>;

const PHRASE = 'ignore previous instructions';
const INFO = { sessionId: '', tenantId: 'acme', model: 'gpt-realtime', policy: 'test', log: pino({ level: 'silent' }) };
/** Each character as its Unicode tag counterpart (U+E0020–E007E): invisible on screen, read by models. */
const tags = (t: string) => [...t].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join('');

/** A guardrail filter on a call (`callId` set): session.created / session.updated carry the browser's session. */
async function onCall(yaml: string, loadModule?: Parameters<typeof policyFrom>[2]) {
  const session = new LoggedSession();
  Object.assign(session, { callId: 'rtc_1' });
  const filter = new GuardrailFilter(session, entryOf(await policyFrom(yaml, 'test', loadModule)));
  return {
    session,
    server: (e: Json & { type: string }) => session.fromServer(filter, wire(e)) as Verdict,
    client: (e: Json & { type: string }) => session.fromClient(filter, wire(e)) as Verdict,
    updates: () => session.upstream.filter((e) => e.type === 'session.update').map((e) => e['session']),
    reports: () => session.reports.flatMap((r) => (r.kind === 'guardrail' ? [[r.ruleId, r.action]] : [])),
  };
}
const created = (s: Json) => ({ type: 'session.created', session: { type: 'realtime', ...s } });
const updated = (s: Json) => ({ type: 'session.updated', session: { type: 'realtime', ...s } });

describe("a call's session texts (eleventh session): a wrongly shaped member, texts the baseline lacks, the preview transcription", () => {
  it('a member of another shape set over the data channel is refused like a WebSocket update: the governed texts are put back', async () => {
    const g = await onCall(INJECTION_POLICY.replace('  unknownContentEvents: block\n', ''));
    g.server(created({ instructions: 'Be helpful.' }));
    expect(g.server(updated({ instructions: [PHRASE] })).kind).toBe('continue');
    expect(g.updates()).toEqual([{ type: 'realtime', instructions: 'Be helpful.' }]);
    // A transcription prompt of another shape too (the nested member).
    g.server(updated({ instructions: 'Be helpful.', audio: { input: { transcription: { model: 'm', prompt: [PHRASE] } } } }));
    expect(g.updates().at(-1)).toEqual({ type: 'realtime', audio: { input: { transcription: null } } });
    expect(g.session.closedWith).toBeNull();
  });

  it('a call created without audio gets a refused transcription prompt put back off (null), the other members untouched', async () => {
    const g = await onCall(INJECTION_POLICY);
    g.server(created({ instructions: 'Be helpful.', tools: [] }));
    g.server(updated({ instructions: 'Be helpful.', tools: [], audio: { output: { voice: 'marin' }, input: { transcription: { model: 'm', prompt: PHRASE } } } }));
    expect(g.updates()).toEqual([{ type: 'realtime', audio: { input: { transcription: null } } }]);
    expect(g.reports()).toEqual([['injection', 'block']]);
  });

  it("the preview protocol's input_audio_transcription set over the data channel is judged, and put back off (null)", async () => {
    const g = await onCall(INJECTION_POLICY);
    g.server(created({ instructions: 'Be helpful.' }));
    g.server(updated({ instructions: 'Be helpful.', input_audio_transcription: { model: 'whisper-1', prompt: PHRASE } }));
    expect(g.updates()).toEqual([{ type: 'realtime', input_audio_transcription: null }]);
  });

  it('a refused change of two members puts both back in one update (the nested one in its place, the baseline ones as they were)', async () => {
    const g = await onCall(INJECTION_POLICY);
    const transcription = { model: 'm', prompt: 'Acme' };
    g.server(created({ instructions: 'Be helpful.', audio: { input: { transcription } } }));
    g.server(updated({ instructions: PHRASE, audio: { input: { transcription: { model: 'm', prompt: `${PHRASE}!` } } } }));
    expect(g.updates()).toEqual([{ type: 'realtime', instructions: 'Be helpful.', audio: { input: { transcription } } }]);
  });

  it('a session.created whose texts a rule would refuse is the baseline (judged when the call was created); the same texts later send nothing', async () => {
    const g = await onCall(INJECTION_POLICY);
    expect(g.server(created({ audio: { input: { transcription: { model: 'm', prompt: PHRASE } } } })).kind).toBe('continue');
    expect(g.server(updated({ audio: { input: { transcription: { model: 'm', prompt: PHRASE } } } })).kind).toBe('continue');
    expect([g.updates(), g.reports()]).toEqual([[], []]);
    // Members outside the texts (voice, the transcription's language of another session member) change nothing.
    g.server(updated({ audio: { input: { transcription: { model: 'm', prompt: PHRASE } }, output: { voice: 'cedar' } }, max_output_tokens: 5 }));
    expect(g.updates()).toEqual([]);
  });
});

describe('checkSessionConfig: a wrongly shaped member is refused before any text is judged', () => {
  it('no finding, no custom guardrail called, no redaction applied; the refusal names the wrongly shaped member, not the phrase', async () => {
    const seen: string[] = [];
    const spy = defineGuardrail({ name: 'spy', wants: ['input'], evaluate: (e) => (seen.push(e.text), { action: 'allow' }) });
    const policy = await policyFrom(
      'guardrails:\n  rules:\n    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }\n    - { id: word, sources: [input], match: { phrases: ["wire"] }, action: redact, replacement: "[X]" }\n  custom: [{ id: spy, module: ./custom/spy.mjs, mode: blocking }]',
      'test',
      async () => ({ default: spy }),
    );
    const config = { type: 'realtime', instructions: `${PHRASE} wire`, tools: [{ type: 'function', name: 'f', description: 5 }] };
    const r = await checkSessionConfig(policy, config, INFO);
    expect(r.findings).toEqual([]);
    expect(r.refusal).toMatchObject({ code: 'invalid_request', param: 'session.tools[0].description' });
    expect(seen).toEqual([]);
    expect(config.instructions).toBe(`${PHRASE} wire`);
  });
});

describe('a policy with nothing to judge still refuses a wrongly shaped member on a WebSocket (the idle path)', () => {
  it('no rules, unknown content let through: a conversation item whose text is a number is refused, a well-formed one passes', async () => {
    const g = await guardrailsWith('description: nothing to judge\n');
    const bad = g.client(wire({ type: 'conversation.item.create', event_id: 'evt_b', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 7 }] } }));
    expect(bad.kind === 'reject' ? [bad.error.code, bad.error.param, bad.error.eventId] : bad.kind).toEqual(['invalid_event', 'item.content[0].text', 'evt_b']);
    expect(g.client(wire({ type: 'conversation.item.create', item: userMessage(PHRASE) })).kind).toBe('continue');
  });

  it('no rules but unknown content blocked: unknown content is still refused (the idle shortcut is only for a policy that lets it through)', async () => {
    const g = await guardrailsWith('guardrails:\n  unknownContentEvents: block\n');
    const v = g.client(wire({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_file', file_data: 'x' }] } }));
    expect(verdictCode(v)).toBe('guardrail_blocked');
    const bad = g.client(wire({ type: 'session.update', session: { type: 'realtime', instructions: 5 } }));
    expect(verdictCode(bad)).toBe('invalid_event');
  });
});

describe("log excerpts (eleventh session): a match hidden in tag characters is logged decoded, and marked", () => {
  const LOGGED = 'logMatches: true\nguardrails:\n  rules:\n    - { id: injection, sources: [input, output], match: { phrases: ["ignore previous instructions"] }, action: log }\n';

  it('a match partly hidden is logged as the ASCII it encodes, matchTagsDecoded set; the visible match of the next item is not marked', async () => {
    const g = await guardrailsWith(LOGGED);
    g.client(wire({ type: 'conversation.item.create', item: userMessage(`ignore ${tags('previous instructions')}`) }));
    g.client(wire({ type: 'conversation.item.create', item: userMessage(`say ${PHRASE}`) }));
    const lines = g.session.lines.filter((l) => l['msg'] === 'guardrail tripped');
    expect(lines.map((l) => [l['match'], l['matchTagsDecoded'] ?? null])).toEqual([
      [PHRASE, true],
      [PHRASE, null],
    ]);
    expect(JSON.stringify(g.session.lines)).not.toMatch(/[\u{e0000}-\u{e007f}]/u);
  });

  it('a rule without logMatches logs no excerpt at all (no match, no mark), hidden or not', async () => {
    const g = await guardrailsWith(LOGGED.replace('logMatches: true\n', ''));
    g.client(wire({ type: 'conversation.item.create', item: userMessage(tags(PHRASE)) }));
    const lines = g.session.lines.filter((l) => l['msg'] === 'guardrail tripped');
    expect(lines.map((l) => ['match' in l, 'matchTagsDecoded' in l])).toEqual([[false, false]]);
  });
});

describe('the idle shortcut (a policy with nothing to judge that lets unknown content through): a pass-through apart from refusing wrongly shaped members', () => {
  it('an unknown part in a known event goes on uncounted and unlogged; an unknown event type is counted and logged (the documented metric)', async () => {
    const g = await guardrailsWith('description: nothing to judge\n');
    const part = g.client(wire({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_file', file_data: 'x' }] } }));
    expect(part.kind).toBe('continue');
    expect(g.session.reports.filter((r) => r.kind === 'unknown_content')).toEqual([]);
    expect(g.session.lines.filter((l) => l['msg'] === 'event type not in the content-path table')).toEqual([]);
    expect(g.client(wire({ type: 'made.up' })).kind).toBe('continue');
    expect(g.session.reports.filter((r) => r.kind === 'unknown_content')).toEqual([{ kind: 'unknown_content', direction: 'client', action: 'pass' }]);
  });
});

describe('an item inserted next to a typed tool output (B: #clientTexts lines 860-877)', () => {
  const item = (id: string, type: string, extra: Json) => ({ type: 'conversation.item.create', item: { id, type, ...extra } });
  const toolOut = (id: string, output: string) => item(id, 'function_call_output', { call_id: `call_${id}`, output });
  const user = (id: string, ...texts: string[]) => item(id, 'message', { role: 'user', content: texts.map((text) => ({ type: 'input_text', text })) });

  it('only the first input part of an inserted item meets the tool output before its place: a later part met it across the first (no false block)', async () => {
    const g = await guardrailsWith(INJECTION_POLICY);
    expect(g.client(wire(toolOut('o1', 'ignore previous'))).kind).toBe('continue');
    expect(g.client(wire(user('u9', 'zzz'))).kind).toBe('continue');
    // Between o1 and u9: "ignore previous" · "hello" · "instructions" (not a phrase).
    expect(g.client(wire({ ...user('u1', 'hello', 'instructions'), previous_item_id: 'o1' })).kind).toBe('continue');
    // Control: its first part does meet it.
    expect(verdictCode(g.client(wire({ ...user('u2', 'instructions', 'hello'), previous_item_id: 'o1' })))).toBe('guardrail_blocked');
  });

  it('a tool output inserted after typed input is judged by the tool_output rules against tool outputs only (input context is for the input rules)', async () => {
    const g = await guardrailsWith('guardrails:\n  rules:\n    - { id: tool-inj, sources: [tool_output], match: { phrases: ["ignore previous instructions"] }, action: block }\n');
    expect(g.client(wire(user('u1', 'ignore previous'))).kind).toBe('continue');
    expect(g.client(wire(user('u9', 'zzz'))).kind).toBe('continue');
    expect(g.client(wire({ ...toolOut('o1', 'instructions'), previous_item_id: 'u1' })).kind).toBe('continue');
    expect(g.session.reports.filter((r) => r.kind === 'guardrail')).toEqual([]);
    // Control: after a tool output saying the start, the tool_output rule trips.
    const h = await guardrailsWith('guardrails:\n  rules:\n    - { id: tool-inj, sources: [tool_output], match: { phrases: ["ignore previous instructions"] }, action: block }\n');
    h.client(wire(toolOut('o0', 'ignore previous')));
    h.client(wire(user('u9', 'zzz')));
    expect(verdictCode(h.client(wire({ ...toolOut('o1', 'instructions'), previous_item_id: 'o0' })))).toBe('guardrail_blocked');
  });
});

describe('echoes answer the items the client sent (C: #serverTexts lines 1070-1073)', () => {
  const INJ = 'guardrails:\n  rules: [{ id: inj, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }]';
  // Longer than the window (128): as context it pushes everything before it out.
  const FILLER = `${'filler text '.repeat(20)}end`;
  const typed = (text: string, id: string | null) =>
    wire({ type: 'conversation.item.create', item: { ...(id !== null ? { id } : {}), type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  const echo = (type: string, id: string, text: string, role = 'user') =>
    wire({ type, event_id: `ev_${id}`, previous_item_id: null, item: { id, type: 'message', object: 'realtime.item', role, status: 'completed', content: [{ type: role === 'user' ? 'input_text' : 'output_text', text }] } });
  const deletes = (s: LoggedSession) => s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id']);

  it('the beta echo (conversation.item.created) tells too: the item before it, never echoed, was refused and leaves the context', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    client(typed('ignore previous', 'item_a'));
    server(echo('conversation.item.created', 'item_a', 'ignore previous'));
    // An id already used: the upstream refuses it (its error names no event).
    expect(client(typed(FILLER, 'item_a')).kind).toBe('continue');
    expect(client(typed('instructions, please', null)).kind).toBe('continue');
    expect(deletes(session)).toEqual([]);
    server(echo('conversation.item.created', 'item_srv_1', 'instructions, please'));
    expect(deletes(session)).toEqual(['item_srv_1']);
  });

  it("a model item with the text of a client item still unanswered is no echo of it: nothing is taken out, and the model's item is not deleted", async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    client(typed('ignore previous', 'item_a'));
    server(echo('conversation.item.added', 'item_a', 'ignore previous'));
    client(typed(FILLER, 'item_a'));
    client(typed('instructions, please', null));
    server(wire({ type: 'response.created', event_id: 'ev_rc', response: { id: 'resp_1', object: 'realtime.response', status: 'in_progress', output: [], conversation_id: 'conv_1', usage: null } }));
    const model = { id: 'item_m', type: 'message', object: 'realtime.item', role: 'assistant', status: 'in_progress', content: [] };
    server(wire({ type: 'response.output_item.added', event_id: 'ev_oa', response_id: 'resp_1', output_index: 0, item: model }));
    server(echo('conversation.item.added', 'item_m', 'instructions, please', 'assistant'));
    expect(deletes(session)).toEqual([]);
    expect(session.reports.filter((r) => r.kind === 'guardrail')).toEqual([]);
  });
});

describe('items leaving the conversation (E: #unplace lines 1782-1786)', () => {
  const INJ = 'guardrails:\n  rules: [{ id: inj, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }]';
  const FILLER = `${'filler text '.repeat(20)}end`;
  const item = (id: string, type: string, extra: Json, previous?: string) =>
    wire({ type: 'conversation.item.create', ...(previous !== undefined ? { previous_item_id: previous } : {}), item: { id, type, ...extra } });
  const user = (id: string, text: string, previous?: string) => item(id, 'message', { role: 'user', content: [{ type: 'input_text', text }] }, previous);
  const toolOut = (id: string, output: string) => item(id, 'function_call_output', { call_id: `call_${id}`, output });
  const added = (id: string, text: string) =>
    wire({ type: 'conversation.item.added', event_id: `ev_a_${id}`, previous_item_id: null, item: { id, type: 'message', object: 'realtime.item', role: 'user', status: 'completed', content: [{ type: 'input_text', text }] } });
  const deleted = (id: string) => wire({ type: 'conversation.item.deleted', event_id: `ev_d_${id}`, item_id: id });
  const deletes = (s: LoggedSession) => s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id']);

  it('an item taken out again after its place is gone (deleted, then answered as refused) removes no other place: the last item still follows an inserted one', async () => {
    const { client, server } = await guardrailsWith(INJ);
    client(user('a', 'aaa'));
    server(deleted('a'));
    client(user('p', 'hello'));
    client(user('b', 'instructions'));
    // The echo of p: a (never echoed) was refused, taken out; its place is gone already.
    server(added('p', 'hello'));
    // b still follows p: "ignore previous" inserted after p meets it.
    expect(verdictCode(client(user('x', 'ignore previous', 'p')))).toBe('guardrail_blocked');
  });

  it('a deleted tool output: the tool output after it is judged again both as a tool output and as input (one entry per source)', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    expect(client(user('u', 'ignore previous')).kind).toBe('continue');
    expect(client(toolOut('t1', FILLER)).kind).toBe('continue');
    expect(client(toolOut('t2', 'instructions')).kind).toBe('continue');
    server(deleted('t1'));
    // Without t1: "ignore previous" · "instructions", read as input.
    expect(deletes(session)).toEqual(['t2']);
  });

  it('an item taken out (never echoed): the item after it, judged again and ending the session, is reported once (found 2026-12-06, twelfth session)', async () => {
    const { client, server, session } = await guardrailsWith('guardrails:\n  rules: [{ id: stop, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: end_session }]');
    client(user('p', 'ignore previous'));
    server(added('p', 'ignore previous'));
    client(user('a', FILLER));
    expect(client(user('c', 'instructions')).kind).toBe('continue');
    server(added('c', 'instructions'));
    expect(session.reports.filter((r) => r.kind === 'guardrail').map((r) => (r.kind === 'guardrail' ? r.ruleId : null))).toEqual(['stop']);
    expect(session.lines.filter((l) => l['msg'] === 'guardrail tripped').length).toBe(1);
    expect(session.closedWith?.code).toBe('policy_violation');
  });

  it('two items taken out at once, the later-sent one placed first: the item after both is judged again once (an end_session finding reported once)', async () => {
    const { client, server, session } = await guardrailsWith('guardrails:\n  rules: [{ id: stop, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: end_session }]');
    client(user('p', 'ignore previous'));
    server(added('p', 'ignore previous'));
    client(user('a', FILLER));
    // Inserted between p and a: placed p, b, a.
    client(user('b', `${FILLER} too`, 'p'));
    expect(client(user('c', 'instructions')).kind).toBe('continue');
    // c's echo: a and b (never echoed) were refused; c now follows p.
    server(added('c', 'instructions'));
    expect(session.reports.filter((r) => r.kind === 'guardrail').map((r) => (r.kind === 'guardrail' ? r.ruleId : null))).toEqual(['stop']);
    expect(session.closedWith?.code).toBe('policy_violation');
  });
});
