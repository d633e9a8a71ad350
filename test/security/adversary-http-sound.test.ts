import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callsProxy, mint, OFFER, placeCall, post } from '../calls/support.js';
import type { TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the HTTP surface (2026-12-06): what was tried and held. These pass today;
 * they keep the checks of the review (the failing findings are in the other adversary-http-* files).
 */

const ADMIN_KEY = 'admin_adversary_http_key_0123456789';

/** One raw request; every byte received until the proxy closes or 1.5 s pass (then the socket is dropped). */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(request));
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(text);
    }, 1500);
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

const bodyOf = (response: string) => response.slice(response.indexOf('\r\n\r\n') + 4);

describe('adversary (sound): the HTTP surface', () => {
  let tp: TestProxy;
  let adminPort = 0;

  beforeAll(async () => {
    tp = await callsProxy({ tenants: { acme: {}, other: {} }, extra: { config: { admin: { key: ADMIN_KEY }, server: { demo: true } } } });
    adminPort = Number(new URL(tp.adminUrl).port);
  });

  afterAll(async () => {
    await tp?.stop();
  });

  it('a tenant key, or the admin key in a proxy header, is no admin credential; the admin API is not on the client port', async () => {
    const invalid = '{"error":{"code":"invalid_admin_key"}}';
    for (const headers of <Array<Record<string, string>>>[
      { authorization: `Bearer ${tp.key('acme')}` },
      { 'x-forwarded-authorization': `Bearer ${ADMIN_KEY}` },
      { 'x-original-authorization': `Bearer ${ADMIN_KEY}` },
      { 'proxy-authorization': `Bearer ${ADMIN_KEY}` },
      { 'api-key': ADMIN_KEY },
    ]) {
      const res = await fetch(`${tp.adminUrl}/admin/tenants/acme/spend`, { headers });
      expect([res.status, await res.text()], JSON.stringify(Object.keys(headers))).toEqual([401, invalid]);
    }
    const onClient = await fetch(`${tp.httpUrl}/admin/tenants/acme/spend`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect([onClient.status, await onClient.text()]).toEqual([404, '{"error":{"code":"not_found"}}']);
  });

  it('path tricks on admin routes name no other tenant: %2F.., case, __proto__', async () => {
    const auth = { authorization: `Bearer ${ADMIN_KEY}` };
    const cases: Array<[string, number, string]> = [
      ['/admin/tenants/acme%2F..%2Fother/spend', 404, '{"error":{"code":"unknown_tenant","message":"No tenant \\"acme/../other\\"."}}'],
      ['/admin/tenants/ACME/spend', 404, '{"error":{"code":"unknown_tenant","message":"No tenant \\"ACME\\"."}}'],
      ['/admin/tenants/__proto__/spend', 404, '{"error":{"code":"unknown_tenant","message":"No tenant \\"__proto__\\"."}}'],
      ['/ADMIN/tenants/acme/spend', 404, '{"error":{"code":"not_found"}}'],
    ];
    for (const [path, status, body] of cases) {
      const res = await fetch(`${tp.adminUrl}${path}`, { headers: auth });
      expect([res.status, await res.text()], path).toEqual([status, body]);
    }
    // A literal '..' (fetch would resolve it before sending): uWS does not resolve it either.
    const dots = await raw(adminPort, `GET /admin/tenants/acme/../other/spend HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nConnection: close\r\n\r\n`);
    expect([dots.split('\r\n')[0], bodyOf(dots)]).toEqual(['HTTP/1.1 404 Not Found', '{"error":{"code":"not_found"}}']);
  });

  it('a client secret opens nothing but its session and its calls: no mint, no hangup, no multipart session of its own', async () => {
    const ek = (await mint(tp, 'acme')).json['value'] as string;
    const badKey = '{"error":{"type":"invalid_request_error","code":"invalid_api_key","message":"The proxy API key is not valid.","param":null}}';
    const again = await post(`${tp.httpUrl}/v1/realtime/client_secrets`, { key: ek, contentType: 'application/json', body: '{}' });
    expect([again.status, again.text]).toEqual([401, badKey]);
    const hang = await post(`${tp.httpUrl}/v1/realtime/calls/rtc_any/hangup`, { key: ek });
    expect([hang.status, hang.text]).toEqual([401, badKey]);
    const form = new FormData();
    form.set('sdp', OFFER);
    form.set('session', JSON.stringify({ type: 'realtime', instructions: 'mine now' }));
    const own = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: ek, body: form });
    expect([own.status, own.text]).toEqual([
      400,
      '{"error":{"type":"invalid_request_error","code":"invalid_request","message":"A client secret posts the SDP offer as application/sdp.","param":null}}',
    ]);
  });

  it("another tenant cannot hang up a tenant's call (404 call_not_found); the owner can", async () => {
    const { callId } = await placeCall(tp, 'acme');
    const other = await post(`${tp.httpUrl}/v1/realtime/calls/${callId}/hangup`, { key: tp.key('other') });
    expect([other.status, other.text]).toEqual([
      404,
      '{"error":{"type":"invalid_request_error","code":"call_not_found","message":"No call with this id belongs to this tenant.","param":null}}',
    ]);
    const encoded = await post(`${tp.httpUrl}/v1/realtime/calls/${encodeURIComponent(`${callId}/../x`)}/hangup`, { key: tp.key('acme') });
    expect(encoded.status).toBe(404);
    const owner = await post(`${tp.httpUrl}/v1/realtime/calls/${callId}/hangup`, { key: tp.key('acme') });
    expect(owner.status).toBe(200);
  });

  it('deeply nested JSON is refused 400 on the mint and the admin caps route (no stack overflow, no 500)', async () => {
    const deep = `{"session":{"type":"realtime","tools":[{"type":"function","name":"f","parameters":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}]}}`;
    const minted = await post(`${tp.httpUrl}/v1/realtime/client_secrets`, { key: tp.key('acme'), contentType: 'application/json', body: deep });
    expect([minted.status, minted.text]).toEqual([
      400,
      '{"error":{"type":"invalid_request_error","code":"invalid_request","message":"The request body is not valid JSON (or repeats a member).","param":null}}',
    ]);
    const caps = await fetch(`${tp.adminUrl}/admin/tenants/acme/caps`, { method: 'PUT', headers: { authorization: `Bearer ${ADMIN_KEY}` }, body: `${'['.repeat(100_000)}${']'.repeat(100_000)}` });
    expect([caps.status, await caps.text()]).toEqual([400, '{"error":{"code":"invalid_request","message":"(body): Invalid input: expected object, received array"}}']);
  });

  it('Transfer-Encoding with Content-Length, and an unknown coding, are not served', async () => {
    const head = ['POST /v1/realtime/client_secrets HTTP/1.1', 'Host: x', `Authorization: Bearer ${tp.key('acme')}`, 'Content-Type: application/json'];
    const tecl = await raw(tp.port, [...head, 'Content-Length: 4', 'Transfer-Encoding: chunked', '', '2\r\n{}\r\n0\r\n\r\n'].join('\r\n'));
    expect(tecl).toBe('');
    const unknown = await raw(tp.port, [...head, 'Transfer-Encoding: xchunked', 'Content-Length: 2', '', '{}'].join('\r\n'));
    expect(unknown).toBe('');
  });

  it('CORS: the calls preflight never allows credentials; the mint route answers no preflight', async () => {
    const pre = await fetch(`${tp.httpUrl}/v1/realtime/calls`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(pre.headers.get('access-control-allow-credentials')).toBeNull();
    const mintPre = await fetch(`${tp.httpUrl}/v1/realtime/client_secrets`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect([mintPre.status, mintPre.headers.get('access-control-allow-origin'), await mintPre.text()]).toEqual([404, null, '{"error":{"code":"not_found"}}']);
  });

  it('the demo page writes text only through textContent/value (no HTML sink) and holds no key', async () => {
    const page = await (await fetch(`${tp.adminUrl}/demo`)).text();
    expect(page).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
    expect(page).not.toContain(ADMIN_KEY);
    expect(page).not.toMatch(/rpk_test_/);
    expect(page).toContain('.textContent += e.delta');
  });
});
