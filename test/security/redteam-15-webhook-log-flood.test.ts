import { afterEach, describe, expect, it } from 'vitest';
import { callsProxy, WEBHOOK_SECRET } from '../calls/support.js';
import type { TestProxy } from '../support/harness.js';

/**
 * Red team (no key): forged SIP webhooks, each answered 400 `invalid_webhook`.
 *
 * Refused upgrades (bad keys, malformed requests) are logged once per source and reason per
 * `logging.refusalIntervalSec`, with a count (RefusalLog), so that a flood of bad credentials writes a
 * bounded number of log lines. The webhook route, reachable by anyone who can reach the client port,
 * logged a `webhook_refused` warning for every delivery it refused: each forged request (a few
 * hundred bytes, no key, no body) wrote one log line, so an attacker sets the log volume (disk, log
 * shipping costs; with a synchronous stdout a slow log consumer stalls the event loop, every session
 * with it). Rule broken: refusals of unauthenticated requests are rate-limited in the logs like the
 * upgrade's. Asserted on counts: 200 forged deliveries, two reasons, write a handful of lines, with
 * the count of those not written.
 */

const FORGED = 100;

let proxy: TestProxy | null = null;
afterEach(async () => {
  await proxy?.stop();
  proxy = null;
});

const webhookRefusals = (tp: TestProxy) => tp.logs.filter((l) => l['event'] === 'webhook_refused');

async function forge(tp: TestProxy, headers: Record<string, string>, body = '{}'): Promise<number> {
  const res = await fetch(`${tp.httpUrl}/v1/realtime/sip/webhook`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  await res.arrayBuffer();
  return res.status;
}

describe('red team: forged webhooks and the log', () => {
  it('200 forged deliveries (bad headers, then a bad signature over the body) write a bounded number of webhook_refused lines', async () => {
    proxy = await callsProxy({ calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [] } } });
    const now = () => String(Math.floor(Date.now() / 1000));
    const forgedSignature = `v1,${Buffer.alloc(32, 7).toString('base64')}`;
    for (let i = 0; i < FORGED; i++) {
      // Refused at the headers (no signature at all).
      expect(await forge(proxy, { 'webhook-id': `wh_${i}`, 'webhook-timestamp': now() })).toBe(400);
      // Refused once the body is read (a signature of the right length that does not verify).
      expect(await forge(proxy, { 'webhook-id': `wh_${i}`, 'webhook-timestamp': now(), 'webhook-signature': forgedSignature })).toBe(400);
    }
    // Before the fix: 200 lines, one per forged request.
    expect(webhookRefusals(proxy).length).toBeLessThanOrEqual(4);
  });

  it('the refusals not written at once are counted in a summary line (none is lost from the record)', async () => {
    proxy = await callsProxy({ calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [] } } });
    for (let i = 0; i < 10; i++) expect(await forge(proxy, { 'webhook-id': `wh_${i}`, 'webhook-timestamp': '1' })).toBe(400);
    await proxy.stop();
    const lines = webhookRefusals(proxy);
    const written = lines.filter((l) => l['repeated'] === undefined).length;
    const repeated = lines.reduce((sum, l) => sum + (typeof l['repeated'] === 'number' ? l['repeated'] : 0), 0);
    expect(written).toBe(1);
    expect(written + repeated).toBe(10);
    proxy = null;
  });
});
