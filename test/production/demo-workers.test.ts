import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Found 2026-12-06 following README ("A first turn you can hear", In the browser) on a 2-core machine:
 * `npm start` (config/example.yaml, `server.demo: true`, `server.workers` auto = 2) answered 404 on
 * http://localhost:8081/demo. With more than one worker the primary serves the admin listener, and
 * startPrimary (src/main.ts) builds only the policies and metering modules, not the demo module.
 */
const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

describe('the browser demo page with relay workers', () => {
  it('is served on the admin listener when server.workers > 1', async () => {
    const tp = await startTestProxy({ config: { server: { demo: true, workers: 2 } } });
    proxies.push(tp);
    const page = await fetch(`${tp.adminUrl}/demo`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
  });
});

/**
 * The warning that the demo is served named the configured admin port, 0 when the OS picks it (as
 * here): the operator could not tell where /demo was. It names the bound port, with one process or several.
 */
describe('the server.demo warning', () => {
  for (const workers of [1, 2]) {
    it(`names the admin port the listener bound (workers: ${workers})`, async () => {
      const tp = await startTestProxy({ config: { server: { demo: true, workers } } });
      proxies.push(tp);
      const warnings = tp.logs.filter((r) => typeof r.msg === 'string' && r.msg.startsWith('server.demo is on'));
      expect(warnings).toHaveLength(1);
      expect(tp.proxy.adminPort).toBeGreaterThan(0);
      expect(warnings[0]!['adminPort']).toBe(tp.proxy.adminPort);
    });
  }
});

/**
 * The page's default client port (used without `#port=`) was the configured `server.port`, 0 when the
 * OS picks it (as here): the page refused to connect ("The client port must be a number from 1 to
 * 65535") until the visitor found the port and typed `#port=` (until 2026-12-07). It is the port the
 * client listener bound, with one process or several.
 */
describe('the demo page\'s client port', () => {
  for (const workers of [1, 2]) {
    it(`is the port the client listener bound (workers: ${workers})`, async () => {
      const tp = await startTestProxy({ config: { server: { demo: true, workers } } });
      proxies.push(tp);
      expect(tp.port).toBeGreaterThan(0);
      const page = await (await fetch(`${tp.adminUrl}/demo`)).text();
      expect(page).toContain(`params.get('port') || '${tp.port}'`);
    });
  }
});
