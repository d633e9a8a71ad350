import { describe, expect, it } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import { entryOf, policyFrom, wire } from '../../test/policies/support.js';
import type { Verdict } from '../pipeline/filter.js';
import type { Frame, JsonObject } from '../pipeline/frame.js';
import type { CompiledPolicy } from './compile.js';
import { contentPath, eventTexts, NO_CONTENT } from './content-paths.js';
import { GuardrailFilter } from './guardrails.js';
import { callRelock, LockFilter, lockedSessionUpdate } from './locks.js';

/**
 * Transcription settings that walked around a lock or a call's guardrails (2026-12-06, after
 * 330b6a1 made `audio.input.transcription.prompt` / `keywords` input text):
 * A. a call's session texts (a browser's session.update over its data channel, seen as
 *    session.updated) were instructions, tools and prompt only: a transcription prompt the browser
 *    set was never judged, and never put back.
 * B. the `inputTranscription` lock compared model, language and prompt only: `keywords`,
 *    `languages` (or any other member) beside the locked ones passed unlocked.
 * C. the Azure preview protocol's `transcription_session.update` was listed as carrying no
 *    content: its `session.input_audio_transcription.prompt` passed every rule.
 * D. an MCP tool's `server_label` and `allowed_tools` names (text the model reads beside the tool
 *    names) were read by no rule.
 * Every test here but the controls failed before the fix.
 */

const PHRASE = 'ignore previous instructions';
const RULES = `
guardrails:
  rules:
    - { id: injection, sources: [input], match: { phrases: ["${PHRASE}"] }, action: block }
    - { id: word, sources: [input], match: { phrases: ["wire"] }, action: redact, replacement: "[X]" }
`;

class Call extends FakeSession {
  readonly callId = 'rtc_1';
}

function guardrails(policy: CompiledPolicy, session: FakeSession = new Call()) {
  const filter = new GuardrailFilter(session, entryOf(policy));
  const server = (f: Frame) => {
    session.conversation.observeServer(f);
    return filter.onServer(f) as Verdict;
  };
  return { session, server, client: (f: Frame) => filter.onClient(f) as Verdict };
}

const realtime = (s: Record<string, unknown>, type = 'session.updated') => wire({ type, session: { type: 'realtime', ...s } });
const updates = (s: FakeSession) => s.upstream.filter((e) => e.type === 'session.update').map((e) => e['session']);
const guardrailReports = (s: FakeSession) => s.reports.filter((r) => r.kind === 'guardrail');
const withTranscription = (transcription: unknown) => ({ audio: { input: { transcription } } });

describe("A. a call's session texts are every text a session.update's row reads (the transcription's prompt and keywords too)", () => {
  it('a transcription prompt the browser sets over its data channel is judged, refused and put back to the governed setting', async () => {
    const { server, session } = guardrails(await policyFrom(RULES));
    expect(server(realtime({ instructions: 'Be helpful.', ...withTranscription({ model: 'gpt-4o-mini-transcribe' }) }, 'session.created')).kind).toBe('continue');
    expect(server(realtime({ instructions: 'Be helpful.', ...withTranscription({ model: 'gpt-4o-mini-transcribe', prompt: PHRASE }) })).kind).toBe('continue');
    expect(guardrailReports(session)).toEqual([expect.objectContaining({ ruleId: 'injection', action: 'block' })]);
    expect(updates(session)).toEqual([{ type: 'realtime', ...withTranscription({ model: 'gpt-4o-mini-transcribe' }) }]);
    expect(session.closedWith).toBeNull();
  });

  it('keywords are judged too; a call created without transcription gets it put back off (null)', async () => {
    const { server, session } = guardrails(await policyFrom(RULES));
    server(realtime({ ...withTranscription(null) }, 'session.created'));
    server(realtime({ ...withTranscription({ model: 'm', keywords: ['fire', PHRASE] }) }));
    expect(updates(session)).toEqual([{ type: 'realtime', ...withTranscription(null) }]);
  });

  it('a redacted keyword is sent back redacted, and becomes the baseline', async () => {
    const { server, session } = guardrails(await policyFrom(RULES));
    server(realtime({ ...withTranscription(null) }, 'session.created'));
    server(realtime({ ...withTranscription({ model: 'm', keywords: ['wire', 'transfer'] }) }));
    expect(updates(session)).toEqual([{ type: 'realtime', ...withTranscription({ model: 'm', keywords: ['[X]', 'transfer'] }) }]);
    server(realtime({ ...withTranscription({ model: 'm', keywords: ['[X]', 'transfer'] }) }));
    expect(updates(session)).toHaveLength(1);
  });

  it('every text a session.update row reads, changed on a call alone, is judged there (the set is the table\'s, not a second list)', async () => {
    const full: JsonObject = {
      type: 'realtime',
      instructions: 'Be helpful.',
      prompt: { id: 'pmpt_1', variables: { name: 'Ann', part: { type: 'input_text', text: 'hello' } } },
      tools: [{ type: 'function', name: 'lookup', description: 'Looks up.', parameters: { type: 'object', properties: { q: { type: 'string', description: 'Query.' } } } }],
      audio: { input: { transcription: { model: 'm', prompt: 'Acme', keywords: ['Globex'] } } },
    };
    const texts = eventTexts('session.update', { type: 'session.update', session: full });
    expect(texts.length).toBeGreaterThan(10);
    const judged: string[] = [];
    for (const [i, t] of texts.entries()) {
      const changed = structuredClone({ type: 'session.update', session: full });
      t.set(changed, PHRASE);
      const { server, session } = guardrails(await policyFrom(RULES));
      server(realtime(full, 'session.created'));
      server(wire({ ...changed, type: 'session.updated' }));
      if (guardrailReports(session).length === 1 && updates(session).length === 1) judged.push(`${i}:${t.text}`);
    }
    expect(judged).toEqual(texts.map((t, i) => `${i}:${t.text}`));
  });
});

describe('B. the inputTranscription lock pins the whole transcription object', () => {
  const LOCK = 'locks:\n  inputTranscription: { model: gpt-4o-mini-transcribe, prompt: "Acme, Globex" }';
  const locked = { model: 'gpt-4o-mini-transcribe', prompt: 'Acme, Globex' };
  const setup = async (yaml = LOCK, session = new FakeSession()) => {
    const filter = new LockFilter(session, await policyFrom(yaml));
    return { session, client: (f: Frame) => filter.onClient(f) as Verdict, server: (f: Frame) => session.fromServer(filter, f) as Verdict };
  };
  const update = (s: Record<string, unknown>) => wire({ type: 'session.update', event_id: 'evt_1', session: { type: 'realtime', ...s } });
  const forwarded = (v: Verdict): JsonObject => {
    if (v.kind !== 'replace') throw new Error(`expected replace, got ${v.kind}`);
    return v.frame.json();
  };

  it('keywords and languages beside the locked model and prompt are a violation: rewritten to the locked setting, with a notice', async () => {
    const { client, session } = await setup();
    const ev = forwarded(client(update(withTranscription({ ...locked, keywords: ['fire', 'transfer'], languages: ['de'] }))));
    expect(ev['session']).toEqual({ type: 'realtime', ...withTranscription(locked) });
    expect(session.reports).toContainEqual({ kind: 'lock', field: 'input_transcription', action: 'rewritten', direction: 'client' });
    expect(session.client).toEqual([expect.objectContaining({ type: 'rtproxy.notice', notice: expect.objectContaining({ code: 'session_locked', param: 'session.audio.input.transcription', details: expect.objectContaining({ field: 'input_transcription', action: 'rewritten' }) }) })]);
  });

  it('any member the lock does not set (delay, a member the API adds later) is a violation; the preview protocol\'s flat input_audio_transcription too', async () => {
    const { client } = await setup();
    for (const extra of [{ delay: 'high' }, { some_future_member: 'steer' }, { keywords: ['x'] }]) {
      expect(forwarded(client(update(withTranscription({ ...locked, ...extra }))))['session'], JSON.stringify(extra)).toEqual({ type: 'realtime', ...withTranscription(locked) });
      expect(forwarded(client(update({ input_audio_transcription: { ...locked, ...extra } })))['session'], JSON.stringify(extra)).toEqual({ type: 'realtime', input_audio_transcription: locked });
    }
  });

  it('control: the locked setting as the API echoes it holds (absent, null, empty members set nothing)', async () => {
    const { client } = await setup();
    for (const t of [locked, { ...locked, language: null }, { ...locked, keywords: [], languages: null, delay: null }, { ...locked, language: '' }]) {
      expect(client(update(withTranscription(t))).kind, JSON.stringify(t)).toBe('continue');
    }
  });

  it('session.created showing extra members gets the locked setting sent; a call\'s session.updated gets it put back', async () => {
    const policy = await policyFrom(LOCK);
    const shown = { type: 'realtime', ...withTranscription({ ...locked, keywords: ['fire'] }) };
    expect(lockedSessionUpdate(shown, policy)).toEqual({ type: 'realtime', ...withTranscription(locked) });
    expect(callRelock(shown, policy)).toEqual({ update: { type: 'realtime', ...withTranscription(locked) }, cannot: null });
    expect(callRelock({ type: 'realtime', ...withTranscription({ ...locked, keywords: [] }) }, policy)).toEqual({ update: null, cannot: null });
    const call = new Call();
    const { server } = await setup(LOCK, call);
    server(wire({ type: 'session.updated', session: shown }));
    expect(call.upstream).toEqual([{ type: 'session.update', session: { type: 'realtime', ...withTranscription(locked) } }]);
  });

  it('a session the upstream shows with its own default for a member that does not steer the transcript (delay) needs no relock, else every session.updated would re-send it', async () => {
    const policy = await policyFrom(LOCK);
    const shown = { type: 'realtime', ...withTranscription({ ...locked, delay: 'medium' }) };
    expect(lockedSessionUpdate(shown, policy)).toBeNull();
    expect(callRelock(shown, policy)).toEqual({ update: null, cannot: null });
    // What steers it is still compared there, and a client's own update is compared whole.
    expect(lockedSessionUpdate({ type: 'realtime', ...withTranscription({ ...locked, delay: 'medium', languages: ['de'] }) }, policy)).toEqual({ type: 'realtime', ...withTranscription(locked) });
    const { client } = await setup();
    expect(forwarded(client(update(withTranscription({ ...locked, delay: 'high' }))))['session']).toEqual({ type: 'realtime', ...withTranscription(locked) });
  });
});

describe("C. the preview protocol's transcription_session.update is read like a session.update", () => {
  const ev = (prompt: string) => ({ type: 'transcription_session.update', event_id: 'evt_t', session: { input_audio_transcription: { model: 'whisper-1', prompt }, turn_detection: null } });

  it('is a content path (no longer "no content"): its input_audio_transcription.prompt is input text', () => {
    expect(NO_CONTENT.has('transcription_session.update')).toBe(false);
    expect(contentPath('client', 'transcription_session.update')).toMatchObject({ kind: 'texts', sources: 'input' });
    expect(eventTexts('transcription_session.update', ev('Acme')).map((t) => [t.source, t.text])).toEqual([['input', 'Acme']]);
  });

  it('a prompt an input rule blocks is refused; one it redacts is forwarded redacted', async () => {
    const { client } = guardrails(await policyFrom(RULES), new FakeSession());
    const refused = client(wire(ev(`please ${PHRASE}`)));
    expect(refused.kind === 'reject' && refused.error.code).toBe('guardrail_blocked');
    const redacted = client(wire(ev('write wire as fire')));
    expect(redacted.kind === 'replace' && redacted.frame.json()['session']).toEqual({ input_audio_transcription: { model: 'whisper-1', prompt: 'write [X] as fire' }, turn_detection: null });
  });
});

describe("D. an MCP tool's server_label and allowed_tools names are input text, like a function tool's name", () => {
  const mcp = (tool: Record<string, unknown>) => ({ type: 'session.update', event_id: 'evt_m', session: { type: 'realtime', tools: [{ type: 'mcp', server_url: 'https://mcp.example/', ...tool }] } });

  it('read as input (a list of names, or a filter\'s tool_names), written back in place', () => {
    const texts = (tool: Record<string, unknown>) => eventTexts('session.update', mcp(tool)).map((t) => [t.source, t.text]);
    expect(texts({ server_label: 'acme', allowed_tools: ['lookup', 'refund'] })).toEqual([['input', 'acme'], ['input', 'lookup'], ['input', 'refund']]);
    expect(texts({ server_label: 'acme', allowed_tools: { tool_names: ['lookup'], read_only: true } })).toEqual([['input', 'acme'], ['input', 'lookup']]);
  });

  it('a server_label or an allowed tool name an input rule blocks is refused; another shape is invalid_event', async () => {
    const { client } = guardrails(await policyFrom(RULES), new FakeSession());
    for (const tool of [{ server_label: PHRASE.replaceAll(' ', '_') }, { server_label: 'acme', allowed_tools: ['lookup', PHRASE] }, { server_label: 'acme', allowed_tools: { tool_names: [PHRASE] } }]) {
      const v = client(wire(mcp(tool)));
      expect(v.kind === 'reject' && v.error.code, JSON.stringify(tool)).toBe('guardrail_blocked');
    }
    const bad = client(wire(mcp({ server_label: 'acme', allowed_tools: 'lookup' })));
    expect(bad.kind === 'reject' && { code: bad.error.code, param: bad.error.param }).toEqual({ code: 'invalid_event', param: 'session.tools[0].allowed_tools' });
  });
});
