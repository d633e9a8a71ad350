import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimCall } from '../../src/simulator/index.js';
import { callsProxy, placeCall, until } from '../calls/support.js';
import type { TestClient, TestProxy } from '../support/harness.js';
import { policyDir } from './support.js';

/**
 * Transcription settings that walked around a lock or a call's guardrails (2026-12-06), through the
 * running proxy and the simulator (a WebSocket session, and a WebRTC call whose browser talks to the
 * upstream over its data channel while the proxy holds the sideband):
 * A. on a call, a transcription prompt the browser set over its data channel was never judged (a
 *    call's session texts were instructions, tools and prompt only);
 * B. the `inputTranscription` lock compared model, language and prompt only: `keywords` and
 *    `languages` beside them were forwarded (and stayed on a call);
 * C. the preview protocol's `transcription_session.update` was "no content": its prompt was read by no rule;
 * D. an MCP tool's `server_label` and `allowed_tools` names were read by no rule.
 * Every test here failed before the fix.
 */

const PHRASE = 'ignore previous instructions';
const GUARDED = `
guardrails:
  rules:
    - { id: injection, sources: [input], match: { phrases: ["${PHRASE}"] }, action: block }
`;
const TLOCK = `
locks:
  inputTranscription: { model: gpt-4o-mini-transcribe, prompt: "Acme, Globex" }
`;
const LOCKED = { model: 'gpt-4o-mini-transcribe', prompt: 'Acme, Globex' };

let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({
    tenants: { guarded: { policy: 'guarded' }, tlock: { policy: 'tlock' } },
    extra: { config: { policies: { dir: policyDir({ 'guarded.yaml': GUARDED, 'tlock.yaml': TLOCK }), watch: false } } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

type Json = Record<string, unknown>;
const errorOf = (e: Json) => e['error'] as { code: string; param: string | null; details?: Json };
const noticeOf = (e: Json) => e['notice'] as { code: string; param: string | null; details?: Json };
const transcriptionOf = (session: unknown) => ((session as { audio?: { input?: { transcription?: unknown } } } | undefined)?.audio?.input?.transcription);
const lastSession = (call: SimCall) => call.dataChannel.filter((e) => e['type'] === 'session.updated').at(-1)?.['session'];
const fromSideband = (call: SimCall, type: string) => call.received.filter((r) => r.from === 'sideband' && r.type === type).map((r) => r.event as Json);

/** A WebSocket session of `tenant`, with its simulator connection, after session.created. */
async function open(tenant: string): Promise<{ c: TestClient; received: () => readonly { type: string; event: unknown }[] }> {
  const c = await tp.client({ tenant });
  await c.next('session.created');
  const conn = tp.sim.connections.at(-1)!;
  return { c, received: () => conn.received };
}

/** Waits until the upstream received a marker sent after the events under test (it handles them in order). */
async function marker(c: TestClient, received: () => readonly { type: string; event: unknown }[]): Promise<void> {
  c.send({ type: 'conversation.item.retrieve', event_id: 'marker', item_id: 'item_none' });
  await until(() => received().some((r) => r.type === 'conversation.item.retrieve'), 'the marker upstream');
}

describe('B. the inputTranscription lock pins the whole transcription object', () => {
  it('WebSocket: keywords and languages beside the locked model and prompt are rewritten away, with a session_locked notice', async () => {
    const { c, received } = await open('tlock');
    c.send({ type: 'session.update', event_id: 'evt_k', session: { type: 'realtime', audio: { input: { transcription: { ...LOCKED, keywords: ['fire', 'transfer'], languages: ['de'] } } } } });
    const notice = await c.waitFor((e) => e.type === 'rtproxy.notice' && noticeOf(e).code === 'session_locked', 5000, 'session_locked');
    expect(noticeOf(notice)).toMatchObject({ param: 'session.audio.input.transcription', details: { field: 'input_transcription', action: 'rewritten' } });
    // Upstream: the locked state at session start, then the client's update, rewritten (event ids are the proxy's).
    const sent = () => received().filter((r) => r.type === 'session.update').map((r) => transcriptionOf((r.event as Json)['session']));
    await until(() => sent().length >= 2, "the client's update upstream");
    expect(sent()).toEqual([LOCKED, LOCKED]);
    // The session as the upstream then shows it (the second session.updated answers the client's update).
    expect(transcriptionOf((await c.nth('session.updated', 2))['session'])).toEqual(LOCKED);
    c.close();
  });

  it('on a call: keywords the browser sets over its data channel are put back to the locked setting by the sideband', async () => {
    const { call } = await placeCall(tp, 'tlock');
    call.sendFromBrowser({ type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { ...LOCKED, keywords: ['fire', 'transfer'] } } } } });
    await until(() => fromSideband(call, 'session.update').some((e) => JSON.stringify(transcriptionOf(e['session'])) === JSON.stringify(LOCKED)), 'the locked transcription from the sideband');
    await until(() => call.state === 'ended' || JSON.stringify(transcriptionOf(lastSession(call))) === JSON.stringify(LOCKED), 'the keywords removed');
    expect(call.state).toBe('active');
    expect(transcriptionOf(lastSession(call))).toEqual(LOCKED);
  });
});

describe("A. on a call, a transcription prompt the browser sets is judged like the instructions", () => {
  it('refused by an input rule: the sideband puts the governed setting back (transcription off), the call goes on', async () => {
    const { call } = await placeCall(tp, 'guarded');
    call.sendFromBrowser({ type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { model: 'gpt-4o-mini-transcribe', prompt: `Please ${PHRASE}.` } } } } });
    await until(() => fromSideband(call, 'session.update').some((e) => transcriptionOf(e['session']) === null), 'transcription: null from the sideband');
    await until(() => call.state === 'ended' || transcriptionOf(lastSession(call)) === null, 'the prompt removed');
    expect(call.state).toBe('active');
    expect(transcriptionOf(lastSession(call))).toBeNull();
  });
});

describe("C. the preview protocol's transcription_session.update is read like a session.update", () => {
  it('a prompt an input rule blocks is refused by the proxy (guardrail_blocked) and never reaches the upstream', async () => {
    const { c, received } = await open('guarded');
    c.send({ type: 'transcription_session.update', event_id: 'evt_t', session: { input_audio_transcription: { model: 'whisper-1', prompt: `Please ${PHRASE}.` } } });
    const refused = await c.waitFor((e) => e.type === 'error' && errorOf(e).code === 'guardrail_blocked', 5000, 'guardrail_blocked');
    expect(errorOf(refused)).toMatchObject({ code: 'guardrail_blocked', details: expect.objectContaining({ rule: 'injection' }) });
    await marker(c, received);
    expect(received().map((r) => r.type)).not.toContain('transcription_session.update');
    c.close();
  });
});

describe("D. an MCP tool's server_label and allowed_tools names are read as input", () => {
  it('a server_label or an allowed tool name an input rule blocks is refused and never reaches the upstream', async () => {
    const { c, received } = await open('guarded');
    const mcp = (tool: Json) => ({ type: 'session.update', session: { type: 'realtime', tools: [{ type: 'mcp', server_url: 'https://mcp.example/', require_approval: 'always', ...tool }] } });
    c.send({ ...mcp({ server_label: PHRASE.replaceAll(' ', '_') }), event_id: 'evt_l' });
    c.send({ ...mcp({ server_label: 'acme', allowed_tools: ['lookup', PHRASE] }), event_id: 'evt_a' });
    await c.nth('error', 2);
    expect(c.ofType('error').map((e) => [errorOf(e).code, (e['error'] as Json)['event_id']])).toEqual([
      ['guardrail_blocked', 'evt_l'],
      ['guardrail_blocked', 'evt_a'],
    ]);
    await marker(c, received);
    expect(received().filter((r) => r.type === 'session.update' && JSON.stringify(r.event).includes('mcp'))).toEqual([]);
    c.close();
  });
});
