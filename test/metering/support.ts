import { join } from 'node:path';
import type WebSocket from 'ws';
import { scriptedUpstream } from '../resilience/support/faulty-upstream.js';
import type { ReceivedEvent, TestClient } from '../support/client.js';
import { startTestProxy, type TestProxy, type TestProxyOptions } from '../support/harness.js';
import { tempDir } from '../support/temp-dir.js';

export const ADMIN_KEY = 'admin_test_key_0123456789';

/** One text-only turn: returns the response.done, or the proxy's error if the response was refused. */
export async function textTurn(c: TestClient, text = 'say: ok', timeoutMs = 10_000): Promise<{ done: ReceivedEvent | null; error: ReceivedEvent | null }> {
  const eventId = `evt_turn_${Math.random().toString(36).slice(2, 10)}`;
  const doneBefore = c.ofType('response.done').length;
  c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  c.send({ type: 'response.create', event_id: eventId, response: { output_modalities: ['text'] } });
  const ev = await c.waitFor(
    (e) =>
      (e.type === 'error' && (e['error'] as { event_id?: string } | undefined)?.event_id === eventId) ||
      (e.type === 'response.done' && c.ofType('response.done').length > doneBefore),
    timeoutMs,
    'response.done or error',
  );
  return ev.type === 'error' ? { done: null, error: ev } : { done: ev, error: null };
}

export function errorCode(e: ReceivedEvent | null): string | null {
  return ((e?.['error'] as { code?: string } | undefined)?.code ?? null) as string | null;
}

/** The code of a proxy notice (`rtproxy.notice`: a clamp, a response cancelled by a limit), else null. */
export function noticeCode(e: ReceivedEvent | null): string | null {
  return e?.type === 'rtproxy.notice' ? ((e['notice'] as { code?: string } | undefined)?.code ?? null) : null;
}

export async function admin(httpUrl: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; text: string; headers: Headers }> {
  const res = await fetch(`${httpUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // JSONL or empty
  }
  return { status: res.status, json, text, headers: res.headers };
}

export interface SpendPeriod {
  spentUsd: string;
  spentNanos: number;
  spentTokens: number;
  reservedUsd: string;
  capUsd: string | null;
  resetsAt: string;
  period: string;
}

export async function spend(httpUrl: string, tenant = 'acme'): Promise<{ day: SpendPeriod; month: SpendPeriod }> {
  const r = await admin(httpUrl, 'GET', `/admin/tenants/${tenant}/spend`);
  if (r.status !== 200) throw new Error(`spend: HTTP ${r.status} ${r.text}`);
  return r.json as unknown as { day: SpendPeriod; month: SpendPeriod };
}

/** The usage records (JSON lines) of GET /admin/usage. */
export async function usageRecords(httpUrl: string, query = ''): Promise<Record<string, unknown>[]> {
  const r = await admin(httpUrl, 'GET', `/admin/usage${query}`);
  if (r.status !== 200) throw new Error(`usage: HTTP ${r.status} ${r.text}`);
  return r.text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * A proxy with metering on a fresh SQLite ledger file, info logs and the admin key (`metering` is
 * merged over the ledger), registered in `cleanups` to be stopped after the test.
 */
export async function meteredProxy(cleanups: Array<() => Promise<void>>, options: TestProxyOptions & { metering?: Record<string, unknown> } = {}): Promise<TestProxy> {
  const dir = tempDir('rp-metered-');
  const { metering, ...rest } = options;
  const tp = await startTestProxy({
    ...rest,
    config: { logging: { level: 'info' }, ...rest.config, admin: { key: ADMIN_KEY }, metering: { ledger: { path: join(dir, 'ledger.sqlite') }, ...metering } },
  });
  cleanups.push(() => tp.stop());
  return tp;
}

/** Polls `pred` every 10 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A metered proxy (fresh SQLite ledger, info logs, the admin key) whose upstream is a `ws` server the
 * test scripts (test/resilience/support/faulty-upstream.ts `scriptedUpstream`): for protocol moments
 * the simulator does not play (an MCP call's output, a response streaming while others read it).
 * `onConnection` gets each upstream socket; `send` writes one event to it. Both stop after the test.
 */
export async function scriptedMeteredProxy(
  cleanups: Array<() => Promise<void>>,
  onConnection: (ws: WebSocket, send: (event: Record<string, unknown>) => void) => void,
  options: TestProxyOptions & { metering?: Record<string, unknown> } = {},
): Promise<TestProxy> {
  const up = await scriptedUpstream((ws) => onConnection(ws, (event) => ws.send(JSON.stringify(event))));
  cleanups.push(() => up.close());
  return meteredProxy(cleanups, { ...options, config: { ...options.config, upstream: { provider: 'openai', url: up.url, apiKey: 'sk-scripted' } } });
}

/** The GA session object a scripted upstream sends (text output; input turn detection as given, none when null). */
export function scriptedSession(turnDetection: Record<string, unknown> | null = null): Record<string, unknown> {
  return {
    type: 'realtime',
    object: 'realtime.session',
    id: 'sess_scripted',
    model: 'gpt-realtime',
    output_modalities: ['text'],
    max_output_tokens: 'inf',
    tools: [],
    expires_at: 0,
    ...(turnDetection ? { audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: null, turn_detection: turnDetection } } } : {}),
  };
}

/**
 * A scripted upstream's usual opening: `session.created` (scriptedSession), then each client event the
 * proxy forwards, parsed, to `onEvent`.
 */
export function sessionThenClientEvents(ws: WebSocket, send: (event: Record<string, unknown>) => void, onEvent: (ev: { type: string } & Record<string, unknown>) => void): void {
  send({ type: 'session.created', event_id: 'event_s0', session: scriptedSession() });
  ws.on('message', (data) => onEvent(JSON.parse(String(data)) as { type: string } & Record<string, unknown>));
}

/** A response object a scripted upstream sends (text output, no usage unless `extra` gives one). */
export function scriptedResponse(id: string, status: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { object: 'realtime.response', id, status, status_details: null, output: [], conversation_id: 'conv_1', output_modalities: ['text'], max_output_tokens: 'inf', metadata: null, usage: null, ...extra };
}

/** A response's usage of text tokens only, in the API's shape. */
export function textUsage(textIn: number, textOut: number): Record<string, unknown> {
  return {
    total_tokens: textIn + textOut,
    input_tokens: textIn,
    output_tokens: textOut,
    input_token_details: { text_tokens: textIn, audio_tokens: 0, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } },
    output_token_details: { text_tokens: textOut, audio_tokens: 0 },
  };
}

type PreviewJson = Record<string, unknown>;

/**
 * A scripted Azure preview upstream (beta session shape): sends `session.created` with `session`,
 * records every client event in `received`, then hands it to `onEvent` with a `send` that stamps
 * event ids. For the preview-dialect money tests.
 */
export async function previewScriptedUpstream(
  session: PreviewJson,
  received: PreviewJson[],
  onEvent: (ev: PreviewJson, send: (ev: PreviewJson) => void) => void,
): Promise<Awaited<ReturnType<typeof scriptedUpstream>>> {
  return scriptedUpstream((ws: WebSocket) => {
    let n = 0;
    const send = (ev: PreviewJson): void => ws.send(JSON.stringify({ ...ev, event_id: `e${++n}` }));
    send({ type: 'session.created', session });
    ws.on('message', (data) => {
      const ev = JSON.parse(String(data)) as PreviewJson;
      received.push(ev);
      onEvent(ev, send);
    });
  });
}
