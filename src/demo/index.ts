import type { ModuleDeps, ProxyModule } from '../app/module.js';
import { DEMO_PAGE } from './page.js';

/**
 * The demo page (`server.demo: true`, off by default): GET /demo serves one self-contained HTML page
 * that talks to the proxy from the browser with subprotocol auth (`openai-insecure-api-key.<key>`)
 * and plays the spoken answer. It holds no key: the visitor types one (or passes `#key=` in the URL).
 */
export function createDemoModule(deps: ModuleDeps): ProxyModule {
  if (!deps.config.server.demo) return { name: 'demo', filters: [] };
  deps.log.warn('server.demo is on: GET /demo serves the browser demo page');
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
            // Inline script and style only; the page connects back to this origin's WebSocket.
            'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:; media-src 'self'",
            'referrer-policy': 'no-referrer',
          },
          body: DEMO_PAGE,
        }),
      },
    ],
  };
}
