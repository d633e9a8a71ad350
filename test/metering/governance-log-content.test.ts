import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { LOGGED_MESSAGE_CHARS, withoutQuoted } from '../../src/relay/session.js';
import { isInjectedClamp } from '../governance/edges-support.js';
import { scriptedUpstream, sessionCreated } from '../resilience/support/faulty-upstream.js';
import { startTestProxy } from '../support/harness.js';

/*
 * A governance failure (the upstream refused an event the proxy injected: here metering's output
 * clamp) is logged. Until 2026-12-05 the log kept 300 characters of the upstream's message, which
 * quotes what it read: an injected event may carry the client's words (a replaced item's text), so
 * conversation content reached the logs. It keeps the code, type and param (short names only) and
 * the message up to its first quote mark. Real client and a scripted upstream on loopback.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

// A canary no port, pid or timestamp can contain (found 2026-12-05: '4111' matched a random port, 44111).
const SECRET = 'my card is 4111 1111 1111 1111';
const CANARY = '4111 1111';

describe('the governance-failure log carries no conversation content (found 2026-12-05)', () => {
  it("an upstream refusal quoting the injected event's text: logged with code, type and param, and the message up to its first quote", async () => {
    const up = await scriptedUpstream((ws: WebSocket, n) => {
      ws.send(sessionCreated(n));
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as { type: string; event_id?: string; session?: unknown };
        // The client sends no session.update: the one here is the proxy's clamp.
        if (!isInjectedClamp(ev)) return;
        const message = `Invalid value: '${SECRET}'. Supported values are: "short", \u201c${SECRET}\u201d and \`x\`; it can't be "${SECRET}`;
        ws.send(JSON.stringify({ type: 'error', event_id: 'event_up_1', error: { type: 'invalid_request_error', code: 'invalid_value', message, param: 'session.max_output_tokens', event_id: ev.event_id } }));
      });
    });
    cleanups.push(() => up.close());
    const tp = await startTestProxy({
      tenants: { acme: { limits: { maxResponseOutputTokens: 100 } } },
      config: { upstream: { provider: 'openai', url: up.url, apiKey: 'sk-x', onInjectedEventError: 'per_response' } },
    });
    cleanups.push(() => tp.stop());
    const c = await tp.client();
    await c.next('session.created');
    await expect.poll(() => tp.logs.some((l) => l.msg === 'governance failure: the upstream refused an event the proxy injected')).toBe(true);
    const warn = tp.logs.find((l) => l.msg === 'governance failure: the upstream refused an event the proxy injected')!;
    expect(warn).toMatchObject({
      level: 40,
      code: 'invalid_value',
      type: 'invalid_request_error',
      param: 'session.max_output_tokens',
      eventType: 'session.update',
      by: 'metering',
      upstreamMessage: "Invalid value: '…",
    });
    expect(tp.logText()).not.toContain(CANARY);
  });

  it('a code, type, param or message that is not a short name (or not a string) is not logged as it came (nor shown to the client)', async () => {
    const up = await scriptedUpstream((ws: WebSocket, n) => {
      ws.send(sessionCreated(n));
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as { type: string; event_id?: string; session?: unknown };
        if (!isInjectedClamp(ev)) return;
        ws.send(JSON.stringify({ type: 'error', event_id: 'event_up_1', error: { type: `bad ${SECRET}`, code: `invalid ${SECRET}`, message: { text: SECRET }, param: 42, event_id: ev.event_id } }));
      });
    });
    cleanups.push(() => up.close());
    const tp = await startTestProxy({
      tenants: { acme: { limits: { maxResponseOutputTokens: 100 } } },
      config: { upstream: { provider: 'openai', url: up.url, apiKey: 'sk-x' } },
    });
    cleanups.push(() => tp.stop());
    const c = await tp.client();
    await c.next('session.created');
    const closed = await c.closed;
    expect(closed.code).toBe(4003);
    const err = c.ofType('error').at(-1)!['error'] as { code: string; message: string; details: Record<string, unknown> };
    expect(err.code).toBe('governance_failed');
    expect(err.details).toMatchObject({ upstreamCode: 'unknown' });
    expect(err.message).not.toContain(CANARY);
    const warn = tp.logs.find((l) => l.msg === 'governance failure: the upstream refused an event the proxy injected')!;
    // Members of another kind: nothing (a message that is not a string is not logged either).
    expect(warn).toMatchObject({ code: 'unknown', type: null, param: null, upstreamMessage: null });
    expect(tp.logText()).not.toContain(CANARY);
  });
});

describe('withoutQuoted', () => {
  it.each([
    ['no quotes at all', 'no quotes at all'],
    ["Unknown parameter: 'session.foo'.", "Unknown parameter: '…"],
    // An apostrophe between letters is no quote; one at a word's edge is.
    ["can't read 'don't do that' here", "can't read '…"],
    ["the users' 'x'", "the users'…"],
    ["'leading", "'…"],
    ['value "a" end', 'value "…'],
    ['`x`', '`…'],
    ['\u201cdouble\u201d', '\u201c…'],
    ['a \u2019closing only', 'a \u2019…'],
    ['\u00abguillemets\u00bb', '\u00ab…'],
    ['', ''],
  ])('%s', (message, logged) => {
    expect(withoutQuoted(message)).toBe(logged);
  });

  it(`keeps at most ${LOGGED_MESSAGE_CHARS} characters`, () => {
    expect(withoutQuoted('a'.repeat(LOGGED_MESSAGE_CHARS))).toBe('a'.repeat(LOGGED_MESSAGE_CHARS));
    expect(withoutQuoted('a'.repeat(LOGGED_MESSAGE_CHARS + 1))).toBe(`${'a'.repeat(LOGGED_MESSAGE_CHARS - 1)}…`);
    expect(withoutQuoted(`${'a'.repeat(LOGGED_MESSAGE_CHARS)} "quoted"`)).toBe(`${'a'.repeat(LOGGED_MESSAGE_CHARS - 1)}…`);
  });
});
