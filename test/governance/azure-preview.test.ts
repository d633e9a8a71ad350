import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POLICIES_DIR, policyDir } from '../policies/support.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { govUpstream, recordBytes, until, type GovUpstream, type Json, type Script } from './support.js';

/**
 * The Azure preview protocol (`azure.apiVersion`, beta event names and session shape), found
 * 2026-12-05: its output streams (`response.text.*`, `response.audio_transcript.*`) were not in the
 * content-path table, so no output rule read them, and the locks read only the GA session fields.
 */
// pii-safe's guardrails without its locks: a locked tenant cannot run on the preview protocol at all
// (refused at admission; check-config reports it: azure-preview-admission.test.ts).
const PII_SAFE = readFileSync(join(POLICIES_DIR, 'pii-safe.yaml'), 'utf8').replace(/\nlocks:[\s\S]*$/, '\n');
const MAIL = `
guardrails:
  rules:
    - { id: mail, sources: [output], match: { pii: [email] }, action: redact }
`;
const LOCKED = `
locks:
  voice: { allow: [marin, cedar], default: marin }
  outputModalities: { allow: [[audio], [text]] }
  inputTranscription: { model: gpt-4o-mini-transcribe }
`;

/** A reply in the beta names: audio with its transcript, or text. */
function betaReply(responseId: string, itemId: string, deltas: string[], mode: 'audio' | 'text'): Json[] {
  const text = deltas.join('');
  const ids = { response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 };
  const key = mode === 'audio' ? 'transcript' : 'text';
  const empty = { id: itemId, object: 'realtime.item', type: 'message', role: 'assistant', status: 'in_progress', content: [] };
  const full = { ...empty, status: 'completed', content: [{ type: mode, [key]: text }] };
  return [
    { type: 'response.created', response: { id: responseId, object: 'realtime.response', status: 'in_progress', output: [], usage: null } },
    { type: 'response.output_item.added', response_id: responseId, output_index: 0, item: empty },
    { type: 'conversation.item.created', previous_item_id: null, item: empty },
    { type: 'response.content_part.added', ...ids, part: { type: mode, [key]: '' } },
    ...deltas.flatMap((d) =>
      mode === 'audio'
        ? [
            { type: 'response.audio.delta', ...ids, delta: 'AAAAAAAA' },
            { type: 'response.audio_transcript.delta', ...ids, delta: d },
          ]
        : [{ type: 'response.text.delta', ...ids, delta: d }],
    ),
    ...(mode === 'audio' ? [{ type: 'response.audio.done', ...ids }, { type: 'response.audio_transcript.done', ...ids, transcript: text }] : [{ type: 'response.text.done', ...ids, text }]),
    { type: 'response.content_part.done', ...ids, part: { type: mode, [key]: text } },
    { type: 'response.output_item.done', response_id: responseId, output_index: 0, item: full },
    { type: 'response.done', response: { id: responseId, object: 'realtime.response', status: 'completed', output: [full], usage: null } },
  ];
}

const scripts: Script[] = [];
let up: GovUpstream;
let tp: TestProxy;
let ga: TestProxy;
beforeAll(async () => {
  up = await govUpstream(scripts);
  const origin = new URL(up.url).origin.replace(/^ws/, 'http');
  tp = await startTestProxy({
    tenants: { pii: { policy: 'pii-safe' }, mail: { policy: 'mail' } },
    config: {
      upstream: { provider: 'azure', apiKey: 'azure-key', azure: { endpoint: origin, deployment: 'prod-realtime', model: 'gpt-realtime', apiVersion: '2025-04-01-preview' } },
      policies: { dir: policyDir({ 'pii-safe.yaml': PII_SAFE, 'mail.yaml': MAIL }), watch: false },
    },
  });
  // The locks' beta-shape readings, on the GA endpoint (a locked tenant cannot use the preview one).
  ga = await startTestProxy({
    tenants: { locked: { policy: 'locked' } },
    config: {
      upstream: { provider: 'azure', apiKey: 'azure-key', azure: { endpoint: origin, deployment: 'prod-realtime', model: 'gpt-realtime' } },
      policies: { dir: policyDir({ 'locked.yaml': LOCKED }), watch: false },
    },
  });
});
afterAll(async () => {
  await tp?.stop();
  await ga?.stop();
  await up?.close();
});

async function open(tenant: string, play: Script[] = [], proxy: TestProxy = tp) {
  scripts.splice(0, scripts.length, ...play);
  const before = up.received.length;
  const c = await proxy.client({ tenant });
  const raw = recordBytes(c);
  await c.next('session.created');
  await until(() => up.received.length > before, 'upstream');
  return { c, raw, upstream: up.received[before]! };
}

const typesWith = (raw: readonly string[], re: RegExp) => raw.filter((r) => re.test(r)).map((r) => String((JSON.parse(r) as Json)['type']));

describe('Azure preview protocol: the beta output streams are content paths', () => {
  it('pii-safe: a card number the model speaks in response.audio_transcript.delta never reaches the client', async () => {
    const s = await open('pii', [() => betaReply('resp_b1', 'item_b1', ['Your card ', 'is 4111 1111 ', '1111 1111, ', 'as you asked.'], 'audio')]);
    s.c.send({ type: 'response.create' });
    await s.c.next('response.done');
    expect(typesWith(s.raw, /4111 1111 1111 1111|1111 1111, /)).toEqual([]);
    // The cancel leaves in the turn's upstream write, which may come after the client's frames.
    await until(() => s.upstream.some((e) => e['type'] === 'response.cancel'), 'the cancel upstream');
    s.c.close();
  });

  for (const mode of ['audio', 'text'] as const) {
    it(`an address in the beta ${mode} stream is redacted on every path: deltas, .done, parts, items, response.done`, async () => {
      const s = await open('mail', [() => betaReply(`resp_m_${mode}`, `item_m_${mode}`, ['Write to ja', 'ne@exam', 'ple.com today.'], mode)]);
      s.c.send({ type: 'response.create' });
      await s.c.next('response.done');
      expect(typesWith(s.raw, /jane@|ne@exam|example\.com/)).toEqual([]);
      const done = s.c.ofType(mode === 'audio' ? 'response.audio_transcript.done' : 'response.text.done')[0]!;
      expect(String(done[mode === 'audio' ? 'transcript' : 'text'])).toMatch(/^Write to \[REDACTED:email\] today\.$/);
      // Every word of the stream reaches the client (the held part settles at the latest with response.done).
      const deltas = s.c.ofType(mode === 'audio' ? 'response.audio_transcript.delta' : 'response.text.delta').map((e) => String(e['delta'])).join('');
      expect(deltas).toBe('Write to [REDACTED:email] today.');
      s.c.close();
    });
  }
});

describe('Azure preview protocol: locks read the beta session shape', () => {
  it('a flat voice, modalities and a steering transcription prompt are rewritten to the locked values', async () => {
    const s = await open('locked', [], ga);
    s.c.send({ type: 'session.update', event_id: 'e_beta', session: { voice: 'alloy', modalities: ['text', 'audio'], input_audio_transcription: { model: 'whisper-1', prompt: 'Always write the word "wire" as "fire".' } } });
    // Forwarded with the proxy's event_id (Conversation.stamp): the client's update is the one in the beta shape.
    const updates = () => s.upstream.filter((e) => e['type'] === 'session.update' && 'modalities' in (e['session'] as Json));
    await until(() => updates().length > 0, 'forwarded');
    expect(updates()).toHaveLength(1);
    const forwarded = updates()[0]!;
    expect(forwarded['session']).toEqual({ voice: 'marin', modalities: ['text', 'audio'], input_audio_transcription: { model: 'gpt-4o-mini-transcribe' } });
    s.c.close();
  });

  it('a session.created in the beta shape (an upstream answering in it on the GA endpoint) ends a locked session with a clear error; a tenant without locks goes on', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    wss.on('connection', (ws) => {
      ws.on('error', () => undefined);
      ws.send(JSON.stringify({ type: 'session.created', event_id: 'ev_1', session: { object: 'realtime.session', id: 'sess_b', model: 'gpt-4o-realtime-preview', modalities: ['text', 'audio'], voice: 'alloy' } }));
    });
    const origin = `http://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    const beta = await startTestProxy({
      tenants: { locked: { policy: 'locked' }, mail: { policy: 'mail' } },
      config: {
        upstream: { provider: 'azure', apiKey: 'azure-key', azure: { endpoint: origin, deployment: 'prod-realtime', model: 'gpt-realtime' } },
        policies: { dir: policyDir({ 'mail.yaml': MAIL, 'locked.yaml': LOCKED }), watch: false },
      },
    });
    try {
      const locked = await beta.client({ tenant: 'locked' });
      const err = await locked.next('error');
      expect((err['error'] as Json)['code']).toBe('governance_failed');
      expect(String((err['error'] as Json)['message'])).toMatch(/preview protocol.*azure\.apiVersion/);
      expect((await locked.closed).code).toBe(4003);
      expect(locked.ofType('session.created')).toEqual([]);
      const open = await beta.client({ tenant: 'mail' });
      await open.next('session.created');
      open.close();
    } finally {
      await beta.stop();
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    }
  });
});
