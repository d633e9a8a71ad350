/**
 * Red team (thirteenth session, 2026-12-06): what leaves for the upstream while a session lingers for
 * a client that left (src/relay/session.ts #startLinger). The relay core between a fake client socket
 * and a scripted upstream, with test filters (as test/relay/session-core.test.ts, whose helpers are
 * its own). End to end for metering: test/metering/redteam-money-4.test.ts.
 */
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import { systemClock } from '../main.js';
import { ChainTemplate } from '../pipeline/chain.js';
import { CONTINUE, type Filter, type FilterFactory, type SessionContext, type Verdict } from '../pipeline/filter.js';
import type { Frame } from '../pipeline/frame.js';
import { ProxyError } from '../protocol/errors.js';
import type { Tenant } from '../tenants/tenant.js';
import { TenantResolver } from '../tenants/resolver.js';
import { upstreamTarget } from '../upstream/dial.js';
import { scriptedUpstream, sessionCreated, type ScriptedUpstream } from '../../test/resilience/support/faulty-upstream.js';
import { RelaySession, type ClientSocket } from './session.js';

class FakeClient {
  readonly frames: Record<string, unknown>[] = [];
  ended: { code: number; reason: string } | null = null;
  send(data: Buffer | string): number {
    this.frames.push(JSON.parse(typeof data === 'string' ? data : data.toString('utf8')) as Record<string, unknown>);
    return 1;
  }
  cork(fn: () => void): this {
    fn();
    return this;
  }
  getBufferedAmount(): number {
    return 0;
  }
  end(code: number, reason: string): void {
    this.ended = { code, reason };
  }
  types(): string[] {
    return this.frames.map((f) => String(f['type']));
  }
}

function filterOf(name: string, wants: FilterFactory['wants'], decide: (ctx: SessionContext, frame: Frame) => Verdict | Promise<Verdict>, more: Partial<Filter> = {}): FilterFactory {
  return { name, wants, create: (c): Filter => ({ onClient: (f) => decide(c, f), onServer: (f) => decide(c, f), ...more }) };
}

const sessions: RelaySession[] = [];
const upstreams: ScriptedUpstream[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) if (!s.ended) s.close(new ProxyError('server_shutting_down'));
  for (const u of upstreams.splice(0)) await u.close();
});

function open(factories: FilterFactory[], upstreamUrl: string, lingerMs: number, callId: string | null = null): { session: RelaySession; client: FakeClient; ended: Promise<void> } {
  const config = parseConfig(
    {
      upstream: { provider: 'openai', url: upstreamUrl, apiKey: 'sk-scripted' },
      metering: { enabled: true, lingerAfterClientCloseMs: lingerMs },
      tenants: { acme: { keys: [{ key: 'rpk_linger_test_key_0123456789' }] } },
    },
    '(linger red team)',
    {},
  );
  const tenant = new TenantResolver(config).tenants.get('acme') as Tenant;
  const client = new FakeClient();
  let onEnded!: () => void;
  const ended = new Promise<void>((r) => (onEnded = r));
  const session = new RelaySession(
    {
      id: `rps_linger${sessions.length}`,
      tenant,
      model: 'gpt-realtime',
      query: new Map([['model', 'gpt-realtime']]),
      target: upstreamTarget(config.upstream, new Map([['model', 'gpt-realtime']]), new Map()),
      config,
      template: new ChainTemplate(factories),
      clock: systemClock,
      log: pino({ level: 'silent' }),
      onEnded: () => onEnded(),
      ...(callId !== null ? { callId } : {}),
    },
    client as unknown as ClientSocket,
  );
  sessions.push(session);
  session.start();
  return { session, client, ended };
}

function send(session: RelaySession, event: Record<string, unknown>): void {
  const bytes = Buffer.from(JSON.stringify(event));
  session.onClientMessage(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), false);
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An upstream that starts a response for every create and ends it (cancelled) 30 ms after its cancel; every event it got is kept. */
async function respondingUpstream(): Promise<ScriptedUpstream & { received: Record<string, unknown>[] }> {
  const received: Record<string, unknown>[] = [];
  const up = await scriptedUpstream((ws) => {
    ws.send(sessionCreated(1));
    let n = 0;
    ws.on('message', (data) => {
      const ev = JSON.parse(String(data)) as Record<string, unknown>;
      received.push(ev);
      if (ev['type'] === 'response.create') {
        n++;
        ws.send(JSON.stringify({ type: 'response.created', event_id: `evt_rc${n}`, response: { id: `resp_${n}`, object: 'realtime.response', status: 'in_progress', output: [] } }));
      }
      if (ev['type'] === 'response.cancel') {
        const id = String(ev['response_id']);
        setTimeout(() => ws.send(JSON.stringify({ type: 'response.done', event_id: `evt_done_${id}`, response: { id, object: 'realtime.response', status: 'cancelled', output: [], usage: null } })), 30);
      }
    });
  });
  upstreams.push(up);
  return Object.assign(up, { received });
}

describe('red team 13: client frames still in the chain when the client leaves', () => {
  /*
   * A client response.create waits behind an async verdict (the spoken-turn hold pausing it while a
   * turn is held, an asynchronous ledger's admission), the client's audio queued behind it, when the
   * client leaves mid-response. The relay lingers to read the running response; until this session
   * the verdict then let the create (and the audio) go upstream: a response nobody hears, read from
   * the whole conversation and billed, and audio refilling the input buffer after the proxy's own
   * clear. The relay already kept a filter's own creates back while lingering (6793c9f).
   */
  it('a create released by its verdict while the session lingers, and the audio queued behind it, do not go upstream', async () => {
    const up = await respondingUpstream();
    let release!: (v: Verdict) => void;
    let creates = 0;
    const slow = filterOf('slow', { client: ['response.create'] }, (_ctx, frame) => {
      if (frame.type !== 'response.create' || ++creates < 2) return CONTINUE;
      return new Promise<Verdict>((r) => (release = r));
    });
    const { session, client, ended } = open([slow], up.url, 10_000);
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create', event_id: 'evt_first' });
    await until(() => client.types().includes('response.created'), 'response.created');
    send(session, { type: 'response.create', event_id: 'evt_second' });
    send(session, { type: 'input_audio_buffer.append', audio: Buffer.alloc(4800).toString('base64') });
    session.onClientClose(1006, '');
    expect(session.ended).toBe(false);
    // The verdict comes while the relay reads the cancelled response to its response.done.
    release(CONTINUE);
    await ended;
    expect(up.received.map((e) => [e['type'], e['type'] === 'response.cancel' ? e['response_id'] : e['event_id']])).toEqual([
      ['response.create', expect.stringMatching(/^event_proxy_/)],
      ['response.cancel', 'resp_1'],
    ]);
    expect(client.ended).toBeNull();
  });

  it('control: the same create released before the client leaves goes upstream, the audio behind it too', async () => {
    const up = await respondingUpstream();
    let release!: (v: Verdict) => void;
    let creates = 0;
    const slow = filterOf('slow', { client: ['response.create'] }, (_ctx, frame) => {
      if (frame.type !== 'response.create' || ++creates < 2) return CONTINUE;
      return new Promise<Verdict>((r) => (release = r));
    });
    const { session, client, ended } = open([slow], up.url, 10_000);
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create', event_id: 'evt_first' });
    await until(() => client.types().includes('response.created'), 'response.created');
    send(session, { type: 'response.create', event_id: 'evt_second' });
    send(session, { type: 'input_audio_buffer.append', audio: Buffer.alloc(4800).toString('base64') });
    release(CONTINUE);
    await until(() => up.received.some((e) => e['type'] === 'input_audio_buffer.append'), 'the audio upstream');
    session.onClientClose(1006, '');
    await ended;
    // (This upstream starts a second response beside the first; the linger cancels both.)
    expect(up.received.map((e) => e['type'])).toEqual(['response.create', 'response.create', 'input_audio_buffer.append', 'response.cancel', 'response.cancel']);
  });

  // Failed before the fix (2026-12-06, thirteenth session): a client's own socket on a SIP/WebRTC call
  // (`?call_id=`, a supervisor's dashboard) that left while the call's model spoke made the relay
  // linger like any session, and the linger cancelled every running response: the caller on the phone
  // heard the answer cut off because a watcher disconnected.
  it("a client on a call's sideband leaving mid-response does not cancel the call's response: the linger only reads it", async () => {
    const up = await respondingUpstream();
    const { session, client, ended } = open([], up.url, 300, 'rtc_watched');
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create', event_id: 'evt_first' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.onClientClose(1001, 'dashboard closed');
    await ended;
    expect(up.received.map((e) => e['type'])).toEqual(['response.create']);
  });
});
