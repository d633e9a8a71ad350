import { capturedLog, type LogLine } from '../support/captured-log.js';
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
import { until } from './support.js';

/*
 * `SessionInit.endCallFirst`: a call's sideband that the proxy closes (a guardrail, a governance
 * failure, …) ends the call first and keeps reading the upstream until that settled, then closes
 * (found 2026-12-05: it closed first, and a response run meanwhile went unbilled). The hook's
 * edges: a second close, a hook that throws or rejects, an upstream close and a failure during the
 * wait. A sideband (a RelaySession without a client) against a scripted upstream.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Hook = (error: ProxyError, drain: () => Promise<void>) => Promise<void> | null;

interface Sideband {
  session: RelaySession;
  upstream: () => WebSocket;
  /** What the upstream received, as parsed events. */
  received: Array<{ type: string; response_id?: string }>;
  ended: RelaySession[];
  upstreamClosed: () => boolean;
  lines: LogLine[];
}

async function sideband(hook: Hook | undefined, options: { dial?: boolean; endedThrows?: boolean; metering?: boolean } = {}): Promise<Sideband> {
  const { log, lines } = capturedLog('info');
  let ws: WebSocket | null = null;
  let closed = false;
  const received: Sideband['received'] = [];
  const up = await scriptedUpstream((socket, n) => {
    ws = socket;
    socket.on('close', () => (closed = true));
    socket.on('message', (data) => received.push(JSON.parse(String(data)) as Sideband['received'][number]));
    socket.send(sessionCreated(n));
  });
  cleanups.push(() => up.close());
  const config = parseConfig(
    {
      upstream: { provider: 'openai', url: up.url, apiKey: 'sk-x', allowCallId: true },
      // On, the session lingers for (and drains) running responses; its ledger belongs to a filter this chain has not.
      metering: { enabled: options.metering === true },
      tenants: { acme: { keys: [{ key: 'rpk_hook_test_key_0123456789' }] } },
    },
    '(hook test)',
    {},
  );
  const ended: RelaySession[] = [];
  const session = new RelaySession(
    {
      id: 'rpc_hooktest',
      tenant: new TenantResolver(config).tenants.get('acme') as Tenant,
      model: 'gpt-realtime',
      query: new Map([['model', 'gpt-realtime']]),
      callId: 'rtc_hook',
      target: upstreamTarget(config.upstream, new Map([['model', 'gpt-realtime']]), new Map()),
      config,
      template: new ChainTemplate([]),
      clock: systemClock,
      log,
      onEnded: (s) => {
        ended.push(s);
        if (options.endedThrows) throw new Error('onEnded exploded');
      },
      ...(hook ? { endCallFirst: hook } : {}),
    },
    null,
  );
  cleanups.push(() => {
    if (!session.ended) session.fail('cleanup', new Error('test cleanup'));
  });
  if (options.dial === false) return { session, upstream: () => ws!, received, ended, upstreamClosed: () => closed, lines };
  session.start();
  await until(() => ws !== null && session.upstreamConnectMs !== null, 'the sideband to open');
  return { session, upstream: () => ws!, received, ended, upstreamClosed: () => closed, lines };
}

const failure = 'ending the call before closing its sideband failed';

const done = (id: string) => JSON.stringify({ type: 'response.done', event_id: `e_d_${id}`, response: { object: 'realtime.response', id, status: 'cancelled', conversation_id: 'conv_1', output: [], output_modalities: ['text'], max_output_tokens: 'inf', usage: null } });

const created = (id: string) => JSON.stringify({ type: 'response.created', event_id: `e_c_${id}`, response: { object: 'realtime.response', id, status: 'in_progress', conversation_id: 'conv_1', output: [], output_modalities: ['text'], max_output_tokens: 'inf', usage: null } });

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('RelaySession endCallFirst: the call ends before its sideband closes (found 2026-12-05)', () => {
  it('reads the upstream until the hook settled; a second close meanwhile is a no-op; then ends as the proxy', async () => {
    const d = deferred();
    const calls: string[] = [];
    const { session, upstream, ended, upstreamClosed } = await sideband((e) => {
      calls.push(e.code);
      return d.promise;
    });
    session.close(new ProxyError('governance_failed'));
    session.close(new ProxyError('internal_error'));
    expect(calls).toEqual(['governance_failed']);
    expect(session.ended).toBe(false);
    // A response started during the wait still reaches the session (and its filters).
    upstream().send(created('resp_late'));
    await until(() => session.conversation.activeResponses().includes('resp_late'), 'the late response read');
    expect(upstreamClosed()).toBe(false);
    d.resolve();
    await until(() => session.ended, 'the session to end');
    await until(upstreamClosed, 'the upstream to close');
    expect(ended).toEqual([session]);
    expect(session.endRecord()).toMatchObject({ initiator: 'proxy' });
  });

  it('a hook that rejects or throws still closes the session (once)', async () => {
    const d = deferred();
    const a = await sideband(() => d.promise);
    a.session.close(new ProxyError('governance_failed'));
    d.reject(new Error('hang-up exploded'));
    await until(() => a.session.ended, 'the session to end after a rejection');
    expect(a.ended).toHaveLength(1);
    expect(a.lines.filter((l) => l['msg'] === failure).map((l) => [l['level'], (l['err'] as { message: string }).message])).toEqual([[50, 'hang-up exploded']]);
    const b = await sideband(() => {
      throw new Error('hook exploded');
    });
    b.session.close(new ProxyError('governance_failed'));
    // Nothing to wait for: closed at once.
    expect(b.session.ended).toBe(true);
    expect(b.ended).toHaveLength(1);
    expect(b.lines.filter((l) => l['msg'] === failure).map((l) => [l['level'], (l['err'] as { message: string }).message])).toEqual([[50, 'hook exploded']]);
    const c = await sideband(() => null);
    c.session.close(new ProxyError('governance_failed'));
    expect(c.session.ended).toBe(true);
    // No hook (every client session): closed at once, as before, and nothing failed.
    const n = await sideband(undefined);
    n.session.close(new ProxyError('governance_failed'));
    expect([n.session.ended, n.ended]).toEqual([true, [n.session]]);
    expect([...c.lines, ...n.lines].filter((l) => l['msg'] === failure)).toEqual([]);
  });

  it('an upstream close during the wait ends it as the upstream; the hook settling later changes nothing', async () => {
    const d = deferred();
    const { session, upstream, ended } = await sideband(() => d.promise);
    session.close(new ProxyError('governance_failed'));
    upstream().close(1000, 'call ended');
    await until(() => session.ended, 'the session to end');
    expect(session.endRecord()).toMatchObject({ initiator: 'upstream', upstreamCloseCode: 1000 });
    d.resolve();
    await d.promise;
    await new Promise((r) => setImmediate(r));
    expect(ended).toEqual([session]);
  });

  it('an upstream not open (yet): nothing to read, so no hook: closed at once (its end then hangs the call up)', async () => {
    const calls: string[] = [];
    const { session, ended } = await sideband((e) => {
      calls.push(e.code);
      return new Promise<void>(() => undefined);
    }, { dial: false });
    session.close(new ProxyError('governance_failed'));
    expect([session.ended, calls, ended]).toEqual([true, [], [session]]);
  });

  it('a teardown that throws once the hook settled is failed and logged, never an unhandled rejection', async () => {
    const d = deferred();
    const { session, ended, lines } = await sideband(() => d.promise, { endedThrows: true });
    session.close(new ProxyError('governance_failed'));
    d.resolve();
    await until(() => session.ended && lines.some((l) => l['msg'] === 'close handler failed'), 'the failure logged');
    expect(ended).toEqual([session]);
    expect(lines.find((l) => l['msg'] === 'close handler failed')).toMatchObject({ level: 50, err: { message: 'onEnded exploded' } });
    expect(lines.find((l) => l['msg'] === 'proxy ends session')).toMatchObject({ code: 'governance_failed', closeCode: 4003 });
  });

  it("the drain the hook is given cancels each running response once (not one a filter cancelled already), clears the call's buffered audio, and resolves at their response.done (found 2026-12-05: the hang-up cut them short, billed at their reservation)", async () => {
    let drained = false;
    const hung = deferred();
    const { session, upstream, received } = await sideband(
      (_e, drain) =>
        drain().then(() => {
          drained = true;
          return hung.promise;
        }),
      { metering: true },
    );
    upstream().send(created('resp_a'));
    upstream().send(created('resp_b'));
    await until(() => session.conversation.activeResponses().length === 2, 'both responses read');
    session.cancelResponse('resp_b', 'guardrails', new ProxyError('guardrail_blocked'));
    const cancels = () => received.filter((e) => e.type === 'response.cancel').map((e) => e.response_id);
    await until(() => cancels().length === 1, "the filter's cancel upstream");
    session.close(new ProxyError('guardrail_blocked'));
    await until(() => cancels().length === 2, "the drain's cancel upstream");
    expect(cancels()).toEqual(['resp_b', 'resp_a']);
    await until(() => received.filter((e) => e.type === 'output_audio_buffer.clear').length === 2, "the drain's clear upstream");
    upstream().send(done('resp_a'));
    await new Promise((r) => setTimeout(r, 50));
    // One response still runs: the hang-up waits.
    expect(drained).toBe(false);
    upstream().send(done('resp_b'));
    await until(() => drained, 'the drain to resolve at the last response.done');
    expect(session.ended).toBe(false);
    hung.resolve();
    await until(() => session.ended, 'the session to end');
    expect(cancels()).toEqual(['resp_b', 'resp_a']);
  });

  // Mutation (twenty-second session, src/relay/session.ts 884 and 892: the clear sent whatever was cancelled).
  it("a drain whose running responses a filter cancelled already sends no cancel and no second clear; it still waits for their response.done", async () => {
    let drained = false;
    const { session, upstream, received } = await sideband((_e, drain) => drain().then(() => void (drained = true)), { metering: true });
    upstream().send(created('resp_a'));
    await until(() => session.conversation.activeResponses().length === 1, 'the response read');
    session.cancelResponse('resp_a', 'guardrails', new ProxyError('guardrail_blocked'));
    const sent = () => received.filter((e) => e.type === 'response.cancel' || e.type === 'output_audio_buffer.clear').map((e) => e.type);
    await until(() => sent().length === 2, "the filter's cancel and clear upstream");
    session.close(new ProxyError('guardrail_blocked'));
    upstream().send(done('resp_a'));
    await until(() => drained, 'the drain to resolve at the response.done');
    expect(sent()).toEqual(['response.cancel', 'output_audio_buffer.clear']);
  });

  // Mutation (twenty-second session, src/relay/session.ts 969: `#endCallFirst === null` → true, the sideband taken for a watcher).
  it("the sideband's own linger cancels what still runs once the hook settled without draining (a watcher's would only read it)", async () => {
    const { session, upstream, received } = await sideband(() => Promise.resolve(), { metering: true });
    upstream().send(created('resp_a'));
    await until(() => session.conversation.activeResponses().length === 1, 'the response read');
    session.close(new ProxyError('guardrail_blocked'));
    await until(() => received.some((e) => e.type === 'response.cancel'), "the linger's cancel upstream");
    expect(received.filter((e) => e.type === 'response.cancel').map((e) => e.response_id)).toEqual(['resp_a']);
    upstream().send(done('resp_a'));
    await until(() => session.ended, 'the session to end at the response.done');
  });

  it('without metering (nothing to bill) or with nothing running, the drain resolves at once and sends nothing', async () => {
    for (const metering of [false, true]) {
      let drained = false;
      const { session, upstream, received } = await sideband((_e, drain) => drain().then(() => void (drained = true)), { metering });
      if (!metering) {
        upstream().send(created('resp_a'));
        await until(() => session.conversation.activeResponses().length === 1, 'the response read');
      }
      session.close(new ProxyError('guardrail_blocked'));
      await until(() => drained, 'the drain');
      await until(() => session.ended, 'the session to end');
      expect(received.filter((e) => e.type === 'response.cancel' || e.type === 'output_audio_buffer.clear')).toEqual([]);
    }
  });

  it('a failure during the wait ends it at once, as the close decided', async () => {
    const d = deferred();
    const { session, ended } = await sideband(() => d.promise);
    session.close(new ProxyError('governance_failed'));
    session.fail('tick', new Error('boom'));
    expect(session.ended).toBe(true);
    expect(session.endRecord()).toMatchObject({ initiator: 'proxy' });
    d.resolve();
    await d.promise;
    await new Promise((r) => setImmediate(r));
    expect(ended).toEqual([session]);
  });
});
