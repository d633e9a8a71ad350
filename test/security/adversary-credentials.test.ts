import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { callsProxy, post } from '../calls/support.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { rawRequest, upgradeRequest } from './support.js';

/**
 * Adversary review (2026-12-05): one upgrade carrying two different proxy keys. The README refuses a
 * repeated `Authorization` or `api-key` header (400) "instead of letting one of them win", so that
 * a front end that authenticates, logs or rate-limits by one credential cannot be steered into
 * a session billed to another. The same ambiguity through other carriers is resolved silently
 * today: `Authorization` beats `api-key`, and the first `openai-insecure-api-key.` subprotocol beats
 * a second one.
 */

describe('adversary: two credentials in one upgrade', () => {
  let tp: TestProxy;

  beforeAll(async () => {
    tp = await startTestProxy({ tenants: { acme: {}, globex: {} } });
  });

  afterAll(async () => {
    await tp?.stop();
  });

  it('Authorization and api-key naming different keys are refused (400), not Authorization-wins', async () => {
    const status = await rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', [`Authorization: Bearer ${tp.key('acme')}`, `api-key: ${tp.key('globex')}`]));
    expect(status).toMatch(/^HTTP\/1\.1 400/);
    // Control: either alone opens a session.
    expect(await rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', [`api-key: ${tp.key('globex')}`]))).toMatch(/^HTTP\/1\.1 101/);
  });

  it('every other pair of carriers is refused (400) too, the same key twice as well (as a repeated header is)', async () => {
    const sub = (k: string) => `Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.${k}`;
    for (const headers of [
      [`Authorization: Bearer ${tp.key('acme')}`, sub(tp.key('globex'))],
      [`api-key: ${tp.key('acme')}`, sub(tp.key('globex'))],
      [`Authorization: Bearer ${tp.key('acme')}`, `api-key: ${tp.key('acme')}`],
    ]) {
      expect(await rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', headers)), headers.join(' + ')).toMatch(/^HTTP\/1\.1 400/);
    }
  });

  it('two openai-insecure-api-key subprotocols with different keys are refused (error + 4000), not first-wins', async () => {
    const ws = new WebSocket(tp.url, ['realtime', `openai-insecure-api-key.${tp.key('acme')}`, `openai-insecure-api-key.${tp.key('globex')}`]);
    const events: { type: string; error?: { code: string } }[] = [];
    ws.on('message', (d) => events.push(JSON.parse(String(d)) as { type: string }));
    ws.on('error', () => undefined);
    const code = await new Promise<number>((resolve) => {
      ws.on('close', (c) => resolve(c));
      ws.on('message', () => {
        if (events.some((e) => e.type === 'session.created')) ws.close();
      });
    });
    expect(events.map((e) => e.type)).not.toContain('session.created');
    expect(events.find((e) => e.type === 'error')?.error?.code).toBe('invalid_request');
    expect(code).toBe(4000);
  });
});

describe('adversary: two credentials on a tenant HTTP route (client port)', () => {
  let tp: TestProxy;

  beforeAll(async () => {
    tp = await callsProxy({ tenants: { acme: {}, globex: {} } });
  });

  afterAll(async () => {
    await tp?.stop();
  });

  it('POST /v1/realtime/client_secrets with Authorization and api-key naming different keys is refused 400 invalid_request, nothing minted', async () => {
    const body = JSON.stringify({ session: { type: 'realtime', model: 'gpt-realtime' } });
    const r = await post(`${tp.httpUrl}/v1/realtime/client_secrets`, { key: tp.key('acme'), contentType: 'application/json', body, headers: { 'api-key': tp.key('globex') } });
    expect([r.status, (r.json['error'] as { code?: string } | undefined)?.code]).toEqual([400, 'invalid_request']);
    expect(tp.logs.filter((l) => l['event'] === 'client_secret_minted')).toEqual([]);
    // Control: one key mints.
    expect((await post(`${tp.httpUrl}/v1/realtime/client_secrets`, { key: tp.key('acme'), contentType: 'application/json', body })).status).toBe(200);
  });
});
