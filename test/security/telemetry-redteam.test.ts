import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultBrain, type Brain } from '../../src/simulator/index.js';
import type { TestClient } from '../support/client.js';
import { defaultKey } from '../support/harness.js';
import { startTelemetryProxy, type TelemetryProxy } from '../telemetry/support/proxy.js';

/**
 * Red-team of the telemetry promises through the real proxy (loopback sockets, the simulator
 * upstream, the admin /metrics listener, spans in memory, pino lines captured):
 * - every metric label a client or the upstream names comes from a bounded set, per tenant;
 * - span names and attributes cannot carry megabytes a hostile frame put there;
 * - no client content, ids or credentials reach logs, spans or labels at default config.
 */

/** `fail:CODE` makes the response fail with that code (a hostile upstream's error); the rest is the default brain. */
const brain: Brain = (ctx) => {
  const last = ctx.items[ctx.items.length - 1];
  const text = last?.type === 'message' && last.role === 'user' ? last.content.map((c) => (c.type === 'input_text' ? c.text : '')).join('') : '';
  // The message quotes the client's text, as OpenAI's invalid-value errors do.
  if (text.startsWith('fail:')) return { fail: { code: text.slice(5).split(' ')[0]!, message: `echo of the client: ${text}` } };
  return defaultBrain(ctx);
};

let p: TelemetryProxy;
beforeAll(async () => {
  p = await startTelemetryProxy({ tenants: { acme: {}, other: {} }, simulator: { brain, timing: { firstAudioDelayMs: 1, deltaIntervalMs: 0 } } });
});
afterAll(async () => {
  await p?.stop();
});

async function metrics(): Promise<string> {
  const res = await fetch(`${p.adminUrl}/metrics`);
  return res.text();
}

/** Distinct values of `label` on the series of `metric` for one tenant. */
function values(text: string, metric: string, label: string, tenant: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`) || !line.includes(`rtproxy_tenant_id="${tenant}"`)) continue;
    const m = new RegExp(`${label}="([^"]*)"`).exec(line);
    if (m) out.add(m[1]!);
  }
  return out;
}

async function open(tenant = 'acme'): Promise<{ c: TestClient; sessionId: string }> {
  const c = await p.client(tenant);
  await c.next('session.created');
  const starts = p.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'session start');
  return { c, sessionId: String(starts[starts.length - 1]?.['session']) };
}

/** One tool round trip: the model calls `name`, the client answers, the model answers that. */
async function toolTurn(c: TestClient, name: string, n: number): Promise<void> {
  c.say(`call:${name} {"q":1}`);
  const call = await c.nth('response.function_call_arguments.done', n + 1);
  await c.nth('response.done', 2 * n + 1);
  c.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: call['call_id'], output: '{}' } });
  c.send({ type: 'response.create' });
  await c.nth('response.done', 2 * n + 2);
}

/** Closes the client and waits until the session's spans and its session-end line are in. */
async function finish(c: TestClient, sessionId: string): Promise<ReadableSpan[]> {
  c.close();
  await c.closed;
  for (let i = 0; i < 500; i++) {
    const all = p.spans.getFinishedSpans();
    const traceIds = new Set(all.filter((s) => s.attributes['rtproxy.session.id'] === sessionId).map((s) => s.spanContext().traceId));
    const spans = all.filter((s) => traceIds.has(s.spanContext().traceId));
    if (spans.some((s) => s.name === 'rtproxy.session.connect') && p.lines.some((l) => l.includes('"session end"') && l.includes(sessionId))) return spans;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('session spans did not arrive');
}

describe('metric labels a client names stay bounded (tool names)', () => {
  it('one tenant calling 30 distinct tools gets at most 20 series values plus other; another tenant keeps its own tool name', async () => {
    const { c, sessionId } = await open('acme');
    for (let i = 0; i < 30; i++) await toolTurn(c, `flood_tool_${i}`, i);
    // Not identifier-shaped: never label text.
    await toolTurn(c, 'x<script>"', 30);
    await finish(c, sessionId);
    const o = await open('other');
    await toolTurn(o.c, 'get_weather', 0);
    await finish(o.c, o.sessionId);
    const text = await metrics();
    const acme = values(text, 'gen_ai_execute_tool_duration_count', 'gen_ai_tool_name', 'acme');
    expect(acme.size).toBeLessThanOrEqual(21);
    expect(acme.has('other')).toBe(true);
    expect([...acme].some((v) => v.includes('script'))).toBe(false);
    expect(values(text, 'gen_ai_execute_tool_duration_count', 'gen_ai_tool_name', 'other')).toEqual(new Set(['get_weather']));
  });
});

describe('span strings are capped (names, ids and codes from frames)', () => {
  it('a 100 000-character tool name and error code leave spans and the turn line at most 257 characters each', async () => {
    const { c, sessionId } = await open();
    const name = `t${'N'.repeat(100_000)}`;
    await toolTurn(c, name, 0);
    const code = `c${'E'.repeat(100_000)}`;
    c.say(`fail:${code}`);
    await c.nth('response.done', 3);
    const spans = await finish(c, sessionId);
    const tool = spans.find((s) => s.name.startsWith('execute_tool'));
    expect(tool).toBeDefined();
    expect(String(tool!.attributes['gen_ai.tool.name']).startsWith('tNNN')).toBe(true);
    const failed = spans.filter((s) => s.attributes['error.type'] !== undefined);
    expect(failed.length).toBeGreaterThan(0);
    for (const s of spans) {
      expect(s.name.length).toBeLessThanOrEqual(257);
      for (const v of Object.values(s.attributes)) if (typeof v === 'string') expect(v.length).toBeLessThanOrEqual(257);
      for (const e of s.events) for (const v of Object.values(e.attributes ?? {})) if (typeof v === 'string') expect(v.length).toBeLessThanOrEqual(257);
    }
    const lines = p.lines.filter((l) => l.includes(sessionId));
    const turnEnd = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['event'] === 'turn_end' && l['errorType'] !== undefined);
    expect(String(turnEnd?.['errorType']).length).toBeLessThanOrEqual(257);
    for (const l of lines) expect(l.length).toBeLessThan(4000);
  });
});

describe('error codes the upstream names stay bounded and never crowd out the proxy\'s own', () => {
  it('210 made-up upstream codes, then a client frame the proxy rejects: its catalogue code is still its own series', async () => {
    const { c, sessionId } = await open();
    for (let i = 0; i < 210; i++) {
      c.say(`fail:made_up_code_${i}`);
      await c.nth('response.done', i + 1);
    }
    c.say(`fail:${'not an identifier '.repeat(3)}`);
    await c.nth('response.done', 211);
    // Valid type, malformed body: the chain refuses it with the catalogue's invalid_json.
    c.send('{"type":"conversation.item.create","item":{');
    await c.next('error');
    await finish(c, sessionId);
    const text = await metrics();
    const proxyTypes = new Set<string>();
    for (const line of text.split('\n')) {
      if (!line.startsWith('rtproxy_errors_total{') || !line.includes('rtproxy_error_origin="proxy"')) continue;
      proxyTypes.add(/error_type="([^"]*)"/.exec(line)?.[1] ?? '');
    }
    expect(proxyTypes).toContain('invalid_json');
    const upstream = values(text, 'gen_ai_client_operation_duration_count', 'error_type', 'acme');
    expect(upstream.has('made_up_code_0')).toBe(true);
    expect(upstream.size).toBeLessThanOrEqual(201);
    expect([...upstream].some((v) => v.includes(' '))).toBe(false);
  });
});

/** Content and credentials a client puts everywhere it can; none may reach a log line, span or label. */
const CANARIES = {
  eventId: 'CANARYEVENTID',
  itemId: 'item_CANARYITEMID',
  metadata: 'CANARYMETADATA',
  instructions: 'CANARYINSTRUCTIONS',
  text: 'CANARYUSERTEXT',
  toolArgs: 'CANARYTOOLARGS',
  toolOutput: 'CANARYTOOLOUTPUT',
  badJson: 'CANARYBADJSON',
  upstreamEcho: 'CANARYECHOED',
  unknownType: 'CANARYUNKNOWNTYPE',
  truncateId: 'item_CANARYTRUNCATE',
};

async function sprayCanaries(c: TestClient, q: TelemetryProxy): Promise<void> {
  c.send({ type: 'session.update', event_id: CANARIES.eventId, session: { type: 'realtime', instructions: CANARIES.instructions } });
  await c.next('session.updated');
  c.send({ type: 'conversation.item.create', event_id: `${CANARIES.eventId}2`, item: { id: CANARIES.itemId, type: 'message', role: 'user', content: [{ type: 'input_text', text: `say:${CANARIES.text}` }] } });
  c.send({ type: 'response.create', event_id: `${CANARIES.eventId}3`, response: { metadata: { note: CANARIES.metadata } } });
  await c.nth('response.done', 1);
  c.say(`call:lookup {"q":"${CANARIES.toolArgs}"}`);
  const call = await c.nth('response.function_call_arguments.done', 1);
  await c.nth('response.done', 2);
  c.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: call['call_id'], output: CANARIES.toolOutput } });
  c.send({ type: 'response.create' });
  await c.nth('response.done', 3);
  c.say(`fail:some_code ${CANARIES.upstreamEcho}`);
  await c.nth('response.done', 4);
  c.send({ type: `x.${CANARIES.unknownType}`, event_id: `${CANARIES.eventId}4` });
  c.send(`{"type":"conversation.item.create","item":{"text":"${CANARIES.badJson}"`);
  await c.nth('error', 1);
  c.send({ type: 'conversation.item.truncate', item_id: CANARIES.truncateId, content_index: 0, audio_end_ms: 10 });
  await c.nth('error', 2);
  void q;
}

/** Where captured (redacted, opt-in) content is documented to go: left out of the sweep when capture is on. */
const CONTENT_ATTRS = ['rtproxy.pii.input_transcript', 'rtproxy.pii.output_transcript', 'gen_ai.input.messages', 'gen_ai.output.messages'];
const CONTENT_FIELDS = ['inputTranscript', 'outputTranscript'];

function leaks(q: TelemetryProxy, metricsText: string, allowed: ReadonlySet<string>, withoutContent = false): string[] {
  const strip = (a: Record<string, unknown>) => (withoutContent ? Object.fromEntries(Object.entries(a).filter(([k]) => !CONTENT_ATTRS.includes(k))) : a);
  const spans = JSON.stringify(q.spans.getFinishedSpans().map((s) => ({ name: s.name, attributes: strip(s.attributes), events: s.events })));
  const logs = q.lines
    .map((l) => {
      const rec = JSON.parse(l) as Record<string, unknown>;
      if (withoutContent) for (const k of CONTENT_FIELDS) delete rec[k];
      return JSON.stringify(rec);
    })
    .join('\n');
  const out: string[] = [];
  for (const [where, text] of [['spans', spans], ['logs', logs], ['metrics', metricsText]] as const) {
    for (const [name, canary] of Object.entries(CANARIES)) if (!(allowed.has(name) && where === 'logs') && text.includes(canary)) out.push(`${name} in ${where}`);
    if (text.includes('rpk_test_')) out.push(`tenant key in ${where}`);
    if (text.includes('sk-simulator')) out.push(`upstream key in ${where}`);
  }
  return out;
}

describe('privacy: client content in unusual places', () => {
  it('default config: no event id, item id, metadata, instructions, text, tool arguments or output, echoed upstream message or bad JSON anywhere', async () => {
    const { c, sessionId } = await open();
    await sprayCanaries(c, p);
    await finish(c, sessionId);
    // The policies log an unknown event type once, by name (the protocol's, not content): capped, see below.
    expect(leaks(p, await metrics(), new Set(['unknownType']))).toEqual([]);
  });

  it('content capture on: only the redacted transcripts are added', async () => {
    const q = await startTelemetryProxy({ config: { telemetry: { captureContent: { enabled: true }, logTurns: 'info' } }, simulator: { brain, timing: { firstAudioDelayMs: 1, deltaIntervalMs: 0 } } });
    try {
      const c = await q.client();
      await c.next('session.created');
      await sprayCanaries(c, q);
      // A user reading out credentials: an OpenAI-style key with no six-digit run, the tenant's own proxy key.
      const openaiKey = 'sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz_abcDEF';
      c.say(`say:my key is ${openaiKey} and the proxy key ${defaultKey('acme')}, Authorization: Bearer tok.ABCDEFGHIJ.klmnop`);
      await c.nth('response.done', 5);
      c.close();
      await c.closed;
      for (let i = 0; i < 300 && !q.lines.some((l) => l.includes('"session end"')); i++) await new Promise((r) => setTimeout(r, 10));
      const text = (await (await fetch(`${q.adminUrl}/metrics`)).text());
      // The user's text is the transcript capture is documented to keep.
      expect(leaks(q, text, new Set(['unknownType']), true)).toEqual([]);
      const all = q.lines.join('\n') + JSON.stringify(q.spans.getFinishedSpans().map((sp) => sp.attributes));
      expect(all).toContain('my key is [secret]');
      for (const secret of ['AbCdEfGhIjKlMnOp', 'rpk_test_acme', 'tok.ABCDEFGHIJ']) expect(all).not.toContain(secret);
      // Capture did run: the user's text is in the (redacted) transcript fields.
      expect(q.lines.join('\n')).toContain(CANARIES.text);
    } finally {
      await q.stop();
    }
  });
});

describe('log lines stay one line\'s size whatever a client names', () => {
  it('a 200 000-character event type (logged once by the policies) makes no line longer than 4 KiB', async () => {
    const { c, sessionId } = await open();
    c.send({ type: `y.${'Z'.repeat(200_000)}` });
    c.say('say:after');
    await c.nth('response.done', 1);
    await finish(c, sessionId);
    const line = p.lines.find((l) => l.includes('"eventType":"y.ZZZ'));
    expect(line).toBeDefined();
    expect(line!.length).toBeLessThan(4096);
    for (const l of p.lines) expect(l.length).toBeLessThan(4096);
  });
});
