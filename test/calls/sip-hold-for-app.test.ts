import { OpenAIRealtimeSIP, RealtimeAgent, RealtimeSession } from '@openai/agents-realtime';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileConfig, ConfigError } from '../../src/config/compile.js';
import { parseConfig } from '../../src/config/load.js';
import type { SimCall } from '../../src/simulator/index.js';
import { appendEvents, speechThenSilence, type TestProxy } from '../support/harness.js';
import { callsProxy, ringAccepted, until, WEBHOOK_SECRET, dataChannelCount, releasedLogs } from './support.js';

/**
 * A route with `notify` keeps its call's responses held (turn detection's create_response off, as
 * the call was accepted) until the tenant's app attached and its first session.update took effect,
 * at most `notify.waitForAppMs`, not at all once the announcement failed. Until 2026-12-07 the
 * proxy turned them on as soon as it governed the call: a caller who spoke before the app's
 * agents-SDK sideband attached was answered under the route's session, without the app's
 * instructions and tools (README, *Moving a phone app*). The app here is the real SDKs': `openai`
 * verifies the announcement, `@openai/agents-realtime`'s OpenAIRealtimeSIP attaches.
 */

type Json = Record<string, unknown>;

const APP_SECRET = `whsec_${Buffer.from('hold-for-app-notify-secret-0123456789').toString('base64')}`;
const APP_INSTRUCTIONS = 'You are the Acme phone agent, from the app.';
const ROUTE_INSTRUCTIONS = 'You are the route\'s fallback.';

const GATED = '+15551240001';
const NEVER = '+15551240002';
const NO_WAIT = '+15551240003';
const FAILING = '+15551240004';

let tp: TestProxy;

/**
 * The tenant's app: `/gated` holds each announcement until `release`, then verifies it and attaches
 * its agents-SDK sideband (as the team's handler does against OpenAI, accept removed); `/ok` answers
 * 200 and never attaches (an app that is down behind a healthy front); `/fail` answers 500.
 */
async function tenantApp() {
  let made: OpenAI | null = null;
  const sdk = (): OpenAI => (made ??= new OpenAI({ apiKey: tp.key('acme'), baseURL: `${tp.httpUrl}/v1`, webhookSecret: APP_SECRET }));
  const gated: Array<{ body: string; req: IncomingMessage; res: ServerResponse }> = [];
  const sessions: RealtimeSession[] = [];
  const errors: unknown[] = [];
  const received: string[] = [];
  const attach = async (body: string, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      const event = await sdk().webhooks.unwrap(body, req.headers as Record<string, string>);
      if (event.type === 'realtime.call.incoming') {
        const callId = event.data.call_id;
        const session = new RealtimeSession(new RealtimeAgent({ name: 'phone', instructions: APP_INSTRUCTIONS }), { transport: new OpenAIRealtimeSIP(), model: 'gpt-realtime' });
        sessions.push(session);
        session.on('error', (e) => errors.push(e));
        await session.connect({ apiKey: tp.key('acme'), callId, url: `ws://127.0.0.1:${tp.port}/v1/realtime?call_id=${callId}` });
      }
      res.writeHead(200).end();
    } catch (err) {
      errors.push(err);
      res.writeHead(500).end();
    }
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      received.push(path);
      if (path === '/gated') return void gated.push({ body: Buffer.concat(chunks).toString('utf8'), req, res });
      res.writeHead(path === '/fail' ? 500 : 200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: (path: string) => `${base}${path}`,
    received,
    gatedCount: () => gated.length,
    errors,
    /** The held announcements go through: the app attaches to each call. */
    release: async () => {
      await Promise.all(gated.splice(0).map((g) => attach(g.body, g.req, g.res)));
    },
    close: async () => {
      for (const s of sessions) s.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let app: Awaited<ReturnType<typeof tenantApp>>;

const ring = (number: string): Promise<SimCall> => ringAccepted(tp, number);
/** The caller speaks one turn (server VAD commits it: speech, then silence). */
function callerSpeaks(call: SimCall): void {
  for (const ev of appendEvents(speechThenSilence(600, 900))) call.sendFromBrowser(ev);
}
const index = (call: SimCall, pred: (e: Json) => boolean) => call.dataChannel.findIndex(pred);
/** The session.update events the proxy's governing sideband sent, in order. */
const sidebandUpdates = (call: SimCall) => call.received.filter((r) => r.from === 'sideband' && r.type === 'session.update').map((r) => r.event['session'] as Json);
const createResponseOf = (session: Json) => (((session['audio'] as Json | undefined)?.['input'] as Json | undefined)?.['turn_detection'] as Json | undefined)?.['create_response'];

beforeAll(async () => {
  app = await tenantApp();
  const notify = (path: string, waitForAppMs?: number) => ({ url: app.url(path), secret: APP_SECRET, ...(waitForAppMs === undefined ? {} : { waitForAppMs }) });
  const session = { instructions: ROUTE_INSTRUCTIONS };
  tp = await callsProxy({
    tenants: { acme: {} },
    calls: {
      sip: {
        webhookSecret: WEBHOOK_SECRET,
        notifyDelivery: { retryPauseMs: 10, attempts: 2, timeoutMs: 60_000 },
        routes: [
          // Far beyond the test: only the app's update (or a failed announcement) ends these waits.
          { tenant: 'acme', to: GATED, session, notify: notify('/gated', 60_000) },
          { tenant: 'acme', to: NEVER, session, notify: notify('/ok', 2500) },
          { tenant: 'acme', to: NO_WAIT, session, notify: notify('/ok', 0) },
          { tenant: 'acme', to: FAILING, session, notify: notify('/fail', 60_000) },
        ],
      },
    },
  });
});
afterAll(async () => {
  await app?.close();
  await tp?.stop();
});

describe('a SIP call holds its answers for the tenant\'s app (notify.waitForAppMs)', () => {
  it('the caller speaks before the app attaches: nothing answers until the app\'s session.update took effect, then exactly one answer, with the app\'s instructions', async () => {
    const call = await ring(GATED);
    // Announced (its sideband read session.created): the app has not attached.
    await until(() => app.gatedCount() === 1, 'the announcement at the app');
    expect(createResponseOf(call.sessionRequest!)).toBe(false);
    callerSpeaks(call);
    await until(() => dataChannelCount(call, 'input_audio_buffer.committed') === 1, 'the caller\'s turn committed');
    // Held: no answer under the route's session, and the proxy turned nothing back on.
    expect(dataChannelCount(call, 'response.created')).toBe(0);
    expect(sidebandUpdates(call).some((s) => createResponseOf(s) === true)).toBe(false);

    await app.release();
    await until(() => dataChannelCount(call, 'response.done') === 1, 'the held turn answered');
    // The app's config was in effect before the answer started.
    const appConfig = index(call, (e) => e['type'] === 'session.updated' && (e['session'] as Json)['instructions'] === APP_INSTRUCTIONS);
    expect(appConfig).toBeGreaterThanOrEqual(0);
    expect(appConfig).toBeLessThan(index(call, (e) => e['type'] === 'response.created'));
    expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'app_updated', heldTurn: true, responses: 'on' }]);

    // Exactly one: the caller's next turn is the second answer, none came in between.
    call.sendFromBrowser({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: again' }] } });
    call.sendFromBrowser({ type: 'response.create' });
    await until(() => dataChannelCount(call, 'response.done') === 2, 'the next turn answered');
    expect(dataChannelCount(call, 'response.created')).toBe(2);
    expect(app.errors).toEqual([]);
  });

  it('an app that never attaches: the turn spoken meanwhile is answered once waitForAppMs elapsed, once', async () => {
    const call = await ring(NEVER);
    await until(() => app.received.filter((p) => p === '/ok').length === 1, 'the announcement delivered');
    callerSpeaks(call);
    await until(() => dataChannelCount(call, 'input_audio_buffer.committed') === 1, 'the caller\'s turn committed');
    expect(dataChannelCount(call, 'response.created')).toBe(0);
    await until(() => dataChannelCount(call, 'response.done') === 1, 'the held turn answered after the bound');
    expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'wait_elapsed', heldTurn: true, responses: 'on' }]);
    expect(createResponseOf(sidebandUpdates(call).at(-1)!)).toBe(true);
    call.sendFromBrowser({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: again' }] } });
    call.sendFromBrowser({ type: 'response.create' });
    await until(() => dataChannelCount(call, 'response.done') === 2, 'the next turn answered');
    expect(dataChannelCount(call, 'response.created')).toBe(2);
  });

  it('waitForAppMs 0: responses on as the sideband starts (as before), a turn answered by turn detection, nothing waited for', async () => {
    const call = await ring(NO_WAIT);
    await until(() => app.received.filter((p) => p === '/ok').length === 2, 'the announcement delivered');
    await until(() => sidebandUpdates(call).length >= 1, 'the sideband\'s first update upstream');
    expect(createResponseOf(sidebandUpdates(call)[0]!)).toBe(true);
    callerSpeaks(call);
    await until(() => dataChannelCount(call, 'response.done') === 1, 'the turn answered');
    expect(dataChannelCount(call, 'response.created')).toBe(1);
    expect(releasedLogs(tp, call.id)).toEqual([]);
  });

  it('the announcement failed: no wait, responses on at once', async () => {
    const call = await ring(FAILING);
    await until(() => tp.logs.some((l) => l['event'] === 'sip_notify_failed' && l['call'] === call.id), 'the announcement failed');
    await until(() => releasedLogs(tp, call.id).length === 1, 'the hold released');
    expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'no_app', heldTurn: false, responses: 'on' }]);
    // Sent as the log line was written: its arrival is awaited, then the caller speaks under it.
    await until(() => sidebandUpdates(call).some((s) => createResponseOf(s) === true), 'responses turned on upstream');
    callerSpeaks(call);
    await until(() => dataChannelCount(call, 'response.done') === 1, 'the turn answered');
    expect(dataChannelCount(call, 'response.created')).toBe(1);
  });
});

describe('notify.waitForAppMs in the config', () => {
  const config = (notify: Record<string, unknown>, allowCallId: boolean) => ({
    upstream: { provider: 'simulator', allowCallId },
    tenants: { acme: { keys: [{ key: 'rpk_test_acme_0123456789abcdef' }] } },
    calls: { enabled: true, sip: { routes: [{ tenant: 'acme', notify: { url: 'https://app.example.com/h', secret: APP_SECRET, ...notify } }] } },
  });
  const compiled = (raw: Record<string, unknown>) => compileConfig(parseConfig(raw, 'proxy.yaml'), { file: 'proxy.yaml', baseDir: process.cwd() }).then(() => null, (err: unknown) => err);

  it('defaults to 5000 ms, takes 0 to 60000, refuses anything else', () => {
    expect(parseConfig(config({}, true), 'proxy.yaml').calls.sip.routes[0]!.notify?.waitForAppMs).toBe(5000);
    expect(parseConfig(config({ waitForAppMs: 0 }, true), 'proxy.yaml').calls.sip.routes[0]!.notify?.waitForAppMs).toBe(0);
    for (const bad of [-1, 1.5, 60_001, '5000']) expect(() => parseConfig(config({ waitForAppMs: bad }, true), 'proxy.yaml')).toThrow(/calls\.sip\.routes\.0\.notify\.waitForAppMs/);
  });

  it('refuses a wait for an app that cannot attach (upstream.allowCallId false); 0 is taken there', async () => {
    const refused = await compiled(config({}, false));
    expect(refused).toBeInstanceOf(ConfigError);
    expect(String(refused)).toContain("calls.sip.routes.0.notify.waitForAppMs: the app's sideband cannot attach while upstream.allowCallId is false");
    expect(await compiled(config({ waitForAppMs: 0 }, false))).toBeNull();
    expect(await compiled(config({}, true))).toBeNull();
  });
});
