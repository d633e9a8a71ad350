import type { Logger } from 'pino';
import type { ModuleDeps, ProxyModule } from '../app/module.js';
import { DEMO_PAGE } from './page.js';

/**
 * The demo page (`server.demo: true`, off by default): GET /demo on the admin listener (loopback by
 * default, like every module route) serves one self-contained HTML page that talks to the proxy's
 * client port from the browser with subprotocol auth (`openai-insecure-api-key.<key>`) and plays the
 * spoken answer. It holds no key: the visitor types one (or passes `#key=` in the URL); `#port=`
 * overrides the client port (default: the port the client listener bound): a port number only, on
 * the page's own host.
 */

/**
 * The page's Content-Security-Policy: inline script and style only, no framing, and WebSocket
 * connections to the host the browser named in `Host` only (any port: `#port=` picks the client
 * port). `'self'` does not do: it matches the page's own port, not the client port. A Host that a CSP
 * host-source cannot name (absent, an IPv6 literal, which Chromium never matches) allows no connection.
 */
export function demoCsp(host: string | undefined): string {
  const name = host === undefined ? null : (/^([a-z0-9.-]+)(?::[0-9]{1,5})?$/i.exec(host)?.[1] ?? null);
  const connect = name === null ? "'none'" : `ws://${name}:* wss://${name}:*`;
  return `default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src ${connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`;
}

/**
 * The warning that the demo page is served, logged once the admin listener is bound (src/main.ts): the
 * port it listens on, not the configured one. Until 2026-12-07 it was logged at the module's creation
 * with `admin.port`, 0 when the port is left to the OS (test/production/demo-workers.test.ts).
 */
export function logDemoOn(log: Logger, adminPort: number | null): void {
  log.warn({ adminPort }, 'server.demo is on: GET /demo on the admin listener serves the browser demo page');
}

/**
 * `clientPort`: the port the client listener bound, read when the page is asked for (the module is
 * built before the listener binds). Until 2026-12-07 the page was filled in with `server.port`, 0
 * when the OS picks the port, and refused to connect without `#port=` (test/production/demo-workers.test.ts).
 */
export function createDemoModule(deps: ModuleDeps, clientPort: () => number): ProxyModule {
  if (!deps.config.server.demo) return { name: 'demo', filters: [] };
  let page = { port: -1, html: '' };
  const pageFor = (port: number): string => {
    if (page.port !== port) page = { port, html: DEMO_PAGE.replace('__CLIENT_PORT__', String(port)) };
    return page.html;
  };
  return {
    name: 'demo',
    filters: [],
    routes: [
      {
        method: 'GET',
        path: '/demo',
        auth: 'none',
        handle: (req) => ({
          status: 200,
          headers: {
            'content-type': 'text/html; charset=utf-8',
            'cache-control': 'no-store',
            'content-security-policy': demoCsp(req.headers.get('host')),
            'x-frame-options': 'DENY',
            'x-content-type-options': 'nosniff',
            'referrer-policy': 'no-referrer',
          },
          body: pageFor(clientPort()),
        }),
      },
    ],
  };
}
