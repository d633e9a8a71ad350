import pino from 'pino';
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { systemClock } from '../../src/main.js';
import { ChainTemplate } from '../../src/pipeline/chain.js';
import { ProxyError } from '../../src/protocol/errors.js';
import { RelaySession } from '../../src/relay/session.js';
import { TenantResolver } from '../../src/tenants/resolver.js';
import type { Tenant } from '../../src/tenants/tenant.js';
import { upstreamTarget } from '../../src/upstream/dial.js';
import { scriptedUpstream, sessionCreated } from '../resilience/support/faulty-upstream.js';

/*
 * Before the governor hangs a capped call up it waits (`Sideband.idle`) for the responses metering
 * cancelled to end: their response.done bills them as OpenAI does, where a hang-up landing first
 * would cut them short and leave them billed at their reservation. A call's sideband (a
 * RelaySession without a client) against a scripted upstream that answers when the test says.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function sideband(): Promise<{ session: RelaySession; upstream: () => WebSocket }> {
  let ws: WebSocket | null = null;
  const up = await scriptedUpstream((socket, n) => {
    ws = socket;
    socket.send(sessionCreated(n));
  });
  cleanups.push(() => up.close());
  const config = parseConfig(
    {
      upstream: { provider: 'openai', url: up.url, apiKey: 'sk-x', allowCallId: true },
      metering: { enabled: false },
      tenants: { acme: { keys: [{ key: 'rpk_idle_test_key_0123456789' }] } },
    },
    '(idle test)',
    {},
  );
  const session = new RelaySession(
    {
      id: 'rpc_idletest',
      tenant: new TenantResolver(config).tenants.get('acme') as Tenant,
      model: 'gpt-realtime',
      query: new Map([['model', 'gpt-realtime']]),
      callId: 'rtc_idle',
      target: upstreamTarget(config.upstream, new Map([['model', 'gpt-realtime']]), new Map()),
      config,
      template: new ChainTemplate([]),
      clock: systemClock,
      log: pino({ level: 'silent' }),
      onEnded: () => undefined,
    },
    null,
  );
  cleanups.push(() => {
    if (!session.ended) session.close(new ProxyError('server_shutting_down'));
  });
  session.start();
  const deadline = Date.now() + 5000;
  while (ws === null) {
    if (Date.now() > deadline) throw new Error('the sideband never dialled');
    await new Promise((r) => setTimeout(r, 5));
  }
  return { session, upstream: () => ws! };
}

const created = (id: string) => JSON.stringify({ type: 'response.created', event_id: `e_c_${id}`, response: { object: 'realtime.response', id, status: 'in_progress', conversation_id: 'conv_1', output: [], output_modalities: ['audio'], max_output_tokens: 'inf', usage: null } });
const done = (id: string) => JSON.stringify({ type: 'response.done', event_id: `e_d_${id}`, response: { object: 'realtime.response', id, status: 'cancelled', conversation_id: 'conv_1', output: [], output_modalities: ['audio'], max_output_tokens: 'inf', usage: null } });

describe('Sideband.idle: a capped call is hung up once its cancelled responses are done (found 2026-12-05)', () => {
  it('resolves at once with nothing in flight; else at the response.done of the last running response, not before', async () => {
    const { session, upstream } = await sideband();
    await expect(session.idle(60_000)).resolves.toBeUndefined();
    upstream().send(created('resp_a'));
    upstream().send(created('resp_b'));
    const deadline = Date.now() + 5000;
    while (session.conversation.activeResponses().length < 2) {
      if (Date.now() > deadline) throw new Error('the responses never started');
      await new Promise((r) => setTimeout(r, 5));
    }
    let idle = false;
    const waiting = session.idle(60_000).then(() => (idle = true));
    upstream().send(done('resp_a'));
    // A frame that is no response.done, then: still one running.
    upstream().send(JSON.stringify({ type: 'rate_limits.updated', event_id: 'e_rl', rate_limits: [] }));
    const seen = Date.now() + 5000;
    while (session.conversation.activeResponses().length > 1) {
      if (Date.now() > seen) throw new Error('resp_a never ended');
      await new Promise((r) => setTimeout(r, 5));
    }
    // resp_a's response.done went through (the check runs on every upstream frame): still waiting.
    expect(idle).toBe(false);
    upstream().send(done('resp_b'));
    await waiting;
    expect(session.conversation.activeResponses()).toEqual([]);
  });

  it('bounded: resolves after its timeout while a response still runs, and at the session\'s end', async () => {
    const { session, upstream } = await sideband();
    upstream().send(created('resp_a'));
    const deadline = Date.now() + 5000;
    while (session.conversation.activeResponses().length < 1) {
      if (Date.now() > deadline) throw new Error('the response never started');
      await new Promise((r) => setTimeout(r, 5));
    }
    await expect(session.idle(30)).resolves.toBeUndefined();
    expect(session.conversation.activeResponses()).toEqual(['resp_a']);
    const waiting = session.idle(60_000);
    session.close(new ProxyError('server_shutting_down'));
    await expect(waiting).resolves.toBeUndefined();
    expect(session.ended).toBe(true);
    // Ended: at once.
    await expect(session.idle(60_000)).resolves.toBeUndefined();
  });
});
