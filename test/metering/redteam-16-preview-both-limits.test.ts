import { afterEach, describe, expect, it } from 'vitest';
import type { TestClient } from '../support/client.js';
import { meteredProxy, previewScriptedUpstream, spend, until } from './support.js';

/*
 * Red team, sixteenth session (preview dialect, money): on the Azure preview protocol
 * (`upstream.azure.apiVersion`) the upstream reads the beta member `max_response_output_tokens`
 * and leaves GA's `max_output_tokens` aside. A client names BOTH: GA's tiny (1), the beta's large
 * (4096). Metering priced the response's worst case from GA's member (1 output token) while the
 * upstream answers with up to 4096; the same on the session, where a session.update lifting the
 * beta member was not guessed, so a create sent right behind it was priced at the old, lower
 * session limit. Guarantee broken: a reservation covers the most a response can cost, so the
 * tenant's cap holds (here a cap admits far more concurrent output than it can pay for).
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Json = Record<string, unknown>;

/**
 * A preview upstream that takes beta members and ignores GA's. Every create is held (no response
 * runs) until the test answers it with an error naming it, which releases its reservation.
 */
async function previewUpstream(received: Json[]) {
  let session: Json = { object: 'realtime.session', id: 'sess_pv', model: 'gpt-realtime', modalities: ['text'], max_response_output_tokens: 'inf' };
  return previewScriptedUpstream(session, received, (ev, send) => {
    if (ev['type'] !== 'session.update') return;
    const { type: _type, max_output_tokens: _ga, ...beta } = ev['session'] as Json;
    session = { ...session, ...beta };
    send({ type: 'session.updated', session });
  });
}

async function previewProxy(received: Json[]) {
  const up = await previewUpstream(received);
  cleanups.push(() => up.close());
  const endpoint = new URL(up.url).origin.replace(/^ws/, 'http');
  const tp = await meteredProxy(cleanups, {
    // A money cap, no output cap: nothing rewrites the asked limits.
    tenants: { acme: { limits: { dailyUsd: '100' } } },
    config: { upstream: { provider: 'azure', apiKey: 'azure-key', azure: { endpoint, deployment: 'prod-realtime', model: 'gpt-realtime', apiVersion: '2025-04-01-preview' } } },
  });
  return { tp, up };
}

const reservedNanos = async (httpUrl: string) => Math.round(Number((await spend(httpUrl)).day.reservedUsd) * 1e9);

/** Sends a create, waits until the upstream has it and reads the reservation; then the upstream refuses it (released). */
interface Rig {
  readonly c: TestClient;
  readonly httpUrl: string;
  readonly received: Json[];
  readonly up: Awaited<ReturnType<typeof previewUpstream>>;
}

async function reservationOf(ctx: Rig, create: Json, before: Json[] = []): Promise<number> {
  const { c, httpUrl, received, up } = ctx;
  const creates = received.filter((e) => e['type'] === 'response.create').length;
  for (const ev of before) c.send(ev);
  c.send(create);
  await until(() => received.filter((e) => e['type'] === 'response.create').length > creates, 5000, 'the create upstream');
  const upstreamCreate = received.filter((e) => e['type'] === 'response.create').at(-1)!;
  const reserved = await reservedNanos(httpUrl);
  up.connections[0]!.send(JSON.stringify({ type: 'error', event_id: `e_no_${creates}`, error: { type: 'invalid_request_error', code: 'test_no_response', message: 'no response', param: null, event_id: upstreamCreate['event_id'] } }));
  await until(async () => (await reservedNanos(httpUrl)) === 0, 5000, 'the reservation released');
  return reserved;
}

describe('Azure preview protocol: the output a reservation covers is the member the upstream reads', () => {
  it('a create naming max_output_tokens: 1 and max_response_output_tokens: 4096 reserves as much as one naming only the beta member', async () => {
    const received: Json[] = [];
    const { tp, up } = await previewProxy(received);
    const c = await tp.client();
    await c.next('session.created');
    const ctx = { c, httpUrl: tp.adminUrl, received, up };
    const betaOnly = await reservationOf(ctx, { type: 'response.create', event_id: 'c1', response: { max_response_output_tokens: 4096 } });
    const both = await reservationOf(ctx, { type: 'response.create', event_id: 'c2', response: { max_output_tokens: 1, max_response_output_tokens: 4096 } });
    // The upstream was asked for 4096 in the member it reads.
    expect((received.filter((e) => e['type'] === 'response.create').at(-1)!['response'] as Json)['max_response_output_tokens']).toBe(4096);
    expect(betaOnly).toBeGreaterThan(0);
    // Before the fix: `both` priced 1 output token (far below `betaOnly`).
    expect(both).toBeGreaterThanOrEqual(betaOnly);
    c.close();
  });

  it("a create right behind a session.update lifting the beta member reserves the lifted limit, not the session's last reported one", async () => {
    const received: Json[] = [];
    const { tp, up } = await previewProxy(received);
    const c = await tp.client();
    await c.next('session.created');
    const ctx = { c, httpUrl: tp.adminUrl, received, up };
    // The session at 16 output tokens, reported.
    c.send({ type: 'session.update', session: { max_response_output_tokens: 16 } });
    await c.waitFor((e) => e.type === 'session.updated' && (e['session'] as Json)['max_response_output_tokens'] === 16, 5000, 'the session at 16');
    const atSixteen = await reservationOf(ctx, { type: 'response.create', event_id: 'c1', response: {} });
    // Lifted to "inf" and a create right behind it (before session.updated can be read): the upstream
    // applies the update first and runs the create with no limit.
    const lifted = await reservationOf(ctx, { type: 'response.create', event_id: 'c2', response: {} }, [{ type: 'session.update', session: { max_response_output_tokens: 'inf' } }]);
    const explicitInf = await reservationOf(ctx, { type: 'response.create', event_id: 'c3', response: { max_response_output_tokens: 'inf' } });
    expect(explicitInf).toBeGreaterThan(atSixteen);
    // Before the fix: `lifted` equalled `atSixteen` (the update's beta member was not guessed).
    expect(lifted).toBeGreaterThanOrEqual(explicitInf);
    c.close();
  });
});
