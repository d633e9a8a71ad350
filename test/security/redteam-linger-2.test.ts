/**
 * Red team (thirteenth session, 2026-12-06): the linger at shutdown. When the drain ends, the proxy
 * closes the sessions still running (`server_shutting_down`); one mid-response lingers for that
 * response's `response.done` (cancelled, billed as OpenAI bills it: src/relay/session.ts
 * #closeUpstream), as a client leaving mid-response does. The shutdown closes the modules (metering's
 * ledger) right after closing the sessions, without waiting for those lingers.
 */
import Database from 'better-sqlite3';
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { scriptedMeteredProxy, scriptedResponse, scriptedSession, until } from '../metering/support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const usage = { total_tokens: 1100, input_tokens: 1000, output_tokens: 100, input_token_details: { text_tokens: 1000, audio_tokens: 0, image_tokens: 0, cached_tokens: 0 }, output_token_details: { text_tokens: 100, audio_tokens: 0 } };
const responseOf = (status: string, extra: Record<string, unknown> = {}) => scriptedResponse('resp_running', status, extra);

/** A proxy whose upstream runs one response per create until it is cancelled (its response.done 100 ms after the cancel); a client whose response runs. */
async function responseRunning() {
  let upstreamClosed = false;
  let cancels = 0;
  const tp = await scriptedMeteredProxy(cleanups, (ws: WebSocket, send) => {
    send({ type: 'session.created', event_id: 'event_s0', session: scriptedSession() });
    ws.on('close', () => (upstreamClosed = true));
    ws.on('message', (data) => {
      const ev = JSON.parse(String(data)) as { type: string };
      if (ev.type === 'response.create') send({ type: 'response.created', event_id: 'event_r1', response: responseOf('in_progress') });
      // A cancelled response still ends a moment later, with the usage OpenAI bills.
      if (ev.type === 'response.cancel') cancels++;
      if (ev.type === 'response.cancel') setTimeout(() => send({ type: 'response.done', event_id: 'event_r2', response: responseOf('cancelled', { usage }) }), 100);
    });
  });
  const ledgerPath = (tp.proxy.config.metering.ledger as { path: string }).path;
  const c = await tp.client();
  await c.next('session.created');
  c.send({ type: 'response.create', response: { output_modalities: ['text'] } });
  await c.next('response.created');
  return { tp, c, ledgerPath, upstreamClosed: () => upstreamClosed, cancels: () => cancels };
}

/** The ledger file's usage rows: ref, settledBy, estimated. */
function ledgerRows(path: string): unknown[] {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare('SELECT ref, json FROM usage').all() as Array<{ ref: string; json: string }>).map((r) => {
      const record = JSON.parse(r.json) as { settledBy: string; estimated: boolean };
      return [r.ref, record.settledBy, record.estimated];
    });
  } finally {
    db.close();
  }
}

describe('red team: a response running when the shutdown drain ends', () => {
  // Failed before the fix (2026-12-06, thirteenth session): the response's usage was read after the
  // ledger closed ('metering: settle failed', TypeError: the database connection is not open), the
  // record only in that log line; the tenant's spend never counted it. Now the shutdown waits for the
  // lingering sessions (bounded by lingerAfterClientCloseMs) before closing the modules.
  it("the lingering session's response.done, read after the shutdown closed the sessions, is in the ledger (not only in a 'settle failed' log line)", async () => {
    const { tp, ledgerPath, upstreamClosed, cancels } = await responseRunning();
    // No drain: the session is closed at once and lingers for the cancelled response; the shutdown
    // returns once it ended (the modules closed after it).
    await tp.proxy.shutdown(0);
    expect(upstreamClosed()).toBe(true);
    // One linger, one cancel: until the same fix, ending the client started a second linger from its
    // close callback, and the response was cancelled twice (this upstream answers each cancel).
    expect(cancels()).toBe(1);
    expect(tp.logs.filter((l) => l.msg === 'metering: settle failed')).toEqual([]);
    expect(ledgerRows(ledgerPath)).toEqual([['resp_running', 'response.done', false]]);
  }, 30_000);

  it('control: the client leaving mid-response, the same linger before any shutdown: the response is in the ledger from its response.done', async () => {
    const { tp, c, ledgerPath, upstreamClosed } = await responseRunning();
    c.ws.close();
    await until(upstreamClosed, 10_000, 'the linger ends');
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    expect(tp.logs.filter((l) => l.msg === 'metering: settle failed')).toEqual([]);
    expect(ledgerRows(ledgerPath)).toEqual([['resp_running', 'response.done', false]]);
  }, 30_000);
});
