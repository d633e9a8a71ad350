import { afterEach, describe, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, mint, placeCall, until } from './support.js';

/**
 * SIGTERM (a rolling deploy, a node drain) on an instance that governs phone or browser calls and
 * has no WebSocket client open. The drain (`server.shutdownDrainSec`) waited only for WebSocket
 * sessions: with none, the listeners closed at once and `calls.onShutdown: hangup` hung every live
 * call up immediately, though the README promises that sessions drain for up to shutdownDrainSec
 * and /readyz answers 503 meanwhile. And while WebSocket sessions did drain, the call endpoints
 * still minted secrets and placed new calls, which the end of the drain then hung up: an upgrade got
 * 503 `server_shutting_down`, a call did not.
 */

let tp: TestProxy | null = null;
afterEach(async () => {
  await tp?.stop();
  tp = null;
});

const hangups = (control: ReadonlyArray<{ readonly action: string }>) => control.filter((c) => c.action === 'hangup').length;

describe('the shutdown drain counts governed calls', () => {
  it('lets a live call end on its own within the drain instead of hanging it up at SIGTERM', async () => {
    tp = await callsProxy();
    const { call } = await placeCall(tp);
    // The drain bound is far away: only the call ending lets the shutdown finish.
    const stopped = tp.proxy.shutdown(600_000);
    // The instance is out of rotation but still answers (a load balancer sees 503, not a refused connection).
    const ready = await fetch(`${tp.httpUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { reason: string }).reason).toBe('draining');
    // No new call is admitted while draining.
    const secret = await mint(tp);
    expect(secret.status).toBe(503);
    expect((secret.json['error'] as { code: string }).code).toBe('server_shutting_down');
    // The caller finishes the conversation and hangs up; the proxy never hung up on them.
    expect(hangups(call.control)).toBe(0);
    call.end();
    await stopped;
    expect(hangups(call.control)).toBe(0);
  });

  it('refuses new calls while WebSocket sessions drain, as it refuses upgrades', async () => {
    tp = await callsProxy();
    const client = await tp.client();
    const stopped = tp.proxy.shutdown(600_000);
    await until(async () => (await fetch(`${tp!.httpUrl}/readyz`)).status === 503, 'draining');
    const secret = await mint(tp);
    expect(secret.status).toBe(503);
    expect((secret.json['error'] as { code: string }).code).toBe('server_shutting_down');
    // Retry at once, elsewhere (until 2026-12-07 the refusal carried no Retry-After).
    expect(secret.headers.get('retry-after')).toBe('1');
    client.close();
    await stopped;
  });
});
