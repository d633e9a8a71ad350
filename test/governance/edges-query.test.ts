import { request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { policyDir } from '../policies/support.js';
import { startTestProxy, TestClient, type TestProxy } from '../support/harness.js';
import { recordingUpstream, type RecordingUpstream } from './edges-support.js';

/**
 * Finding 8 of issue 10: the client chooses none of the upstream URL beyond `model` and `intent`
 * (and `call_id` where enabled); Azure deployments come from config; the model the proxy prices,
 * allows and locks is the model it dials.
 */

let upstream: RecordingUpstream;
const proxies: TestProxy[] = [];

beforeAll(async () => {
  upstream = await recordingUpstream();
});
afterAll(async () => {
  await upstream?.close();
});
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

async function proxy(config: Parameters<typeof startTestProxy>[0] = {}): Promise<TestProxy> {
  const tp = await startTestProxy(config);
  proxies.push(tp);
  return tp;
}

const openai = (extra: Record<string, unknown> = {}) => ({ upstream: { provider: 'openai' as const, url: upstream.url, apiKey: 'sk-upstream', ...extra } });

/** Connects with `query` (must be admitted); resolves with the upstream URL it caused. */
async function dial(tp: TestProxy, query: string): Promise<{ url: string }> {
  const before = upstream.connections.length;
  const c = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?${query}`, { headers: { authorization: `Bearer ${tp.key()}` } });
  await c.opened;
  const conn = await upstream.connection(before + 1);
  c.close();
  return { url: conn.url };
}

/** An upgrade request answered with an HTTP error: its status and JSON body. */
function upgradeRefusal(tp: TestProxy, query: string): Promise<{ status: number; body: { error: { code: string; message: string; param: string | null } } }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: tp.port,
      path: `/v1/realtime?${query}`,
      headers: { authorization: `Bearer ${tp.key()}`, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      reject(new Error(`upgrade accepted for ?${query}`));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error: { code: string; message: string; param: string | null } } }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function refused(tp: TestProxy, query: string): Promise<{ status: number; code: string; param: string | null }> {
  const before = upstream.connections.length;
  const { status, body } = await upgradeRefusal(tp, query);
  expect(upstream.connections.length).toBe(before);
  return { status, code: body.error.code, param: body.error.param };
}

describe('upstream query parameters come from an allowlist (issue 10, finding 8)', () => {
  it('api_key, deployment, api-version and unknown parameters never reach the upstream', async () => {
    const tp = await proxy({ config: openai() });
    const r = await dial(tp, `model=gpt-realtime&api_key=${tp.key()}&deployment=gpt-realtime-2&api-version=2024-10-01&foo=bar&Model=x&model%00=y&api%5Fkey=z`);
    const url = new URL(r.url, 'http://x');
    expect([...url.searchParams.keys()]).toEqual(['model']);
    expect(url.searchParams.get('model')).toBe('gpt-realtime');
    expect(r.url).not.toContain(tp.key());
  });

  it('?model=x&model (a repeated or empty parameter) is refused with 400 before the upgrade', async () => {
    const tp = await proxy({ config: openai() });
    expect(await refused(tp, 'model=gpt-realtime&model')).toEqual({ status: 400, code: 'invalid_request', param: 'model' });
    expect(await refused(tp, 'model=gpt-realtime&model=gpt-realtime-mini')).toEqual({ status: 400, code: 'invalid_request', param: 'model' });
    expect(await refused(tp, 'model=')).toEqual({ status: 400, code: 'invalid_request', param: 'model' });
    expect(await refused(tp, 'intent=transcription&intent=transcription')).toEqual({ status: 400, code: 'invalid_request', param: 'intent' });
    expect(await refused(tp, 'intent=other')).toEqual({ status: 400, code: 'invalid_request', param: 'intent' });
    // A percent-encoded name is the same parameter.
    expect(await refused(tp, 'model=gpt-realtime&mod%65l=gpt-realtime-2')).toEqual({ status: 400, code: 'invalid_request', param: 'model' });
  });

  it('call_id is refused unless upstream.allowCallId is set, and then forwarded', async () => {
    const off = await proxy({ config: openai() });
    expect(await refused(off, 'call_id=rtc_123')).toEqual({ status: 400, code: 'invalid_request', param: 'call_id' });
    const on = await proxy({ config: openai({ allowCallId: true }) });
    const r = (await dial(on, 'call_id=rtc_123&api_key=zzz'));
    expect(new URL(r.url, 'http://x').search).toBe('?call_id=rtc_123');
  });

  it('contradictory parameters are refused with 400 before the upgrade: model with intent=transcription, model or intent on a call_id socket', async () => {
    // Regression (2026-12-07): forwarded as given, the upstream refused them only after the upgrade
    // (one of model, intent, call_id), and a call's socket forwarded a model it does not run.
    const tp = await proxy({ config: openai({ allowCallId: true }) });
    const refusal = async (query: string) => {
      const { status, body } = await upgradeRefusal(tp, query);
      return { status, code: body.error.code, param: body.error.param, message: body.error.message };
    };
    const before = upstream.connections.length;
    const transcription = { status: 400, code: 'invalid_request', param: 'model', message: "'model' cannot be given with intent=transcription: a transcription session names its model in session.audio.input.transcription." };
    expect(await refusal('model=gpt-realtime&intent=transcription')).toEqual(transcription);
    expect(await refusal('intent=transcription&model=gpt-realtime')).toEqual(transcription);
    const onCall = (param: string) => ({ status: 400, code: 'invalid_request', param, message: `A socket attaching to a call ('call_id') runs the call's session: '${param}' cannot be given with it.` });
    expect(await refusal('call_id=rtc_123&model=gpt-realtime')).toEqual(onCall('model'));
    expect(await refusal('model=gpt-realtime&call_id=rtc_123')).toEqual(onCall('model'));
    expect(await refusal('call_id=rtc_123&intent=transcription')).toEqual(onCall('intent'));
    expect(await refusal('call_id=rtc_123&intent=transcription&model=gpt-realtime')).toEqual(onCall('model'));
    // An unknown intent is named as such first.
    expect((await refusal('call_id=rtc_123&intent=other')).param).toBe('intent');
    expect(upstream.connections.length).toBe(before);
    // Each alone still dials.
    expect(new URL((await dial(tp, 'call_id=rtc_123')).url, 'http://x').search).toBe('?call_id=rtc_123');
    expect(new URL((await dial(tp, 'intent=transcription')).url, 'http://x').search).toBe('?intent=transcription');
    expect(new URL((await dial(tp, 'model=gpt-realtime')).url, 'http://x').search).toBe('?model=gpt-realtime');
  });

  it('a policy alias lookup sees own keys only: ?model=constructor is not an alias of Object', async () => {
    const tp = await proxy({
      tenants: { acme: { policy: 'aliased' } },
      config: { ...openai(), policies: { dir: policyDir({ 'aliased.yaml': 'locks:\n  model: { allow: [gpt-realtime], aliases: { gpt-realtime-mini: gpt-realtime } }\n' }), watch: false } },
    });
    expect(await refused(tp, 'model=constructor')).toEqual({ status: 403, code: 'model_not_allowed', param: null });
    expect((await dial(tp, 'model=gpt-realtime-mini')).url).toBe('/v1/realtime?model=gpt-realtime');
  });

  it('intent=transcription is forwarded alone', async () => {
    const tp = await proxy({ config: openai() });
    const r = (await dial(tp, 'intent=transcription&deployment=x'));
    expect(new URL(r.url, 'http://x').search).toBe('?intent=transcription');
  });
});

describe('Azure: GA URL, deployments from config only, the dialled model governs', () => {
  const azure = (extra: Record<string, unknown> = {}) => ({
    upstream: {
      provider: 'azure' as const,
      apiKey: 'azure-key',
      azure: { endpoint: upstream.origin, deployment: 'prod-realtime', model: 'gpt-realtime', deployments: { 'gpt-realtime-mini': 'prod-mini' }, ...extra },
    },
  });

  it('dials /openai/v1/realtime?model=<deployment> with no api-version; client deployment/api-version are ignored', async () => {
    const tp = await proxy({ config: azure() });
    const r = (await dial(tp, 'model=gpt-realtime-mini&deployment=prod-realtime&api-version=2024-10-01-preview&api_key=k'));
    expect(r.url).toBe('/openai/v1/realtime?model=prod-mini');
    const conn = upstream.connections[upstream.connections.length - 1]!;
    expect(conn.headers['api-key']).toBe('azure-key');
    expect(conn.headers['authorization']).toBeUndefined();
  });

  it('the session model is the model of the deployment dialled (pricing, allowlist, locks)', async () => {
    const tp = await proxy({ config: azure() });
    // No model: the default deployment, governed as the model it runs.
    const r = (await dial(tp, 'deployment=prod-mini'));
    expect(r.url).toBe('/openai/v1/realtime?model=prod-realtime');
    await expect.poll(() => tp.logs.find((l) => l.msg === 'session start')?.['model']).toBe('gpt-realtime');
    // The deployment name itself maps to its model.
    const byName = (await dial(tp, 'model=prod-realtime'));
    expect(byName.url).toBe('/openai/v1/realtime?model=prod-realtime');
    expect(tp.logs.filter((l) => l.msg === 'session start').map((l) => l['model'])).toEqual(['gpt-realtime', 'gpt-realtime']);
  });

  it('a model no deployment serves is refused (it can no longer be billed as another)', async () => {
    const tp = await proxy({ config: azure() });
    const r = await refused(tp, 'model=gpt-realtime-2&deployment=prod-mini');
    expect(r).toEqual({ status: 400, code: 'invalid_request', param: 'model' });
    // Names of Object.prototype members are no deployments.
    for (const model of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expect(await refused(tp, `model=${model}`)).toEqual({ status: 400, code: 'invalid_request', param: 'model' });
    }
  });

  it('the model allowlist sees the dialled model: a cheap model name cannot reach an expensive deployment', async () => {
    const tp = await proxy({
      tenants: { acme: { policy: 'mini-only' } },
      config: { ...azure(), policies: { dir: policyDir({ 'mini-only.yaml': 'locks:\n  model: { allow: [gpt-realtime-mini] }\n' }), watch: false } },
    });
    // The old trick: ask for mini, name the expensive deployment.
    const mini = (await dial(tp, 'model=gpt-realtime-mini&deployment=prod-realtime'));
    expect(mini.url).toBe('/openai/v1/realtime?model=prod-mini');
    // Asking for nothing dials the default deployment, whose model the policy refuses.
    const c = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime`, { headers: { authorization: `Bearer ${tp.key()}` } });
    expect(await c.refused).toBe(403);
  });

  it('the preview protocol only when azure.apiVersion is configured', async () => {
    const tp = await proxy({ config: azure({ apiVersion: '2025-04-01-preview' }) });
    const r = (await dial(tp, 'model=gpt-realtime-mini&api-version=1999-01-01'));
    expect(r.url).toBe('/openai/realtime?api-version=2025-04-01-preview&deployment=prod-mini');
  });
});

describe('refusals carry the Realtime error shape', () => {
  it('a refused query answers JSON with code, message and param', async () => {
    const tp = await proxy({ config: openai() });
    const { status, body } = await upgradeRefusal(tp, 'model=a&model=b');
    expect(status).toBe(400);
    expect(body.error.code).toBe('invalid_request');
    expect(body.error.param).toBe('model');
    expect(body.error.message).toContain("'model' is given more than once");
  });
});
