import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIMULATOR_KEY } from '../../src/main.js';
import type { SimCall } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, ringAccepted, placeCall, post, WEBHOOK_SECRET } from './support.js';

/**
 * Call transfer (SIP REFER, `POST /v1/realtime/calls/{id}/refer`) through the proxy: the tenant's app
 * (told of the call by its route's notify) transfers a caller to a human with the openai SDK as it
 * would with OpenAI. Governed against toll fraud: only to a target the route that accepted the call
 * lists (`transfer.allow`), refused 403 `transfer_not_allowed` otherwise and nothing goes upstream.
 * Until 2026-12-07 the route was not served (404 not_found). Real proxy on loopback, the simulator as
 * OpenAI (it records each refer with the key it came with).
 */

let tp: TestProxy;
const to = (number: string) => [
  { name: 'From', value: '"Caller" <sip:+15550001111@example.net>;tag=abc' },
  { name: 'To', value: `<sip:${number}@sip.api.openai.com>` },
];
/** Rings `number` and waits for the proxy to govern the call. */
const ring = (number: string): Promise<SimCall> => ringAccepted(tp, number, true);
const sdkFor = (tenant: string) => new OpenAI({ apiKey: tp.key(tenant), baseURL: `${tp.httpUrl}/v1`, maxRetries: 0 });
const refers = (call: SimCall) => call.control.filter((c) => c.action === 'refer');
const referRaw = (callId: string, body: string, tenant = 'acme') => post(`${tp.httpUrl}/v1/realtime/calls/${callId}/refer`, { key: tp.key(tenant), contentType: 'application/json', body });
async function transfers(outcome: string, tenant = 'acme'): Promise<number> {
  const text = await (await fetch(`${tp.adminUrl}/metrics`, { headers: { connection: 'close' } })).text();
  const line = text.split('\n').find((l) => l.startsWith('rtproxy_calls_transfers_total{') && l.includes(`rtproxy_transfer_outcome="${outcome}"`) && l.includes(`rtproxy_tenant_id="${tenant}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}
async function refusals(code: string): Promise<number> {
  const text = await (await fetch(`${tp.adminUrl}/metrics`, { headers: { connection: 'close' } })).text();
  const line = text.split('\n').find((l) => l.startsWith('rtproxy_http_refused_total{') && l.includes('/refer') && l.includes(`rtproxy_refusal_reason="${code}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

beforeAll(async () => {
  tp = await callsProxy({
    tenants: { acme: {}, other: {} },
    calls: {
      maxBodyBytes: 4096,
      sip: {
        webhookSecret: WEBHOOK_SECRET,
        routes: [
          { tenant: 'acme', to: '+15551230001', transfer: { allow: ['tel:+14155550100', 'sip:*@support.example.com', 'sip:desk@support.example.com;transport=tcp'] } },
          // Same tenant, no transfer list: every transfer of its calls is refused.
          { tenant: 'acme', to: '+15551230002' },
          { tenant: 'other', to: '+15551230003', transfer: { allow: ['tel:+1*'] } },
        ],
      },
    },
  });
});
afterAll(async () => {
  await tp?.stop();
});

describe('SIP call transfer (refer), governed by the route that accepted the call', () => {
  it("the openai SDK's calls.refer to a listed target reaches OpenAI with the proxy's key and the target as judged; 200 passed back; logged and counted", async () => {
    const call = await ring('+15551230001');
    const before = await transfers('transferred');
    // A number written with separators matches the entry written without; it goes upstream bare.
    await expect(sdkFor('acme').realtime.calls.refer(call.id, { target_uri: 'tel:+1 (415) 555-0100' })).resolves.toBeUndefined();
    expect(refers(call)).toEqual([{ action: 'refer', body: { target_uri: 'tel:+14155550100' }, credential: SIMULATOR_KEY }]);
    await sdkFor('acme').realtime.calls.refer(call.id, { target_uri: 'sip:agent7@support.example.com' });
    expect(refers(call).map((r) => r.body)).toEqual([{ target_uri: 'tel:+14155550100' }, { target_uri: 'sip:agent7@support.example.com' }]);
    expect(await transfers('transferred')).toBe(before + 2);
    const logged = tp.logs.find((l) => l['event'] === 'call_transferred' && l['call'] === call.id);
    expect(logged).toMatchObject({ tenant: 'acme', target: 'tel:+14155550100', allowedBy: 'tel:+14155550100', status: 200 });
  });

  it('a target off the list: 403 transfer_not_allowed, nothing upstream, logged and counted', async () => {
    const call = await ring('+15551230001');
    const before = { refused: await transfers('refused'), http: await refusals('transfer_not_allowed') };
    const err = await sdkFor('acme').realtime.calls.refer(call.id, { target_uri: 'tel:+19005550199' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(403);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('transfer_not_allowed');
    expect((err as InstanceType<typeof OpenAI.APIError>).param).toBe('target_uri');
    expect(refers(call)).toEqual([]);
    expect(await transfers('refused')).toBe(before.refused + 1);
    expect(await refusals('transfer_not_allowed')).toBe(before.http + 1);
    expect(tp.logs.find((l) => l['event'] === 'call_transfer_refused' && l['call'] === call.id)).toMatchObject({ tenant: 'acme', target: 'tel:+19005550199', reason: 'not_on_allow_list' });
  });

  it('hostile targets are refused unless they really match: separators listed without pass, parameters, host suffixes, an @ in a number, look-alikes and very long ones do not', async () => {
    const call = await ring('+15551230001');
    for (const target of [
      'sip:x@support.example.com;transport=tcp',
      'sip:x@support.example.com.evil.net',
      'sip:x@support.example.com?Replaces=abc',
      'tel:+14155550100@evil',
      'tel:+14155550100;ext=1',
      'tel:\uff0b14155550100',
      'sip:x@supp\u043ert.example.com',
      'tel:+1415555010\u0660',
      `tel:+14155550100${'0'.repeat(2000)}`,
      `sip:${'x'.repeat(2000)}@support.example.com`,
      'sips:x@support.example.com',
      'tel:4155550100',
    ]) {
      const res = await referRaw(call.id, JSON.stringify({ target_uri: target }));
      expect([res.status, (res.json['error'] as { code: string }).code], target.slice(0, 60)).toEqual([403, 'transfer_not_allowed']);
    }
    expect(refers(call)).toEqual([]);
    // Listed exactly, with its parameter: allowed, and sent as listed.
    const exact = await referRaw(call.id, JSON.stringify({ target_uri: 'sip:desk@support.example.com;transport=tcp' }));
    expect(exact.status).toBe(200);
    const separators = await referRaw(call.id, JSON.stringify({ target_uri: 'tel:+1 415 555 0100' }));
    expect(separators.status).toBe(200);
    expect(refers(call).map((r) => r.body)).toEqual([{ target_uri: 'sip:desk@support.example.com;transport=tcp' }, { target_uri: 'tel:+14155550100' }]);
    // The refused target is logged bounded.
    const longest = tp.logs.filter((l) => l['event'] === 'call_transfer_refused' && l['call'] === call.id).map((l) => String(l['target']).length);
    expect(Math.max(...longest)).toBeLessThanOrEqual(256);
  });

  it('a route without transfer refuses every transfer of its calls (403)', async () => {
    const call = await ring('+15551230002');
    const res = await referRaw(call.id, JSON.stringify({ target_uri: 'tel:+14155550100' }));
    expect([res.status, (res.json['error'] as { code: string }).code]).toEqual([403, 'transfer_not_allowed']);
    expect(refers(call)).toEqual([]);
  });

  it("another tenant's call: 404 call_not_found (even to a target its own route allows), nothing upstream; an unknown call likewise", async () => {
    const call = await ring('+15551230001');
    const err = await sdkFor('other').realtime.calls.refer(call.id, { target_uri: 'tel:+14155550100' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('call_not_found');
    const unknown = await referRaw('rtc_nobody', JSON.stringify({ target_uri: 'tel:+14155550100' }));
    expect([unknown.status, (unknown.json['error'] as { code: string }).code]).toEqual([404, 'call_not_found']);
    expect(refers(call)).toEqual([]);
    // No key, a wrong key: 401 before anything.
    expect((await post(`${tp.httpUrl}/v1/realtime/calls/${call.id}/refer`, { contentType: 'application/json', body: '{"target_uri":"tel:+14155550100"}' })).status).toBe(401);
    expect((await post(`${tp.httpUrl}/v1/realtime/calls/${call.id}/refer`, { key: 'rpk_wrong_0123456789abcdef', contentType: 'application/json', body: '{"target_uri":"tel:+14155550100"}' })).status).toBe(401);
  });

  it('the body: a JSON object with target_uri only (400 otherwise), bounded (413)', async () => {
    const call = await ring('+15551230001');
    const cases: [string, string | null][] = [
      ['', 'target_uri'],
      ['{}', 'target_uri'],
      ['{"target_uri":""}', 'target_uri'],
      ['{"target_uri":5}', 'target_uri'],
      ['{"target_uri":"tel:+14155550100","headers":{"X":"y"}}', 'headers'],
      ['{"target_uri":"tel:+19005550199","target_uri":"tel:+14155550100"}', null],
      ['[]', null],
      ['not json', null],
    ];
    for (const [body, param] of cases) {
      const res = await referRaw(call.id, body);
      expect([res.status, (res.json['error'] as { code: string; param: string | null }).code, (res.json['error'] as { param: string | null }).param], body).toEqual([400, 'invalid_request', param]);
    }
    const big = await referRaw(call.id, JSON.stringify({ target_uri: `tel:+1${'0'.repeat(5000)}` }));
    expect(big.status).toBe(413);
    expect(refers(call)).toEqual([]);
  });

  it('a WebRTC call cannot be transferred: 400, nothing upstream', async () => {
    const { call, callId } = await placeCall(tp, 'acme');
    const res = await referRaw(callId, JSON.stringify({ target_uri: 'tel:+14155550100' }));
    expect([res.status, (res.json['error'] as { code: string }).code]).toEqual([400, 'invalid_request']);
    expect((res.json['error'] as { message: string }).message).toMatch(/Only a SIP call can be transferred/);
    expect(refers(call)).toEqual([]);
  });

  it("OpenAI's refusal is passed on (a call no longer live: 409), counted as failed; its 5xx becomes 502", async () => {
    const call = await ring('+15551230001');
    const failed = await transfers('failed');
    tp.sim.calls.failControl(1, 503);
    const fault = await referRaw(call.id, JSON.stringify({ target_uri: 'tel:+14155550100' }));
    expect(fault.status).toBe(502);
    call.end();
    const res = await referRaw(call.id, JSON.stringify({ target_uri: 'tel:+14155550100' }));
    expect([res.status, (res.json['error'] as { code: string }).code]).toEqual([409, 'call_not_active']);
    expect(await transfers('failed')).toBe(failed + 2);
    expect(tp.logs.filter((l) => l['event'] === 'call_transfer_failed' && l['call'] === call.id).map((l) => l['status'])).toEqual([503, 409]);
  });
});
