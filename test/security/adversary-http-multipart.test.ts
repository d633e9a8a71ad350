import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callsProxy, OFFER } from '../calls/support.js';
import type { TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the HTTP surface (2026-12-06), a correctness finding on the way: the
 * multipart offer of POST /v1/realtime/calls (tenant key, `sdp` + `session` parts) is parsed with
 * the Content-Type *lower-cased* (src/calls/index.ts createCall: `type = (…content-type…).toLowerCase()`,
 * then `new Response(body, { headers: { 'content-type': type } }).formData()`). The multipart
 * boundary is case-sensitive (RFC 2046 §5.1.1): a boundary with capitals, as every browser writes
 * one (`----WebKitFormBoundaryAbC…`), no longer matches the body's delimiters and the offer is
 * refused 400 "The multipart body could not be parsed". Only lower-case boundaries (undici's, curl's)
 * work today.
 */

const multipart = (boundary: string) =>
  `--${boundary}\r\nContent-Disposition: form-data; name="sdp"\r\n\r\n${OFFER}\r\n` +
  `--${boundary}\r\nContent-Disposition: form-data; name="session"\r\n\r\n{"type":"realtime","model":"gpt-realtime"}\r\n--${boundary}--\r\n`;

describe('adversary: the multipart boundary of a call offer', () => {
  let tp: TestProxy;

  beforeAll(async () => {
    tp = await callsProxy({ tenants: { acme: {} } });
  });

  afterAll(async () => {
    await tp?.stop();
  });

  for (const boundary of ['----WebKitFormBoundaryAbCdEf0123456789', '----formdata-undici-0123456789']) {
    it(`an offer with boundary ${boundary} creates the call (201, the SDP answer)`, async () => {
      const res = await fetch(`${tp.httpUrl}/v1/realtime/calls`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tp.key('acme')}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: multipart(boundary),
      });
      const text = await res.text();
      // Today, with capitals: 400 {"error":{…"code":"invalid_request","message":"The multipart body could not be parsed."…}}.
      expect(res.status, text).toBe(201);
      expect(res.headers.get('content-type')).toBe('application/sdp');
      expect(res.headers.get('location')).toMatch(/^\/v1\/realtime\/calls\/rtc_[A-Za-z0-9_-]+$/);
      expect(text.startsWith('v=0\r\n')).toBe(true);
    });
  }
});
