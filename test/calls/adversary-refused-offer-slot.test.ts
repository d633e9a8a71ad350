import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, mint, OFFER, post, WEBHOOK_SECRET } from './support.js';

/*
 * Adversary review (2026-12-05): creating a call admits it (caps, concurrency) before the offer goes
 * upstream, and the concurrent-session slot that admission takes is parked for the call's sideband.
 * An offer the upstream refuses (an SDP it cannot parse, 4xx) never gets a sideband, so nothing
 * claims the slot: it stays taken for the admission handoff time (30 s). A browser holding one of
 * the tenant's client secrets can post refused offers and keep every slot of the tenant taken, so
 * the tenant's real calls and WebSocket sessions are refused (429 concurrent_sessions_exceeded).
 */
let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({
    tenants: { solo: { limits: { maxConcurrentSessions: 1 } }, phone: { limits: { maxConcurrentSessions: 1 } } },
    calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'phone', to: '+15551230009' }] } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

describe('adversary: an offer the upstream refuses', () => {
  it('gives its concurrency slot back: the tenant\'s next call is created', async () => {
    const secret = await mint(tp, 'solo');
    expect(secret.status).toBe(200);
    const key = secret.json['value'] as string;
    // Starts like SDP (passes the proxy's check) but has no media section: the upstream refuses it.
    const bad = await post(`${tp.httpUrl}/v1/realtime/calls`, { key, contentType: 'application/sdp', body: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n' });
    expect(bad.status).toBe(400);
    expect(tp.sim.calls.calls.size).toBe(0);
    // No call exists, so the tenant holds no session: a real offer is admitted.
    const good = await post(`${tp.httpUrl}/v1/realtime/calls`, { key, contentType: 'application/sdp', body: OFFER });
    expect(good.json).not.toMatchObject({ error: { code: 'concurrent_sessions_exceeded' } });
    expect(good.status).toBe(201);
  });

  it('SIP: an accept the upstream refuses gives its slot back: the tenant\'s next incoming call is accepted, not rejected busy (486)', async () => {
    const sipHeaders = [{ name: 'To', value: '<sip:+15551230009@sip.api.openai.com>' }];
    const webhookUrl = `${tp.httpUrl}${SIP_WEBHOOK_PATH}`;
    // A refusal (4xx): a 5xx is retried since 2026-12-05 (adversary-sip-accept), and would be accepted.
    tp.sim.calls.failControl(1, 400);
    const first = await tp.sim.calls.ring({ webhookUrl, webhookSecret: WEBHOOK_SECRET, sipHeaders });
    expect(JSON.parse(first.body)).toMatchObject({ status: 'accept_failed' });
    expect(first.call.sidebands).toHaveLength(0);
    // The first call never ran: the tenant holds no session, so the next call is accepted.
    const second = await tp.sim.calls.ring({ webhookUrl, webhookSecret: WEBHOOK_SECRET, sipHeaders });
    expect(second.call.control.map((c) => c.action)).not.toContain('reject');
    expect(JSON.parse(second.body)).toMatchObject({ status: 'accepted', tenant: 'phone' });
  });
});
