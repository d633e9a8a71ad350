import { expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { callsProxy } from './support.js';

/**
 * `calls.corsAllowOrigins` entries are checked at load against `new URL(entry).origin` (f704353). The
 * URL standard gives every scheme but the special ones (http, https, ws, wss, ftp, file) an opaque
 * origin, `"null"`, yet browsers send such origins as they are: a Chrome extension's fetch carries
 * `Origin: chrome-extension://<id>`, a Capacitor app's iOS WebView `capacitor://localhost`, a Tauri
 * app's `tauri://localhost`; a page opened from a file or a sandboxed iframe sends `Origin: null`.
 * Until 2026-12-07 (the morning) such an entry was taken and matched those apps' preflights; after
 * f704353 the config naming one was refused at load ("write scheme://host[:port]"), so an operator
 * serving a mobile or extension voice app could not start the proxy without widening the list to `*`.
 */
const APP_ORIGINS = ['capacitor://localhost', 'tauri://localhost', 'chrome-extension://abcdefghijklmnopabcdefghijklmnop', 'null'];

const load = (origins: string[]) => () =>
  parseConfig({ upstream: { provider: 'simulator' }, tenants: { acme: { keys: [{ key: 'rpk_test_acme_0123456789abcdef' }] } }, calls: { enabled: true, corsAllowOrigins: origins } }, '(test)', {});

it('origins of non-web schemes and the null origin are taken at load; their malformed forms still are not', () => {
  for (const origin of APP_ORIGINS) expect(load([origin]), origin).not.toThrow();
  // The check still refuses what can never equal an Origin header.
  expect(load(['capacitor://localhost/'])).toThrow(/corsAllowOrigins/);
  expect(load(['chrome-extension://abcdefghijklmnopabcdefghijklmnop/popup.html'])).toThrow(/corsAllowOrigins/);
  expect(load(['capacitor://'])).toThrow(/corsAllowOrigins/);
  expect(load(['CAPACITOR://localhost'])).toThrow(/corsAllowOrigins/);
  expect(load(['capacitor://user@localhost'])).toThrow(/corsAllowOrigins/);
});

it("an app's preflight from such an origin is answered with it, another origin still refused", async () => {
  const tp = await callsProxy({ calls: { corsAllowOrigins: APP_ORIGINS } });
  try {
    for (const origin of APP_ORIGINS) {
      const pre = await fetch(`${tp.httpUrl}/v1/realtime/calls`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
      expect(pre.status, origin).toBe(204);
      expect(pre.headers.get('access-control-allow-origin'), origin).toBe(origin);
      expect(await pre.text()).toBe('');
    }
    const other = await fetch(`${tp.httpUrl}/v1/realtime/calls`, { method: 'OPTIONS', headers: { origin: 'capacitor://evil', 'access-control-request-method': 'POST' } });
    expect(other.status).toBe(403);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect(await other.text()).toBe('');
  } finally {
    await tp.stop();
  }
});
