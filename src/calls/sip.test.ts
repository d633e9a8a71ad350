import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { HttpReply } from '../app/module.js';
import { NO_SLOT } from '../metering/index.js';
import { ProxyError } from '../protocol/errors.js';
import type { Tenant } from '../tenants/tenant.js';
import type { GovernedSession } from './session-config.js';
import { routeSipCall, type SipDeps } from './sip.js';
import { UpstreamHttpError, type UpstreamReply } from './upstream.js';

const tenant = { id: 'acme' } as unknown as Tenant;
const EVENT = { type: 'realtime.call.incoming', data: { call_id: 'rtc_sip_1', sip_headers: [] } };

/** Accept answers in order: a status, or an error thrown (`unsent`: the request never left). */
type Answer = number | 'lost' | 'unsent';

function deps(answers: Answer[], options: { bound?: boolean; room?: boolean } = {}) {
  const actions: string[] = [];
  const started: string[] = [];
  const room = { held: 0, released: 0 };
  const d: SipDeps = {
    routes: [{ tenant: 'acme', session: {} }],
    tenants: new Map([['acme', tenant]]),
    log: pino({ level: 'silent' }),
    govern: async () => ({ session: { type: 'realtime', model: 'gpt-realtime' }, model: 'gpt-realtime', rewritten: [], guardrails: [] }) as GovernedSession,
    hold: async () => NO_SLOT,
    holdRoom: () => {
      if (options.room === false) return null;
      room.held++;
      return () => room.released++;
    },
    upstream: {
      control: async (_callId, action) => {
        actions.push(action);
        const a = action === 'accept' ? (answers.shift() ?? 200) : 200;
        if (a === 'lost') throw new UpstreamHttpError('other side closed');
        if (a === 'unsent') throw new UpstreamHttpError('connect ECONNREFUSED', true);
        return { status: a, headers: new Headers(), body: Buffer.alloc(0) } satisfies UpstreamReply;
      },
    },
    start: async (_t, _m, callId) => {
      started.push(callId);
      return null;
    },
    bound: async () => options.bound ?? false,
    acceptPauseMs: () => 0,
  };
  return { d, actions, started, room };
}

const body = (r: HttpReply) => JSON.parse(String(r.body)) as Record<string, unknown>;

describe('routeSipCall: server.maxSessions (found 2026-12-06: a burst of incoming calls all passed the check)', () => {
  it('no place under maxSessions: rejected 486 before any accept, nothing governed', async () => {
    const { d, actions, started, room } = deps([200], { room: false });
    const r = await routeSipCall(EVENT, d);
    expect([r.status, body(r)['status'], actions, started, room.held]).toEqual([200, 'rejected', ['reject'], [], 0]);
  });

  it('a place is held from the check until the call is governed (or not), then given back once', async () => {
    for (const answers of [[200], [500, 500, 500], [404], ['lost'], ['unsent']] as Answer[][]) {
      const { d, room } = deps(answers);
      let heldWhileAccepting = -1;
      const control = d.upstream.control;
      await routeSipCall(EVENT, { ...d, upstream: { control: (id, action, b) => ((heldWhileAccepting = room.held - room.released), control(id, action, b)) } });
      expect([heldWhileAccepting, room.held, room.released], JSON.stringify(answers)).toEqual([1, 1, 1]);
    }
  });
});

describe('routeSipCall: an accept never leaves a call running ungoverned', () => {
  it('accepted: governed, 200', async () => {
    const { d, started } = deps([200]);
    const r = await routeSipCall(EVENT, d);
    expect([r.status, body(r)['status'], started]).toEqual([200, 'accepted', ['rtc_sip_1']]);
  });

  it('accepts with responses held and governs with the update that turns them back on (found 2026-12-05)', async () => {
    const { d } = deps([200]);
    const bodies: unknown[] = [];
    const attach: unknown[] = [];
    const control = d.upstream.control;
    const r = await routeSipCall(EVENT, {
      ...d,
      upstream: { control: (callId, action, body) => (bodies.push(body), control(callId, action, body)) },
      start: async (_t, _m, _c, _offer, onAttach) => (attach.push(onAttach), null),
    });
    expect(r.status).toBe(200);
    expect(bodies).toEqual([{ type: 'realtime', model: 'gpt-realtime', audio: { input: { turn_detection: { type: 'server_vad', create_response: false } } } }]);
    expect(attach).toEqual([{ type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad', create_response: true } } } }]);
  });

  it('5xx and 429 are retried; a retry that succeeds is accepted', async () => {
    const { d, actions, started } = deps([503, 429, 200]);
    const r = await routeSipCall(EVENT, d);
    expect([r.status, actions, started]).toEqual([200, ['accept', 'accept', 'accept'], ['rtc_sip_1']]);
  });

  it('5xx on every attempt: 502 (OpenAI redelivers), nothing governed', async () => {
    const { d, actions, started } = deps([500, 502, 503]);
    const r = await routeSipCall(EVENT, d);
    expect([r.status, actions.length, started]).toEqual([502, 3, []]);
  });

  it('a 4xx refusal is acknowledged accept_failed, nothing governed', async () => {
    const { d, started } = deps([400]);
    const r = await routeSipCall(EVENT, d);
    expect([r.status, body(r)['status'], started]).toEqual([200, 'accept_failed', []]);
  });

  it('an accept that never left: 502, nothing governed (the call still rings)', async () => {
    const { d, started } = deps(['unsent']);
    const r = await routeSipCall(EVENT, d);
    expect([r.status, started]).toEqual([502, []]);
  });

  it('an accept whose answer was lost: governed (or hung up by its sideband) and answered 502', async () => {
    const { d, started } = deps(['lost']);
    const r = await routeSipCall(EVENT, d);
    expect([r.status, started]).toEqual([502, ['rtc_sip_1']]);
  });

  it('not ringing (409) and unbound: an earlier accept may have landed, so it is governed', async () => {
    const { d, started } = deps([409]);
    const r = await routeSipCall(EVENT, d);
    expect([r.status, body(r)['status'], started]).toEqual([200, 'accepted', ['rtc_sip_1']]);
  });

  it('not ringing (409) and bound already: acknowledged, not governed twice', async () => {
    const { d, started } = deps([409], { bound: true });
    const r = await routeSipCall(EVENT, d);
    expect([r.status, body(r)['status'], started]).toEqual([200, 'already_accepted', []]);
  });

  it('a start that hangs the call up is reported hung_up', async () => {
    const { d } = deps([200]);
    const r = await routeSipCall(EVENT, { ...d, start: async () => new ProxyError('concurrent_sessions_exceeded') });
    expect(body(r)['status']).toBe('hung_up');
  });
});
