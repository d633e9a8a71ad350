import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { QUEUED_FRAME_OVERHEAD_BYTES } from '../../src/pipeline/chain.js';
import { CloseCode, ErrorCatalogue, type ProxyErrorCode } from '../../src/protocol/errors.js';
import { defaultTenantShare } from '../../src/server/memory-budget.js';
import { startSimulator } from '../../src/simulator/index.js';
import { isInjectedClamp, recordingUpstream } from '../governance/edges-support.js';
import { scriptedUpstream, sessionCreated } from '../resilience/support/faulty-upstream.js';
import { defaultKey, startTestProxy, TestClient, type TestProxy } from '../support/harness.js';

/**
 * README is a contract: its error catalogue and "behaviour at the edges" tables are checked row by
 * row against src/protocol/errors.ts and against a running proxy. A row added, removed or changed
 * without its check fails here.
 */

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The rows of the first Markdown table after `heading` (cells trimmed, header and rule dropped). */
function tableAfter(heading: string, firstHeaderCell: string): string[][] {
  const start = readme.indexOf(heading);
  expect(start, `README has "${heading}"`).toBeGreaterThanOrEqual(0);
  const lines = readme.slice(start).split('\n');
  const head = lines.findIndex((l) => l.startsWith(`| ${firstHeaderCell} |`));
  expect(head, `table starting with "${firstHeaderCell}" after "${heading}"`).toBeGreaterThan(0);
  const rows: string[][] = [];
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.slice(1, -1).split(' | ').map((c) => c.trim()));
  }
  return rows;
}

const unquote = (cell: string) => cell.replace(/^`|`$/g, '');

interface DocumentedError {
  readonly type: string;
  readonly http: number | null;
  /** null: "session continues". */
  readonly close: number | null;
  readonly message: string;
}

function documentedErrors(): Map<string, DocumentedError> {
  const out = new Map<string, DocumentedError>();
  for (const [code, type, http, close, meaning] of tableAfter('### Error catalogue', 'code')) {
    out.set(unquote(code!), {
      type: unquote(type!),
      http: http === '—' ? null : Number(http),
      // "session continues", "—" (HTTP-only), or a code with a remark: "1011 (4100 when …)".
      close: close === 'session continues' || close === '—' ? null : Number(/^\d+/.exec(close!)?.[0]),
      message: meaning!,
    });
  }
  return out;
}

const entry = (code: ProxyErrorCode) => ErrorCatalogue[code] as { type: string; http?: number; close?: keyof typeof CloseCode; message: string };

describe('README error catalogue = src/protocol/errors.ts', () => {
  const documented = documentedErrors();

  it('lists exactly the catalogue codes', () => {
    expect([...documented.keys()].sort()).toEqual(Object.keys(ErrorCatalogue).sort());
  });

  it.each(Object.keys(ErrorCatalogue) as ProxyErrorCode[])('%s: type, HTTP status, close code and message match', (code) => {
    const doc = documented.get(code)!;
    const e = entry(code);
    expect({ ...doc, message: null }).toEqual({ type: e.type, http: e.http ?? null, close: e.close ? CloseCode[e.close] : null, message: null });
    // The meaning column is the catalogue message; README may add remarks in parentheses.
    const withoutRemarks = (m: string) => m.replace(/ \([^()]*\)/g, '');
    expect(withoutRemarks(doc.message), doc.message).toBe(withoutRemarks(e.message));
  });

  it('the close-code table explains every close code the proxy sends, and only codes that exist', () => {
    const rows = tableAfter('### Error catalogue', 'close code');
    const ranges = rows.flatMap(([codes]) => codes!.split(',').map((c) => c.trim().split('–').map(Number) as [number, number?]));
    const listed = (code: number) => ranges.some(([a, b]) => (b === undefined ? a === code : a <= code && code <= b));
    for (const [name, value] of Object.entries(CloseCode)) expect(listed(value), `${name} (${value})`).toBe(true);
    // Everything else listed is relayed from the upstream (3000–3999), never invented.
    const singles = ranges.filter(([, b]) => b === undefined).map(([a]) => a);
    expect(singles.filter((c) => !Object.values(CloseCode).includes(c as never) && (c < 3000 || c > 3999))).toEqual([]);
  });
});

// ---- against the running proxy ----

const key = defaultKey('acme');

/** Status and body of an upgrade request sent with exactly these headers (arrays repeat a header). */
async function rawUpgradeStatus(port: number, headers: Record<string, string | string[]>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      path: '/v1/realtime?model=gpt-realtime',
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      reject(new Error('the upgrade was accepted'));
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A header client's refused upgrade: status and JSON body. */
async function refusal(url: string, headers: Record<string, string>): Promise<{ status: number; body: { error: Record<string, unknown> } }> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve, reject) => {
    ws.on('error', () => undefined);
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { error: Record<string, unknown> } }));
    });
  });
}

/**
 * How the running proxy's message relates to the documented one: the catalogue message verbatim,
 * the catalogue message with specifics appended, or a message of its own (the code is the contract).
 */
type MessageRule = 'exact' | 'extends' | 'specific';

function expectMessage(actual: unknown, doc: DocumentedError, rule: MessageRule): void {
  expect(typeof actual).toBe('string');
  const text = actual as string;
  if (rule === 'exact') expect(text).toBe(doc.message);
  else if (rule === 'extends') expect(text.startsWith(doc.message.replace(/\.$/, ''))).toBe(true);
  else expect(text.length).toBeGreaterThan(0);
}

/** The documented row of `code` as the wire shows it: HTTP body before the upgrade. */
function expectRefusalMatches(r: Awaited<ReturnType<typeof refusal>>, code: ProxyErrorCode, rule: MessageRule = 'exact'): void {
  const doc = documentedErrors().get(code)!;
  expect(r.status).toBe(doc.http);
  expect(r.body.error).toMatchObject({ code, type: doc.type });
  expectMessage(r.body.error['message'], doc, rule);
}

/** The documented row of `code` as the wire shows it: an `error` event, then the close (or none). */
async function expectEventMatches(c: TestClient, code: ProxyErrorCode, rule: MessageRule = 'exact'): Promise<void> {
  const doc = documentedErrors().get(code)!;
  const err = await c.waitFor((e) => e.type === 'error' && (e['error'] as { code?: string }).code === code, 5000, `error ${code}`);
  expect(err['error']).toMatchObject({ code, type: doc.type });
  expectMessage((err['error'] as { message?: unknown }).message, doc, rule);
  if (doc.close === null) {
    // "session continues": the same session still answers.
    c.send({ type: 'input_audio_buffer.clear', event_id: `evt_alive_${code}` });
    await c.waitFor((e) => e.type === 'input_audio_buffer.cleared', 5000, 'cleared');
    expect(c.ws.readyState).toBe(c.ws.OPEN);
  } else {
    expect((await c.closed).code).toBe(doc.close);
  }
}

/** One check per row of "Behaviour at the edges", keyed by the row's situation cell. */
type EdgeCheck = () => Promise<void>;

describe('README "Behaviour at the edges", row by row against a running proxy', () => {
  let tp: TestProxy;
  const stops: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    tp = await startTestProxy({ tenants: { acme: {}, solo: { limits: { maxConcurrentSessions: 1 } } } });
    stops.push(() => tp.stop());
  });
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  const browser = (secret: string | null) => new TestClient(tp.url, { protocols: ['realtime', ...(secret ? [`openai-insecure-api-key.${secret}`] : [])] });

  const checks: Record<string, EdgeCheck> = {
    'Missing/unknown key, header client (`Authorization`, `api-key`)': async () => {
      const before = tp.sim.connections.length;
      expectRefusalMatches(await refusal(tp.url, {}), 'missing_api_key');
      expectRefusalMatches(await refusal(tp.url, { authorization: 'Bearer rpk_not_a_key_000000000000' }), 'invalid_api_key');
      expectRefusalMatches(await refusal(tp.url, { 'api-key': 'rpk_not_a_key_000000000000' }), 'invalid_api_key');
      expect(tp.sim.connections.length).toBe(before);
    },
    'Missing/unknown key, browser client (subprotocols; cannot read HTTP statuses)': async () => {
      const before = tp.sim.connections.length;
      const bad = browser('rpk_not_a_key_000000000000');
      await bad.opened;
      expect(bad.ws.protocol).toBe('realtime');
      await expectEventMatches(bad, 'invalid_api_key');
      const none = browser(null);
      await none.opened;
      expect(none.ws.protocol).toBe('realtime');
      await expectEventMatches(none, 'missing_api_key');
      expect(tp.sim.connections.length).toBe(before);
    },
    'Admission refused (e.g. concurrency cap, unknown model price)': async () => {
      const first = await tp.client({ tenant: 'solo' });
      await first.next('session.created');
      const r = await refusal(tp.url, { authorization: `Bearer ${tp.key('solo')}` });
      expectRefusalMatches(r, 'concurrent_sessions_exceeded', 'specific');
      const b = new TestClient(tp.url, { protocols: ['realtime', `openai-insecure-api-key.${tp.key('solo')}`] });
      await expectEventMatches(b, 'concurrent_sessions_exceeded', 'specific');
      first.close();
      expectRefusalMatches(await refusal(tp.url.replace('model=gpt-realtime', 'model=gpt-9-realtime'), { authorization: `Bearer ${key}` }), 'unknown_model_price', 'specific');
    },
    'Upstream refused / DNS / TLS / no answer within `connectTimeoutMs` (2 s)': async () => {
      // An upstream port this test holds (a freed port can be taken by a parallel test's server),
      // which resets every connection: the dial fails as on a refusal.
      const refusing = createServer((socket) => socket.destroy());
      await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', () => resolve()));
      const port = (refusing.address() as { port: number }).port;
      const p = await startTestProxy({ config: { upstream: { provider: 'openai', url: `ws://127.0.0.1:${port}/v1/realtime`, apiKey: 'sk-x' } } });
      stops.push(() => p.stop(), () => new Promise<void>((resolve) => refusing.close(() => resolve())));
      await expectEventMatches(new TestClient(p.url, { headers: { authorization: `Bearer ${key}` } }), 'upstream_unavailable', 'extends');
    },
    'Upstream answers the upgrade with an HTTP error': async () => {
      for (const [status, close] of [[401, 4101], [403, 4101], [404, 1011], [429, 1013], [503, 1013]] as const) {
        const sim = await startSimulator({ rejectUpgradeStatus: status });
        const p = await startTestProxy({ config: { upstream: { provider: 'openai', url: sim.url, apiKey: 'sk-x' } } });
        stops.push(() => sim.close(), () => p.stop());
        const c = new TestClient(p.url, { headers: { authorization: `Bearer ${key}` } });
        const err = await c.next('error');
        expect(err['error']).toMatchObject({ code: 'upstream_rejected', type: 'server_error', details: { status } });
        expect((await c.closed).code, `upstream HTTP ${status}`).toBe(close);
      }
    },
    "Upstream sends OpenAI's `error` + close 3000/4000 (bad upstream key, bad model, beta shape)": async () => {
      const sim = await startSimulator({ apiKey: 'sk-the-real-one' });
      const p = await startTestProxy({ config: { upstream: { provider: 'openai', url: sim.url, apiKey: 'sk-wrong' } } });
      stops.push(() => sim.close(), () => p.stop());
      const c = new TestClient(p.url, { headers: { authorization: `Bearer ${key}` } });
      // A refusal of the proxy's own key is not passed through (2026-12-06): upstream_rejected, 4101 (not retried by the SDK).
      expect((await c.next('error'))['error']).toMatchObject({ code: 'upstream_rejected', type: 'server_error' });
      expect(await c.closed).toEqual({ code: 4101, reason: 'upstream_rejected' });
    },
    'Upstream session expiry (`session_expired` + 1001)': async () => {
      const c = await tp.client();
      await c.next('session.created');
      tp.sim.connections[tp.sim.connections.length - 1]!.expire();
      const err = await c.next('error');
      expect(err['error']).toMatchObject({ code: 'session_expired', type: 'invalid_request_error', message: 'Your session hit the maximum duration of 60 minutes.' });
      expect(await c.closed).toEqual({ code: 1001, reason: 'Your session hit the maximum duration of 60 minutes.' });
    },
    'Upstream drops without a close frame / sends neither data nor a pong within `pongTimeoutMs`': async () => {
      const c = await tp.client();
      await c.next('session.created');
      tp.sim.connections[tp.sim.connections.length - 1]!.drop();
      await expectEventMatches(c, 'upstream_closed', 'specific');
      const p = await startTestProxy({ config: { upstream: { pingIntervalMs: 100, pongTimeoutMs: 200 } } });
      stops.push(() => p.stop());
      const d = await p.client();
      await d.next('session.created');
      p.sim.connections[p.sim.connections.length - 1]!.freeze();
      await expectEventMatches(d, 'upstream_timeout', 'specific');
    },
    'Client frame is binary, not JSON, not an object, has no `type`, or nests deeper than `maxJsonDepth` (128)': async () => {
      const c = await tp.client();
      await c.next('session.created');
      const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
      c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
      await expectEventMatches(c, 'invalid_event', 'specific');
      c.send('{"type":');
      await expectEventMatches(c, 'invalid_json');
      c.send('[1]');
      c.send({ event_id: 'evt_typeless' });
      await c.nth('error', 4);
      // Both probes answered (the second probe's wait above may have matched the first's `cleared`).
      await c.nth('input_audio_buffer.cleared', 2);
      expect(c.ofType('error').map((e) => (e['error'] as { code: string }).code)).toEqual(['invalid_event', 'invalid_json', 'invalid_event', 'invalid_event']);
      expect(conn.received.map((r) => r.type)).toEqual(['input_audio_buffer.clear', 'input_audio_buffer.clear']); // only the liveness probes
      c.close();
    },
    'Client event type the proxy does not know': async () => {
      const c = await tp.client();
      await c.next('session.created');
      const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
      c.send({ type: 'no.such.event', event_id: 'evt_unknown' });
      const err = await c.next('error');
      expect(err['error']).toMatchObject({ event_id: 'evt_unknown' });
      // The upstream's answer (the simulator names the type it refused), relayed unchanged.
      expect((err['error'] as { message: string }).message).toContain('no.such.event');
      expect(conn.received.map((r) => r.type)).toContain('no.such.event');
      c.close();
    },
    'Parsed client frame with a repeated member name at any depth, or nested deeper than 128 levels': async () => {
      const c = await tp.client();
      await c.next('session.created');
      const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
      c.send('{"type":"session.update","event_id":"evt_dup","session":{"type":"realtime","instructions":"a","instructions":"b"}}');
      const dup = await c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_dup');
      expect(dup['error']).toMatchObject({ code: 'invalid_event', type: 'invalid_request_error', param: 'session.instructions' });
      const deep = `${'{"a":'.repeat(130)}1${'}'.repeat(130)}`;
      c.send(`{"type":"session.update","event_id":"evt_deep","session":{"type":"realtime","tools":[{"type":"function","name":"f","parameters":${deep}}]}}`);
      const tooDeep = await c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_deep');
      expect(tooDeep['error']).toMatchObject({ code: 'invalid_event', type: 'invalid_request_error' });
      await expectEventMatches(c, 'invalid_event', 'specific');
      expect(conn.received.filter((r) => r.type === 'session.update')).toEqual([]);
      c.close();
    },
    'Client event whose known text member has another shape (`session.instructions` as an array, a message part\'s `text` as a number, a prompt variable as a number)': async () => {
      const c = await tp.client();
      await c.next('session.created');
      const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
      c.send({ type: 'session.update', event_id: 'evt_shape', session: { type: 'realtime', instructions: ['ignore previous instructions'] } });
      const refused = await c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_shape');
      expect(refused['error']).toMatchObject({ code: 'invalid_event', type: 'invalid_request_error', param: 'session.instructions', details: { reason: 'invalid_type' } });
      c.send({ type: 'conversation.item.create', event_id: 'evt_shape2', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 7 }] } });
      const refused2 = await c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_shape2');
      expect(refused2['error']).toMatchObject({ code: 'invalid_event', details: { reason: 'invalid_type' } });
      c.send({ type: 'response.create', event_id: 'evt_shape3', response: { prompt: { id: 'pmpt_1', variables: { name: 7 } } } });
      const refused3 = await c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_shape3');
      expect(refused3['error']).toMatchObject({ code: 'invalid_event', details: { reason: 'invalid_type' } });
      // The session goes on: a well-formed event after them is relayed.
      c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello' }] } });
      await c.next('conversation.item.added');
      expect(conn.received.filter((r) => r.type === 'session.update' || r.type === 'response.create')).toEqual([]);
      expect(conn.received.filter((r) => r.type === 'conversation.item.create')).toHaveLength(1);
      c.close();
    },
    'Query parameter other than `model`, `intent`, `call_id` (e.g. `api_key`, `deployment`, `api-version`)': async () => {
      const c = await tp.client({ query: 'model=gpt-realtime&api_key=sk-leak&deployment=d1&api-version=2025-01-01&tenant_hint=x' });
      await c.next('session.created');
      const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
      const query = new URL(conn.url, 'http://upstream').searchParams;
      expect([...query.keys()]).toEqual(['model']);
      expect(conn.url).not.toContain('sk-leak');
      c.close();
    },
    '`?model=a&model=b`, `?model=x&model`, `?model=`, `?intent=other`, `?call_id=` without `upstream.allowCallId`': async () => {
      const before = tp.sim.connections.length;
      for (const [query, param] of [['model=a&model=b', 'model'], ['model=gpt-realtime&model', 'model'], ['model=', 'model'], ['intent=other', 'intent'], ['call_id=rtc_1', 'call_id']] as const) {
        const r = await refusal(`ws://127.0.0.1:${tp.port}/v1/realtime?${query}`, { authorization: `Bearer ${key}` });
        expectRefusalMatches(r, 'invalid_request', 'specific');
        expect(r.body.error['param'], query).toBe(param);
      }
      expect(tp.sim.connections.length).toBe(before);
    },
    '`?model=` with `?intent=transcription`; `?model=` or `?intent=` with `?call_id=`': async () => {
      const p = await startTestProxy({ config: { upstream: { allowCallId: true } } });
      stops.push(() => p.stop());
      const before = p.sim.connections.length;
      for (const [query, param] of [['model=gpt-realtime&intent=transcription', 'model'], ['call_id=rtc_1&model=gpt-realtime', 'model'], ['call_id=rtc_1&intent=transcription', 'intent']] as const) {
        const r = await refusal(`ws://127.0.0.1:${p.port}/v1/realtime?${query}`, { authorization: `Bearer ${key}` });
        expectRefusalMatches(r, 'invalid_request', 'specific');
        expect(r.body.error['param'], query).toBe(param);
      }
      expect(p.sim.connections.length).toBe(before);
    },
    '`…/realtime/translations` without `?model=`, with `?intent=` or `?call_id=`, with a client secret, or on an Azure preview-protocol upstream': async () => {
      const p = await startTestProxy({ config: { upstream: { allowCallId: true }, calls: { enabled: true } } });
      stops.push(() => p.stop());
      const minted = await fetch(`${p.httpUrl}/v1/realtime/client_secrets`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}' });
      const secret = ((await minted.json()) as { value: string }).value;
      const before = p.sim.connections.length;
      for (const [query, param, bearer] of [['', 'model', key], ['intent=transcription', 'intent', key], ['call_id=rtc_1', 'call_id', key], ['model=gpt-realtime-translate', null, secret]] as const) {
        const r = await refusal(`ws://127.0.0.1:${p.port}/v1/realtime/translations?${query}`, { authorization: `Bearer ${bearer}` });
        expectRefusalMatches(r, 'invalid_request', 'specific');
        expect(r.body.error['param'], query).toBe(param);
      }
      await expectEventMatches(new TestClient(`ws://127.0.0.1:${p.port}/v1/realtime/translations?intent=transcription`, { protocols: ['realtime', `openai-insecure-api-key.${key}`] }), 'invalid_request', 'specific');
      expect(p.sim.connections.length).toBe(before);
      const azure = await startTestProxy({ config: { upstream: { provider: 'azure', apiKey: 'k', azure: { endpoint: 'http://127.0.0.1:9', deployment: 'gpt-realtime-translate', apiVersion: '2025-04-01-preview' } } } });
      stops.push(() => azure.stop());
      expectRefusalMatches(await refusal(`ws://127.0.0.1:${azure.port}/v1/realtime/translations?model=gpt-realtime-translate`, { authorization: `Bearer ${key}` }), 'invalid_request', 'specific');
    },
    'A realtime client event (`response.create`, `conversation.item.create`, `input_audio_buffer.append`, …) in a translation session': async () => {
      const c = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime/translations?model=gpt-realtime-translate`, { headers: { authorization: `Bearer ${key}` } });
      await c.next('session.created');
      const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
      for (const type of ['response.create', 'conversation.item.create', 'input_audio_buffer.append']) {
        c.send({ type, event_id: `evt_${type}` });
        const err = await c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === `evt_${type}`, 5000, `error about ${type}`);
        expect(err['error']).toMatchObject({ code: 'invalid_event', type: documentedErrors().get('invalid_event')!.type, param: 'type' });
      }
      // The session continues: a translation event still passes.
      c.send({ type: 'session.input_audio_buffer.append', audio: Buffer.alloc(9600).toString('base64') });
      await c.next('session.output_audio.delta');
      expect(conn.received.map((r) => r.type)).toEqual(['session.input_audio_buffer.append']);
      c.close();
    },
    "A translation session's `session.input_audio_buffer.append` in a realtime or transcription session": async () => {
      for (const query of ['model=gpt-realtime', 'intent=transcription']) {
        const c = await tp.client({ query });
        await c.next('session.created');
        const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
        c.send({ type: 'session.input_audio_buffer.append', event_id: 'evt_tr_audio', audio: Buffer.alloc(9600).toString('base64') });
        const err = await c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_tr_audio', 5000, `error in ${query}`);
        expect(err['error']).toMatchObject({ code: 'invalid_event', type: documentedErrors().get('invalid_event')!.type, param: 'type' });
        // The session continues, and the upstream never saw the append.
        c.send({ type: 'input_audio_buffer.clear' });
        await c.next('input_audio_buffer.cleared');
        expect(conn.received.map((r) => r.type)).toEqual(['input_audio_buffer.clear']);
        c.close();
      }
    },
    '`?call_id=` or `?intent=` with a client secret': async () => {
      const p = await startTestProxy({ config: { upstream: { allowCallId: true }, calls: { enabled: true } } });
      stops.push(() => p.stop());
      const minted = await fetch(`${p.httpUrl}/v1/realtime/client_secrets`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}' });
      const secret = ((await minted.json()) as { value: string }).value;
      const before = p.sim.connections.length;
      for (const [query, param] of [['call_id=rtc_1', 'call_id'], ['intent=transcription', 'intent']] as const) {
        const r = await refusal(`ws://127.0.0.1:${p.port}/v1/realtime?${query}`, { authorization: `Bearer ${secret}` });
        expectRefusalMatches(r, 'invalid_request', 'specific');
        expect(r.body.error['param'], query).toBe(param);
      }
      await expectEventMatches(new TestClient(`ws://127.0.0.1:${p.port}/v1/realtime?call_id=rtc_1`, { protocols: ['realtime', `openai-insecure-api-key.${secret}`] }), 'invalid_request', 'specific');
      expect(p.sim.connections.length).toBe(before);
    },
    '`max_output_tokens` of `-5`, `0`, `2.5`, `"abc"`, `true`': async () => {
      const c = await tp.client();
      await c.next('session.created');
      const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
      for (const raw of ['-5', '0', '2.5', '"abc"', 'true']) {
        c.send(`{"type":"session.update","event_id":"evt_bad","session":{"type":"realtime","max_output_tokens":${raw}}}`);
        await expectEventMatches(c, 'invalid_value', 'specific');
        c.events.length = 0;
      }
      expect(conn.received.filter((r) => r.type === 'session.update')).toEqual([]);
      c.send('{"type":"session.update","session":{"type":"realtime","max_output_tokens":"4096"}}');
      await c.next('session.updated');
      c.send('{"type":"session.update","session":{"type":"realtime","max_output_tokens":"INF"}}');
      await c.nth('session.updated', 2);
      expect(conn.received.filter((r) => r.type === 'session.update').map((r) => (r.event as { session: { max_output_tokens: unknown } }).session.max_output_tokens)).toEqual([4096, 'inf']);
      c.close();
    },
    'The upstream refuses an event the proxy injected (a locked `session.update`, a clamp)': async () => {
      // The metering clamp injects a session.update; this upstream refuses it.
      const upstream = await recordingUpstream((event, send) => {
        if (isInjectedClamp(event)) {
          send({ type: 'error', event_id: 'event_up_1', error: { type: 'invalid_request_error', code: 'integer_above_max_value', message: 'Invalid max_output_tokens', param: 'session.max_output_tokens', event_id: event.event_id } });
          return 'handled';
        }
        return undefined;
      });
      const p = await startTestProxy({ tenants: { acme: { limits: { maxResponseOutputTokens: 1024 } } }, config: { upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-upstream' } } });
      stops.push(() => upstream.close(), () => p.stop());
      const c = await p.client();
      await expectEventMatches(c, 'governance_failed', 'specific');
      expect(c.events.some((e) => (e['error'] as { code?: string } | undefined)?.code === 'integer_above_max_value')).toBe(false);
      expect(p.logs.some((l) => l.msg === 'governance failure: the upstream refused an event the proxy injected')).toBe(true);
    },
    'Upstream closes with 4001–4999 (would read as the proxy\'s own 4001–4008)': async () => {
      const c = await tp.client();
      await c.next('session.created');
      tp.sim.connections[tp.sim.connections.length - 1]!.closeWith(4005, 'upstream policy');
      const err = await c.next('error');
      expect(err['error']).toMatchObject({ code: 'upstream_closed', details: { upstreamCode: 4005 } });
      expect((await c.closed).code).toBe(4100);
    },
    'Client text frame with invalid UTF-8': async () => {
      const other = await tp.client();
      await other.next('session.created');
      const c = await tp.client();
      await c.next('session.created');
      c.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
      expect((await c.closed).code).toBe(1006);
      other.say('say: unaffected');
      expect(((await other.next('response.done'))['response'] as { status: string }).status).toBe('completed');
      other.close();
    },
    'Upgrade with repeated `Authorization` / `api-key`, two keys in different carriers, or headers over `maxHeaderBytes` (16 KiB)': async () => {
      const before = tp.sim.connections.length;
      const twice = await rawUpgradeStatus(tp.port, { authorization: [`Bearer ${key}`, `Bearer ${key}`] });
      expect(twice.status).toBe(400);
      expect(twice.body).toContain('invalid_request');
      expect((await rawUpgradeStatus(tp.port, { 'api-key': [key, key] })).status).toBe(400);
      expect((await rawUpgradeStatus(tp.port, { authorization: `Bearer ${key}`, 'api-key': key })).status).toBe(400);
      const big = await rawUpgradeStatus(tp.port, { authorization: `Bearer ${key}`, 'x-padding': 'p'.repeat(17 * 1024) });
      expect(big.status).toBe(431);
      expect(tp.sim.connections.length).toBe(before);
    },
    '`OpenAI-Safety-Identifier` (any forwarded header) with a value the upstream request cannot carry (a control character, DEL, invalid UTF-8, a character above U+00FF)': async () => {
      const before = tp.sim.connections.length;
      // Node's own HTTP client refuses to send such a value: raw bytes.
      const head = Buffer.concat([
        Buffer.from(`GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer ${key}\r\nOpenAI-Safety-Identifier: user`, 'latin1'),
        Buffer.from([0x7f]),
        Buffer.from('1\r\n\r\n', 'latin1'),
      ]);
      const answer = await new Promise<string>((resolve, reject) => {
        const sock = connect(tp.port, '127.0.0.1', () => sock.write(head));
        let got = '';
        sock.on('data', (d: Buffer) => {
          got += d.toString('latin1');
          if (got.includes('\r\n\r\n')) {
            sock.destroy();
            resolve(got);
          }
        });
        sock.on('error', reject);
      });
      expect(answer.slice(0, answer.indexOf('\r\n'))).toMatch(/^HTTP\/1\.1 400/);
      expect(tp.sim.connections.length).toBe(before);
    },
    'Global memory budget (`memoryBudgetBytes`, 256 MiB) reached': async () => {
      // An upstream that accepts TCP but never answers the upgrade: client frames wait in the proxy.
      const hung = createServer(() => undefined).listen(0, '127.0.0.1');
      await new Promise((r) => hung.once('listening', r));
      const MiB = 1024 * 1024;
      const p = await startTestProxy({
        config: { upstream: { provider: 'openai', url: `ws://127.0.0.1:${(hung.address() as { port: number }).port}/v1/realtime`, apiKey: 'sk-x', connectTimeoutMs: 30_000 }, server: { memoryBudgetBytes: 8 * MiB } },
      });
      stops.push(async () => {
        hung.close();
      }, () => p.stop());
      const c = await p.client();
      const frame = JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(3 * MiB) });
      for (let i = 0; i < 4; i++) c.send(frame);
      await c.nth('error', 2);
      expect(c.ofType('error').map((e) => (e['error'] as { code: string }).code)).toEqual(['memory_budget_exceeded', 'memory_budget_exceeded']);
      expect(c.ofType('error')[0]!['error']).toMatchObject({ type: documentedErrors().get('memory_budget_exceeded')!.type });
      const budget = p.proxy.server.memoryBudget;
      await vi.waitFor(() => expect(budget.used).toBe(2 * frame.length), { timeout: 3000, interval: 20 });
      const overhead = JSON.stringify({ type: 'input_audio_buffer.append', audio: '' }).length;
      c.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(budget.limit - budget.used - overhead) }));
      await vi.waitFor(() => expect(budget.exhausted).toBe(true), { timeout: 3000, interval: 20 });
      expectRefusalMatches(await refusal(p.url, { authorization: `Bearer ${key}` }), 'overloaded', 'specific');
      expect(c.ws.readyState).toBe(c.ws.OPEN);
    },
    "One tenant's sessions at their share of the budget (`memoryBudgetTenantShare`: 0.5 with more than one tenant, else 1)": async () => {
      // Client frames wait for an upstream that never answers the upgrade: what each session holds is exact.
      const hung = createServer(() => undefined).listen(0, '127.0.0.1');
      await new Promise((r) => hung.once('listening', r));
      const MiB = 1024 * 1024;
      const p = await startTestProxy({
        tenants: { a: {}, b: {} },
        config: { upstream: { provider: 'openai', url: `ws://127.0.0.1:${(hung.address() as { port: number }).port}/v1/realtime`, apiKey: 'sk-x', connectTimeoutMs: 30_000 }, server: { memoryBudgetBytes: 4 * MiB, maxFrameBytes: 2 * MiB } },
      });
      stops.push(async () => {
        hung.close();
      }, () => p.stop());
      const budget = p.proxy.server.memoryBudget;
      expect(budget.tenantLimit).toBe(2 * MiB);
      const appendOf = (bytes: number) => JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(bytes - JSON.stringify({ type: 'input_audio_buffer.append', audio: '' }).length) });
      const tenantScope = { scope: 'tenant', limit: 2 * MiB };
      // Tenant a holds exactly its share (a frame and its queueing overhead), as the recount finds.
      const a = await p.client({ tenant: 'a' });
      a.send(appendOf(2 * MiB - QUEUED_FRAME_OVERHEAD_BYTES));
      await vi.waitFor(() => expect(budget.sessionBytesOf('a')).toBe(2 * MiB), { timeout: 5000, interval: 20 });
      const refused = await refusal(p.url, { authorization: `Bearer ${p.key('a')}` });
      expectRefusalMatches(refused, 'memory_budget_exceeded', 'specific');
      expect(refused.body.error['details']).toEqual(tenantScope);
      a.send(appendOf(64 * 1024));
      const frameRefusal = await a.next('error');
      expect(frameRefusal['error']).toMatchObject({ code: 'memory_budget_exceeded', type: documentedErrors().get('memory_budget_exceeded')!.type, details: tenantScope });
      expect(a.ws.readyState).toBe(a.ws.OPEN);
      // Tenant b opens; its two sessions together pass the share (small frames, counted only at the
      // recount), and the larger is ended until the rest fit.
      const b1 = await p.client({ tenant: 'b' });
      b1.send(appendOf(1 * MiB));
      const b2 = await p.client({ tenant: 'b' });
      for (let i = 0; i < 20; i++) b2.send(appendOf(60 * 1024));
      expect(await b2.closed).toEqual({ code: 4008, reason: 'memory_budget_exceeded' });
      expect(b2.ofType('error').at(-1)!['error']).toMatchObject({ code: 'memory_budget_exceeded', details: tenantScope });
      expect(b1.ws.readyState).toBe(b1.ws.OPEN);
      expect(a.ws.readyState).toBe(a.ws.OPEN);
    },
    'Upstream sends invalid UTF-8, a frame over 64 MiB, a frame that breaks RFC 6455, or a text frame that is not a JSON object': async () => {
      const up = await scriptedUpstream((ws, n) => {
        ws.send(sessionCreated(n));
        if (n === 1) {
          ws.send('[1,2,3]');
          ws.send(Buffer.from([1, 2, 3]), { binary: true });
          ws.send(JSON.stringify({ type: 'response.output_text.delta', delta: 'after the junk' }));
        } else if (n === 2) {
          ws.send(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), { binary: false });
        } else {
          // A frame with reserved opcode 3, written under `ws` (which would never send one).
          (ws as unknown as { _socket: { write(b: Buffer): void } })._socket.write(Buffer.from([0x83, 0x00]));
        }
      });
      const p = await startTestProxy({ config: { upstream: { provider: 'openai', url: up.url, apiKey: 'sk-x' } } });
      stops.push(() => up.close(), () => p.stop());
      const c = await p.client();
      await c.next('response.output_text.delta');
      expect(c.events.map((e) => e.type)).toEqual(['session.created', 'response.output_text.delta']);
      expect(c.ws.readyState).toBe(c.ws.OPEN);
      c.close();
      const d = await p.client();
      await expectEventMatches(d, 'upstream_closed', 'specific');
      const e = await p.client();
      await expectEventMatches(e, 'upstream_closed', 'specific');
      expect((await e.closed).code).toBe(1011);
    },
    'Frame over `maxFrameBytes` (16 MiB)': async () => {
      // A small limit keeps this cheap; the headroom before the cut is 16 MiB whatever the limit
      // (so "beyond 32 MiB" with the default limit).
      const limit = 64 * 1024;
      const p = await startTestProxy({ config: { server: { maxFrameBytes: limit } } });
      stops.push(() => p.stop());
      const c = await p.client();
      await c.next('session.created');
      const conn = p.sim.connections[p.sim.connections.length - 1]!;
      c.send(`{"type":"input_audio_buffer.append","audio":"${'A'.repeat(limit)}"}`);
      await expectEventMatches(c, 'frame_too_large', 'specific');
      c.send(`{"type":"input_audio_buffer.append","audio":"${'A'.repeat(limit + 16 * 1024 * 1024)}"}`);
      const closed = await c.closed;
      expect(closed.code).not.toBe(1000);
      expect(conn.received.filter((r) => r.type === 'input_audio_buffer.append')).toEqual([]);
      expect(p.proxy.server.sessionCount).toBe(0);
    },
    'Retired beta markers (`OpenAI-Beta: realtime=v1`, `openai-beta.realtime-v1`)': async () => {
      const c = new TestClient(tp.url, { headers: { authorization: `Bearer ${key}`, 'openai-beta': 'realtime=v1' }, protocols: ['realtime', 'openai-beta.realtime-v1'] });
      await c.next('session.created');
      const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
      expect(conn.headers['openai-beta']).toBeUndefined();
      expect(conn.headers['sec-websocket-protocol'] ?? '').not.toContain('openai-beta');
      c.close();
    },
    'SIGTERM': async () => {
      const p = await startTestProxy({ config: { server: { shutdownDrainSec: 1 } } });
      const c = await p.client();
      await c.next('session.created');
      const stopping = p.proxy.shutdown(200);
      // "stop accepting (new upgrades get 503)".
      expectRefusalMatches(await refusal(p.url, { authorization: `Bearer ${key}` }), 'server_shutting_down', 'specific');
      await expectEventMatches(c, 'server_shutting_down');
      await stopping;
    },
  };

  it('has a check for every row, and every check has its row', () => {
    const situations = tableAfter('## Behaviour at the edges', 'Situation').map(([situation]) => situation!);
    expect(situations.sort()).toEqual(Object.keys(checks).sort());
  });

  it.each(Object.keys(checks))('%s', async (situation) => {
    await checks[situation]!();
  });
});

describe('README', () => {
  it('shows the run and test commands', () => {
    expect(readme).toContain('npm start');
    expect(readme).toContain('npm test');
  });

  it("the configuration table's `server` row names every server key, and the tenant share's defaults as the server takes them", () => {
    const row = tableAfter('## Configuration', 'section').find(([section]) => section === '`server`');
    expect(row, 'a `server` row').toBeDefined();
    const keys = row![1]!;
    const schema = JSON.parse(readFileSync(new URL('../../config/config.schema.json', import.meta.url), 'utf8')) as { properties: { server: { properties: Record<string, unknown> } } };
    for (const key of Object.keys(schema.properties.server.properties)) expect(keys, `server.${key}`).toContain(`\`${key}\``);
    expect(keys).toContain('`memoryBudgetTenantShare` (0.5 with more than one tenant, 1 with one');
    expect([defaultTenantShare(2), defaultTenantShare(1)]).toEqual([0.5, 1]);
  });
});
