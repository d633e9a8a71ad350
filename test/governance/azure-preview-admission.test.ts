import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileConfig, ConfigError } from '../../src/config/compile.js';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { policyDir } from '../policies/support.js';
import { TestClient } from '../support/client.js';
import { defaultKey, startTestProxy, type TestProxy } from '../support/harness.js';
import { until, type Json } from './support.js';

/**
 * The Azure preview protocol (`upstream.azure.apiVersion`) and session locks, found 2026-12-05: a
 * locked tenant's session was dialled, the GA-shaped locked state sent upstream, and the session
 * refused only at the upstream's beta-shaped `session.created`. It is refused at admission now
 * (nothing dialled), and `check-config` reports the combination (every such session would be refused).
 */
const UNLOCKED = 'version: 1\nguardrails:\n  rules: [{ id: no-apple, sources: [output], match: { phrases: [apple] }, action: log }]\n';
const LOCKED = 'version: 2\nlocks:\n  voice: { allow: [marin], default: marin }\n';
const MAIL = 'guardrails:\n  rules: [{ id: mail, sources: [output], match: { pii: [email] }, action: redact }]\n';
const PREVIEW = { provider: 'azure', apiKey: 'azure-key', azure: { endpoint: 'http://127.0.0.1:1', deployment: 'prod-realtime', model: 'gpt-realtime', apiVersion: '2025-04-01-preview' } } as const;

/** A beta-speaking upstream that counts the connections it is offered. */
let wss: WebSocketServer;
let dialled = 0;
let tp: TestProxy;
let dir: string;

beforeAll(async () => {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  wss.on('connection', (ws) => {
    dialled++;
    ws.on('error', () => undefined);
    ws.send(JSON.stringify({ type: 'session.created', event_id: 'ev_1', session: { object: 'realtime.session', id: 'sess_b', model: 'gpt-4o-realtime-preview', modalities: ['text', 'audio'], voice: 'alloy' } }));
  });
  const origin = `http://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  // The proxy starts only with tenants that can run here (see check-config below): `later` gets its locks by a reload.
  dir = policyDir({ 'live.yaml': UNLOCKED, 'mail.yaml': MAIL });
  tp = await startTestProxy({
    tenants: { later: { policy: 'live' }, open: { policy: 'mail' } },
    config: {
      upstream: { ...PREVIEW, azure: { ...PREVIEW.azure, endpoint: origin } },
      policies: { dir, watch: true, watchDebounceMs: 20 },
    },
  });
});
afterAll(async () => {
  await tp?.stop();
  for (const ws of wss?.clients ?? []) ws.terminate();
  await new Promise<void>((resolve) => (wss ? wss.close(() => resolve()) : resolve()));
});

/** A header client's refused upgrade: status and JSON body (an accepted upgrade fails the test). */
function refusal(url: string, headers: Record<string, string>): Promise<{ status: number; body: { error: Json } }> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve, reject) => {
    ws.on('error', () => undefined);
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the upgrade was accepted'));
    });
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { error: Json } }));
    });
  });
}

describe('Azure preview protocol: a locked tenant is refused at admission', () => {
  it('after a reload gives the tenant locks, a header client gets HTTP 500 governance_failed and nothing is dialled', async () => {
    // Before the reload the tenant runs (and proves the counter counts).
    const before = await tp.client({ tenant: 'later' });
    await before.next('session.created');
    await until(() => dialled === 1, 'first dial');
    before.close();

    writeFileSync(join(dir, 'live.yaml'), LOCKED);
    await expect.poll(() => tp.logs.some((l) => l.msg === 'policy reloaded' && l['version'] === '2'), { timeout: 5000 }).toBe(true);

    const res = await refusal(tp.url, { authorization: `Bearer ${defaultKey('later')}` });
    expect(res.status).toBe(500);
    const body = res.body;
    expect(body.error['code']).toBe('governance_failed');
    expect(body.error['type']).toBe('server_error');
    expect(String(body.error['message'])).toMatch(/preview protocol.*policy live.*refused before the upstream was dialled.*azure\.apiVersion/);
    expect(body.error['details']).toEqual({ policy: 'live', protocol: 'preview' });

    // A session of another tenant is dialled after it: the refused one never was.
    const open = await tp.client({ tenant: 'open' });
    await open.next('session.created');
    await until(() => dialled === 2, 'second dial');
    open.close();
    expect(dialled).toBe(2);
    const refused = tp.logs.filter((l) => l['event'] === 'session_refused' && l['tenant'] === 'later');
    expect(refused.map((l) => l['code'])).toEqual(['governance_failed']);
  });

  it('a browser client (subprotocols) gets the error as its first event and close 4003 (not retried), nothing dialled', async () => {
    const dialledBefore = dialled;
    const c = new TestClient(tp.url, { protocols: ['realtime', `openai-insecure-api-key.${defaultKey('later')}`] });
    const closed = await c.closed;
    expect(closed).toEqual({ code: 4003, reason: 'governance_failed' });
    expect(c.events.map((e) => e.type)).toEqual(['error']);
    const error = c.events[0]!['error'] as Json;
    expect(error['code']).toBe('governance_failed');
    expect(String(error['message'])).toMatch(/refused before the upstream was dialled/);
    const open = await tp.client({ tenant: 'open' });
    await open.next('session.created');
    await until(() => dialled === dialledBefore + 1, 'the open tenant dialled');
    open.close();
    expect(dialled).toBe(dialledBefore + 1);
  });
});

describe('check-config: locks on a preview-protocol upstream', () => {
  const compile = (input: ConfigInput) => compileConfig(parseConfig(input, '(test)', {}), { file: '(test)', baseDir: dir });
  const tenants = (policy: string | null) => ({ t1: { keys: [{ key: defaultKey('t1') }], ...(policy !== null ? { policy } : {}) } });
  const problemsOf = async (input: ConfigInput): Promise<string> => {
    try {
      await compile(input);
      return '';
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
  };

  it('a tenant whose policy holds locks is an error naming the tenant, the policy and the fix', async () => {
    const lockedDir = policyDir({ 'locked.yaml': LOCKED, 'mail.yaml': MAIL });
    const message = await problemsOf({ upstream: PREVIEW, policies: { dir: lockedDir, watch: false }, tenants: tenants('locked') });
    expect(message).toMatch(/tenants\.t1\.policy: policy "locked" holds session state .* Azure preview protocol \(upstream\.azure\.apiVersion\): every session of this tenant would be refused/);
    expect(message).toMatch(/fix: leave upstream\.azure\.apiVersion unset/);
  });

  it('the default policy counts for a tenant without one; a forced truncation.upstream counts as a lock', async () => {
    const d = policyDir({ 'default.yaml': 'truncation:\n  upstream: { type: retention_ratio, retention_ratio: 0.8 }\n' });
    expect(await problemsOf({ upstream: PREVIEW, policies: { dir: d, watch: false }, tenants: tenants(null) })).toMatch(/tenants\.t1\.policy: policy "default" holds session state/);
  });

  it('no problem: a tenant without locks on the preview protocol, or a locked tenant on the GA endpoint', async () => {
    const d = policyDir({ 'locked.yaml': LOCKED, 'mail.yaml': MAIL });
    expect(await problemsOf({ upstream: PREVIEW, policies: { dir: d, watch: false }, tenants: tenants('mail') })).toBe('');
    const { apiVersion: _preview, ...ga } = PREVIEW.azure;
    expect(await problemsOf({ upstream: { ...PREVIEW, azure: ga }, policies: { dir: d, watch: false }, tenants: tenants('locked') })).toBe('');
  });
});
