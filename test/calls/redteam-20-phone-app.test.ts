import { OpenAIRealtimeSIP, RealtimeAgent, RealtimeSession, tool } from '@openai/agents-realtime';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { SIMULATOR_KEY } from '../../src/main.js';
import type { SimCall } from '../../src/simulator/index.js';
import { policyDir } from '../policies/support.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, ringAccepted, until, WEBHOOK_SECRET } from './support.js';

/**
 * A new user's phone agent moved to the proxy by README *Browser and phone calls*: its SIP trunk
 * points at OpenAI, OpenAI's `realtime.call.incoming` now goes to the proxy (which accepts the call by
 * its route), and the route's `notify` announces the call to the team's app. The app is the one it
 * ran against OpenAI, with the REAL SDKs: `openai`'s `webhooks.unwrap` verifies the announcement,
 * `@openai/agents-realtime`'s `OpenAIRealtimeSIP` attaches a RealtimeSession whose agent has
 * `lookup_order`, a `transfer_to_human` tool (`calls.refer`) and an `end_call` tool (`calls.hangup`).
 * What had to change besides keys and URLs, and what the app sees at each step, is pinned here
 * (README, *Browser and phone calls*, "Moving a phone app").
 */

type Json = Record<string, unknown>;

/** The route's notify secret: the app verifies announcements with it (not the proxy's OpenAI webhook secret). */
const APP_SECRET = `whsec_${Buffer.from('phone-app-notify-secret-0123456789').toString('base64')}`;
const SUPPORT_DESK = 'tel:+14155550100';
const PREMIUM = 'tel:+19005550199';

/** The tenant's policy: the instructions locked, the app's three tools allowed. */
const PHONE_POLICY = `
locks:
  instructions: { locked: "You are the Acme phone agent." }
  tools:
    functions: [lookup_order, transfer_to_human, end_call]
    onViolation: rewrite
guardrails:
  rules:
    - { id: bye, sources: [output], match: { phrases: ["self destruct"] }, action: end_session }
`;

interface AppCall {
  readonly callId: string;
  readonly session: RealtimeSession;
  readonly errors: unknown[];
  readonly notices: Json[];
  readonly closes: Array<{ code: number; reason: string }>;
  readonly serverErrors: Json[];
}

let tp: TestProxy;

/**
 * The team's app, as it runs against OpenAI: its webhook handler verifies the event, accepts the
 * call (`legacyAccept`: the line README says to delete) and attaches its agents-SDK sideband; the
 * webhook is answered once the sideband is connected (500 if anything threw).
 */
async function phoneApp(options: { tenant: string; legacyAccept: boolean }) {
  // Made at the first request: the proxy starts after the app (its routes name the app's URL).
  let made: OpenAI | null = null;
  const sdk = (): OpenAI => (made ??= new OpenAI({ apiKey: tp.key(options.tenant), baseURL: `${tp.httpUrl}/v1`, webhookSecret: APP_SECRET }));
  const calls: AppCall[] = [];
  const handlerErrors: unknown[] = [];
  const lookups: string[] = [];
  const transfers: Array<{ target: string; outcome: string }> = [];
  let transferTarget = SUPPORT_DESK;

  const agentFor = (callId: string) =>
    new RealtimeAgent({
      name: 'phone',
      instructions: 'You are Acme support.',
      tools: [
        tool({
          name: 'lookup_order',
          description: 'Looks an order up.',
          parameters: z.object({ id: z.string() }),
          execute: async ({ id }) => {
            lookups.push(id);
            return `order ${id} shipped`;
          },
        }),
        tool({
          name: 'transfer_to_human',
          description: 'Transfers the caller to a human.',
          parameters: z.object({}),
          execute: async () => {
            const target = transferTarget;
            try {
              await sdk().realtime.calls.refer(callId, { target_uri: target });
              transfers.push({ target, outcome: 'transferred' });
              return 'Transferring you now.';
            } catch (err) {
              // README: a refusal is the proxy's 403 transfer_not_allowed; tell the model plainly,
              // or the SDK's default tool error ("Please try again.") has it retry a refused target.
              if (err instanceof OpenAI.PermissionDeniedError && err.code === 'transfer_not_allowed') {
                transfers.push({ target, outcome: 'transfer_not_allowed' });
                return 'That transfer is not allowed. Do not retry; offer to take a message.';
              }
              throw err;
            }
          },
        }),
        tool({
          name: 'end_call',
          description: 'Hangs up.',
          parameters: z.object({}),
          execute: async () => {
            await sdk().realtime.calls.hangup(callId);
            return 'Goodbye.';
          },
        }),
      ],
    });

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        try {
          const event = await sdk().webhooks.unwrap(Buffer.concat(chunks).toString('utf8'), req.headers as Record<string, string>);
          if (event.type === 'realtime.call.incoming') {
            const callId = event.data.call_id;
            const agent = agentFor(callId);
            if (options.legacyAccept) await sdk().realtime.calls.accept(callId, await OpenAIRealtimeSIP.buildInitialConfig(agent, { model: 'gpt-realtime' }));
            const session = new RealtimeSession(agent, { transport: new OpenAIRealtimeSIP(), model: 'gpt-realtime' });
            const entry: AppCall = { callId, session, errors: [], notices: [], closes: [], serverErrors: [] };
            calls.push(entry);
            session.on('error', (e) => entry.errors.push(e));
            session.on('transport_event', (e) => {
              const ev = e as Json;
              if (ev['type'] === 'rtproxy.notice') entry.notices.push(ev);
              if (ev['type'] === 'error') entry.serverErrors.push(ev);
            });
            // README: the SDK builds OpenAI's URL from callId; the proxy's goes in `url`.
            await session.connect({ apiKey: tp.key(options.tenant), callId, url: `ws://127.0.0.1:${tp.port}/v1/realtime?call_id=${callId}` });
            const ws = (session.transport as unknown as { connectionState: { websocket?: WebSocket } }).connectionState.websocket;
            ws?.addEventListener('close', (e) => entry.closes.push({ code: e.code, reason: e.reason }));
          }
          res.writeHead(200).end();
        } catch (err) {
          handlerErrors.push(err);
          res.writeHead(500).end();
        }
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/openai/webhook`,
    sdk,
    calls,
    handlerErrors,
    lookups,
    transfers,
    transferTo: (target: string) => {
      transferTarget = target;
    },
    close: async () => {
      for (const c of calls) c.session.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let legacy: Awaited<ReturnType<typeof phoneApp>>;
let moved: Awaited<ReturnType<typeof phoneApp>>;
let capped: Awaited<ReturnType<typeof phoneApp>>;

const LEGACY_NUMBER = '+15551230001';
const MOVED_NUMBER = '+15551230002';
const CAPPED_NUMBER = '+15551230003';

const ring = (number: string): Promise<SimCall> => ringAccepted(tp, number);
/** The caller says something (its transcript, as the call's session reads it) and the turn is answered. */
function callerSays(call: SimCall, text: string): void {
  call.sendFromBrowser({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  call.sendFromBrowser({ type: 'response.create' });
}
const transcripts = (call: SimCall) => call.dataChannel.filter((e) => e['type'] === 'response.output_audio_transcript.done').map((e) => String(e['transcript']));
const responsesDone = (call: SimCall) => call.dataChannel.filter((e) => e['type'] === 'response.done').length;
/** The caller's turn, answered in full (the model's tool turn and the answer after it) before the next. */
async function turn(call: SimCall, text: string, answered: (t: string) => boolean): Promise<void> {
  callerSays(call, text);
  await until(() => transcripts(call).some(answered), `the answer to "${text}"`);
  await until(() => responsesDone(call) >= 2 * transcripts(call).length, 'the turn done');
}
async function refusals(code: string, route: string): Promise<number> {
  const text = await (await fetch(`${tp.adminUrl}/metrics`, { headers: { connection: 'close' } })).text();
  const line = text.split('\n').find((l) => l.startsWith('rtproxy_http_refused_total{') && l.includes(`http_route="${route}"`) && l.includes(`rtproxy_refusal_reason="${code}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

beforeAll(async () => {
  legacy = await phoneApp({ tenant: 'acme', legacyAccept: true });
  moved = await phoneApp({ tenant: 'acme', legacyAccept: false });
  capped = await phoneApp({ tenant: 'capped', legacyAccept: false });
  tp = await callsProxy({
    tenants: { acme: { policy: 'phone' }, capped: { policy: 'phone', limits: { dailyTokens: 1 } }, other: {} },
    extra: { config: { policies: { dir: policyDir({ 'phone.yaml': PHONE_POLICY }), watch: false } } },
    calls: {
      sip: {
        webhookSecret: WEBHOOK_SECRET,
        notifyDelivery: { retryPauseMs: 10, attempts: 2 },
        routes: [
          { tenant: 'acme', to: LEGACY_NUMBER, notify: { url: legacy.url, secret: APP_SECRET }, transfer: { allow: [SUPPORT_DESK] } },
          { tenant: 'acme', to: MOVED_NUMBER, notify: { url: moved.url, secret: APP_SECRET }, transfer: { allow: [SUPPORT_DESK] } },
          { tenant: 'capped', to: CAPPED_NUMBER, notify: { url: capped.url, secret: APP_SECRET } },
        ],
      },
    },
  });
});
afterAll(async () => {
  await legacy?.close();
  await moved?.close();
  await capped?.close();
  await tp?.stop();
});

describe('a phone app moved to the proxy with its webhook handler unchanged', () => {
  /**
   * The handler still calls `client.realtime.calls.accept(callId, config)` (the proxy accepted the
   * call by its route already). Until 2026-12-07 that was the client port's bare 404, body
   * `{"error":{"code":"not_found"}}`: the SDK threw `404 {"code":"not_found"}`, nothing saying why,
   * the handler answered 500 to every announcement and the call ran without the app. Now: 409
   * `call_accepted_by_proxy` saying what to do instead, not retried by the SDK, nothing upstream.
   */
  it('calls.accept (and calls.reject) on a call the proxy accepted: a clear 409 saying what to do, not retried, nothing upstream', async () => {
    const call = await ring(LEGACY_NUMBER);
    await until(() => legacy.handlerErrors.length >= 2, 'the announcement and its retry, both failed by the handler');
    const [first] = legacy.handlerErrors;
    expect(first).toBeInstanceOf(OpenAI.ConflictError);
    const err = first as InstanceType<typeof OpenAI.APIError>;
    expect([err.status, err.code]).toEqual([409, 'call_accepted_by_proxy']);
    expect(err.message).toMatch(/call_id=/);
    // The SDK did not retry it (maxRetries 2 by default): one refusal per announcement.
    const accepts = await refusals('call_accepted_by_proxy', '/v1/realtime/calls/:callId/accept');
    expect(accepts).toBe(2);
    const rejected = await legacy.sdk().realtime.calls.reject(call.id, { status_code: 486 }).catch((e: unknown) => e);
    expect([(rejected as InstanceType<typeof OpenAI.APIError>).status, (rejected as InstanceType<typeof OpenAI.APIError>).code]).toEqual([409, 'call_accepted_by_proxy']);
    // Only the proxy's own accept reached OpenAI; the call is live, governed by its route.
    expect(call.control.map((c) => [c.action, c.credential])).toEqual([['accept', SIMULATOR_KEY]]);
    expect(call.state).toBe('active');
    // Another tenant's call: 404 call_not_found, as for /hangup.
    const stranger = new OpenAI({ apiKey: tp.key('other'), baseURL: `${tp.httpUrl}/v1`, maxRetries: 0 });
    const foreign = await stranger.realtime.calls.accept(call.id, { type: 'realtime' }).catch((e: unknown) => e);
    expect([(foreign as InstanceType<typeof OpenAI.APIError>).status, (foreign as InstanceType<typeof OpenAI.APIError>).code]).toEqual([404, 'call_not_found']);
  });
});

describe('the phone app moved as README says (accept removed, the sideband URL the proxy\'s)', () => {
  it('verifies the announcement, attaches, its session.update meets the locks, runs lookup_order, transfers only to an allowed target, hangs up once', async () => {
    const call = await ring(MOVED_NUMBER);
    await until(() => moved.calls.length === 1, 'the app attached its sideband');
    const app = moved.calls[0]!;
    expect(app.callId).toBe(call.id);
    expect(moved.handlerErrors).toEqual([]);

    // What OpenAIRealtimeSIP sends first: the agent's whole config (the one it put in accept before).
    // The instructions lock rewrites it (a notice, no error); the tools stand.
    await until(() => call.dataChannel.some((e) => e['type'] === 'session.updated' && ((e['session'] as Json)['tools'] as unknown[]).length === 3), 'the agent\'s tools on the call');
    const appUpdate = call.received.find((r) => r.from === 'sideband' && r.type === 'session.update' && (r.event['session'] as Json)['tools'] !== undefined)!;
    expect((appUpdate.event['session'] as Json)['instructions']).toBe('You are the Acme phone agent.');
    expect(app.notices.map((n) => (n['notice'] as Json)['code'])).toContain('session_locked');

    // The tool round trip: the model calls lookup_order, the app answers through its sideband.
    await turn(call, 'call:lookup_order {"id":"42"}', (t) => t.includes('order 42 shipped'));
    expect(moved.lookups).toEqual(['42']);

    // The transfer tool: an allowed target reaches OpenAI with the proxy's key; one off the list is
    // refused 403 transfer_not_allowed, nothing upstream, and the model is told so.
    await turn(call, 'call:transfer_to_human {}', (t) => t.includes('Transferring you now'));
    moved.transferTo(PREMIUM);
    await turn(call, 'call:transfer_to_human {}', (t) => t.includes('not allowed'));
    expect(moved.transfers).toEqual([
      { target: SUPPORT_DESK, outcome: 'transferred' },
      { target: PREMIUM, outcome: 'transfer_not_allowed' },
    ]);
    expect(call.control.filter((c) => c.action === 'refer')).toEqual([{ action: 'refer', body: { target_uri: SUPPORT_DESK }, credential: SIMULATOR_KEY }]);

    // end_call: the app's hangup ends the call; the proxy, seeing the call's own end, sends none.
    callerSays(call, 'call:end_call {}');
    await until(() => call.state === 'ended', 'the call ended');
    await until(() => app.closes.length === 1, 'the app\'s sideband closed');
    expect(app.closes).toEqual([{ code: 1000, reason: 'call ended' }]);
    expect(call.control.filter((c) => c.action === 'hangup')).toHaveLength(1);
    expect(app.errors).toEqual([]);
    expect(app.serverErrors).toEqual([]);
  });
});

describe('a call the proxy ends for its cap, as the app sees it', () => {
  /**
   * The proxy's sideband ends the call over the tenant's cap with `budget_exceeded` (logged
   * `call_hangup`). Until 2026-12-07 the app's own sideband on the call got only the upstream's
   * close of the hang-up (1000 "call ended"), exactly what a caller hanging up looks like: the app
   * could not tell the proxy cut the caller off, nor why. Now the calls module closes this
   * process's client sockets of a call the proxy ends with the sideband's error, before the hang-up.
   */
  it('the app\'s sideband is told the call was ended for the cap (error budget_exceeded, close 4002), not a plain 1000', async () => {
    const call = await ring(CAPPED_NUMBER);
    await until(() => capped.calls.length === 1, 'the app attached');
    const app = capped.calls[0]!;
    await until(() => call.dataChannel.some((e) => e['type'] === 'session.updated' && Array.isArray((e['session'] as Json)['tools']) && ((e['session'] as Json)['tools'] as unknown[]).length === 3), 'the agent on the call');
    callerSays(call, 'say: first');
    await until(() => responsesDone(call) >= 1, 'the first answer');
    callerSays(call, 'say: second');
    await until(() => call.state === 'ended', 'the call hung up over the cap');
    await until(() => app.closes.length === 1, 'the app\'s sideband closed');
    expect(tp.logs.some((l) => l['event'] === 'call_hangup' && l['call'] === call.id && String(l['why']).includes('cost cap'))).toBe(true);
    // What the app can read about why its call ended:
    const told = app.serverErrors.map((e) => (e['error'] as Json)['code']);
    expect({ told, close: app.closes[0] }).toEqual({ told: ['budget_exceeded'], close: { code: 4002, reason: expect.any(String) } });
  });

  // Held before the fix too: the app socket's own chain runs the same output rules on the call's events and ends itself.
  it("a guardrail's end_session: the app's sideband gets policy_violation and 4003, the call one hang-up", async () => {
    const call = await ring(MOVED_NUMBER);
    await until(() => moved.calls.some((c) => c.callId === call.id), 'the app attached');
    const app = moved.calls.find((c) => c.callId === call.id)!;
    await until(() => call.dataChannel.some((e) => e['type'] === 'session.updated' && Array.isArray((e['session'] as Json)['tools']) && ((e['session'] as Json)['tools'] as unknown[]).length === 3), 'the agent on the call');
    callerSays(call, 'say: the self destruct sequence starts now');
    await until(() => call.state === 'ended', 'the call hung up by the guardrail');
    await until(() => app.closes.length === 1, 'the app\'s sideband closed');
    expect(call.control.filter((c) => c.action === 'hangup')).toHaveLength(1);
    const told = app.serverErrors.map((e) => (e['error'] as Json)['code']);
    expect({ told, close: app.closes[0]!.code }).toEqual({ told: ['policy_violation'], close: 4003 });
  });
});
