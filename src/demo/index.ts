import type { ModuleDeps, ProxyModule } from '../app/module.js';
import { DEMO_PAGE } from './page.js';

/**
 * The demo page (`server.demo: true`, off by default): GET /demo on the admin listener (loopback by
 * default, like every module route) serves one self-contained HTML page that talks to the proxy's
 * client port from the browser with subprotocol auth (`openai-insecure-api-key.<key>`) and plays the
 * spoken answer. It holds no key: the visitor types one (or passes `#key=` in the URL); `#port=`
 * overrides the client port (default `server.port`).
 */
export function createDemoModule(deps: ModuleDeps): ProxyModule {
  if (!deps.config.server.demo) return { name: 'demo', filters: [] };
  deps.log.warn({ adminPort: deps.config.admin.port }, 'server.demo is on: GET /demo on the admin listener serves the browser demo page');
  const page = DEMO_PAGE.replace('__CLIENT_PORT__', String(deps.config.server.port));
  return {
    name: 'demo',
    filters: [],
    routes: [
      {
        method: 'GET',
        path: '/demo',
        auth: 'none',
        handle: () => ({
          status: 200,
          headers: {
            'content-type': 'text/html; charset=utf-8',
            'cache-control': 'no-store',
            // Inline script and style only; the page connects to the client port's WebSocket.
            'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src ws: wss:",
            'referrer-policy': 'no-referrer',
          },
          body: page,
        }),
      },
    ],
  };
}
