import { Script, createContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { HttpRequestInfo, ModuleDeps } from '../app/module.js';
import { createDemoModule, demoCsp } from './index.js';

/*
 * The demo page's headers and its choice of WebSocket URL (2026-12-06 HTTP review: `#port=` was
 * pasted into the URL unchecked, `#port=1@attacker.example:443` sent the typed key to another host,
 * and the CSP allowed any ws: host). The page in a real browser: test/production/demo.test.ts and
 * test/security/adversary-http-demo.test.ts (headless Chromium).
 */

const deps = (port = 8080) => ({ config: { server: { demo: true, port }, admin: { port: 8081 } }, log: { warn: () => undefined } }) as unknown as ModuleDeps;

function served(host: string | undefined, port = 8080) {
  const route = createDemoModule(deps(port), () => port).routes?.[0];
  if (!route) throw new Error('no demo route');
  const headers = new Map<string, string>(host === undefined ? [] : [['host', host]]);
  const req: HttpRequestInfo = { method: 'GET', path: '/demo', query: new URLSearchParams(), headers, body: Buffer.alloc(0) };
  return route.handle(req, {}) as { status: number; headers: Record<string, string>; body: string };
}

interface FakeElement {
  value: string;
  textContent: string;
  checked: boolean;
  disabled: boolean;
  listeners: Record<string, (ev: { preventDefault(): void }) => void>;
  addEventListener(type: string, fn: (ev: { preventDefault(): void }) => void): void;
}

/** Runs the page's script against a minimal DOM, presses Talk, and reports the WebSocket it opened (if any). */
function talk(hash: string, hostname = '127.0.0.1', port = 8080) {
  const html = served(`${hostname}:8081`, port).body;
  const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1];
  if (!script) throw new Error('no script');
  const elements = new Map<string, FakeElement>();
  const element = (id: string): FakeElement => {
    let e = elements.get(id);
    if (!e) {
      e = {
        value: id === 'key' ? 'rpk_test_key' : '',
        textContent: '',
        checked: true,
        disabled: false,
        listeners: {},
        addEventListener(type, fn) {
          this.listeners[type] = fn;
        },
      };
      elements.set(id, e);
    }
    return e;
  };
  const body = { dataset: {} as Record<string, string> };
  const opened: Array<{ url: string; protocols: string[] }> = [];
  const context = createContext({
    document: { getElementById: element, body, addEventListener: () => undefined, createElement: () => element('li') },
    location: { hash, hostname },
    URLSearchParams,
    WebSocket: function WebSocket(url: string, protocols: string[]) {
      opened.push({ url, protocols });
    },
  });
  new Script(script).runInContext(context);
  element('form').listeners['submit']!({ preventDefault: () => undefined });
  return { opened, state: body.dataset['state'], errors: element('errors').textContent, disabled: element('go').disabled };
}

describe('the demo page', () => {
  it('is served with a CSP that allows WebSockets to the page host only, no framing, no sniffing, no referrer', () => {
    const r = served('127.0.0.1:8081');
    expect(r.status).toBe(200);
    expect(r.headers).toEqual({
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy':
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src ws://127.0.0.1:* wss://127.0.0.1:*; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    });
    expect(r.body.startsWith('<!doctype html>')).toBe(true);
    expect(r.body).toContain("params.get('port') || '8080'");
  });

  it('names the Host the browser used in connect-src, and allows no connection for one a CSP cannot name', () => {
    const connect = (host: string | undefined) => /connect-src ([^;]*);/.exec(demoCsp(host))?.[1];
    expect(connect('localhost:8081')).toBe('ws://localhost:* wss://localhost:*');
    expect(connect('LocalHost')).toBe('ws://LocalHost:* wss://LocalHost:*');
    expect(connect('127.0.0.2:1')).toBe('ws://127.0.0.2:* wss://127.0.0.2:*');
    expect(connect('proxy-admin.internal:65535')).toBe('ws://proxy-admin.internal:* wss://proxy-admin.internal:*');
    // Chromium never matches an IPv6 literal in a host-source; absent, empty, odd or injected Hosts.
    for (const host of [undefined, '', '[::1]:8081', '[::1]', 'a b', 'x; connect-src *', "x:1 'unsafe-eval'", 'x:123456', 'user@x', 'x:', ':8081', 'x/y']) {
      expect(connect(host), String(host)).toBe("'none'");
    }
    for (const host of ['x; connect-src *', "x:1 'unsafe-eval'"]) expect(demoCsp(host)).not.toContain('unsafe-eval');
    expect(demoCsp('x; connect-src *').match(/connect-src/g)).toHaveLength(1);
  });

  it('connects to the client port on the page host: the default port, or #port= given as a number', () => {
    expect(talk('').opened).toEqual([{ url: 'ws://127.0.0.1:8080/v1/realtime?model=gpt-realtime', protocols: ['realtime', 'openai-insecure-api-key.rpk_test_key'] }]);
    expect(talk('#port=9001').opened.map((o) => o.url)).toEqual(['ws://127.0.0.1:9001/v1/realtime?model=gpt-realtime']);
    expect(talk('#port=1').opened.map((o) => o.url)).toEqual(['ws://127.0.0.1:1/v1/realtime?model=gpt-realtime']);
    expect(talk('#port=65535', 'localhost').opened.map((o) => o.url)).toEqual(['ws://localhost:65535/v1/realtime?model=gpt-realtime']);
    expect(talk('#key=k&port=9001').state).toBe('connecting');
  });

  it('refuses a #port= that is not a port number: no WebSocket is opened, the key goes nowhere', () => {
    for (const port of ['1@attacker.example:443', '1%40127.0.0.1%3A9', '443/x', '80#', '8080 ', '+8080', '0', '65536', '123456', '0x50', '8e3', '-1', 'a']) {
      const r = talk(`#port=${port}`);
      expect(r.opened, port).toEqual([]);
      expect(r.state, port).toBe('refused');
      expect(r.errors, port).toContain('must be a number from 1 to 65535');
      expect(r.disabled, port).toBe(false);
    }
    // A client port of 0 in the config (an ephemeral port) needs #port=.
    expect(talk('', '127.0.0.1', 0).opened).toEqual([]);
  });
});
