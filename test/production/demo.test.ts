import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * The browser demo page (server.demo: true, on the admin listener), driven in headless Chromium over the DevTools protocol:
 * subprotocol auth from a real browser, one turn, the answer decoded and played by Web Audio.
 * DEMO_SCREENSHOT=docs/demo.png writes the screenshot README shows.
 */

class Cdp {
  readonly #ws: WebSocket;
  #id = 0;
  readonly #pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
      if (msg.id === undefined) return;
      const p = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      if (msg.error) p?.reject(new Error(msg.error.message));
      else p?.resolve(msg.result ?? {});
    });
  }

  static async connect(url: string): Promise<Cdp> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Cdp(ws);
  }

  send(method: string, params: object = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = ++this.#id;
    this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject }));
  }

  close(): void {
    this.#ws.close();
  }
}

let browser: ChildProcess | null = null;
let profile: string | null = null;
const proxies: TestProxy[] = [];

afterAll(async () => {
  if (browser && browser.exitCode === null) {
    // Chromium's helpers may still write into the profile: remove it only once the browser exited.
    const exited = new Promise((resolve) => browser!.once('exit', resolve));
    browser.kill('SIGKILL');
    await exited;
  }
  try {
    // Best effort: Chromium's helper processes can still write into the profile after it exited.
    if (profile) rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  } catch {
    // Left for the OS's tmp cleanup.
  }
  for (const p of proxies) await p.stop();
});

async function launchChromium(): Promise<string> {
  profile = mkdtempSync(join(tmpdir(), 'rp-chromium-'));
  browser = spawn(
    'chromium',
    [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--remote-debugging-port=0',
      '--autoplay-policy=no-user-gesture-required',
      `--user-data-dir=${profile}`,
      '--window-size=900,820',
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`chromium did not start: ${err}`)), 20_000);
    browser!.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    browser!.once('exit', (code) => reject(new Error(`chromium exited ${code}: ${err}`)));
  });
}

async function until<T>(what: string, probe: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the browser demo page', () => {
  it('is off unless server.demo is set', async () => {
    const tp = await startTestProxy();
    proxies.push(tp);
    expect((await fetch(`${tp.httpUrl}/demo`)).status).toBe(404);
    expect((await fetch(`${tp.adminUrl}/demo`)).status).toBe(404);
  });

  it('talks to the proxy from headless Chromium with subprotocol auth and plays the answer', async () => {
    const tp = await startTestProxy({ config: { server: { demo: true } } });
    proxies.push(tp);
    // Served on the admin listener only, never on the client port.
    expect((await fetch(`${tp.httpUrl}/demo`)).status).toBe(404);
    const page = await fetch(`${tp.adminUrl}/demo`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).not.toContain(tp.key());

    const cdp = await Cdp.connect(await launchChromium());
    try {
      const { targetId } = (await cdp.send('Target.createTarget', { url: `${tp.adminUrl}/demo#key=${tp.key()}&port=${tp.port}` })) as { targetId: string };
      const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
      const evaluate = async (expression: string): Promise<unknown> => {
        const r = (await cdp.send('Runtime.evaluate', { expression, returnByValue: true }, sessionId)) as { result: { value?: unknown } };
        return r.result.value ?? null;
      };
      await until('the page', async () => ((await evaluate('document.body && document.body.dataset.state')) === 'idle' ? true : null), 10_000);
      await evaluate("document.getElementById('form').requestSubmit()");
      const state = await until('the answer', async () => {
        const s = await evaluate('document.body.dataset.state');
        return s === 'done' || s === 'closed' ? s : null;
      }, 20_000);
      const shown = (await evaluate(
        "({ answer: document.getElementById('answer').textContent, status: document.getElementById('status').textContent, errors: document.getElementById('errors').textContent, played: Number(document.body.dataset.played || 0), events: [...document.querySelectorAll('#events li')].map((li) => li.textContent) })",
      )) as { answer: string; status: string; errors: string; played: number; events: string[] };
      expect(state, shown.status).toBe('done');
      expect(shown.answer).toBe('Hello from the browser.');
      expect(shown.errors).toBe('');
      expect(shown.status).toMatch(/^response completed: \d+\.\d s of audio$/);
      expect(shown.played).toBeGreaterThan(1);
      expect(shown.events[0]).toBe('session.created');
      expect(shown.events.at(-1)).toBe('response.done');
      // The proxy saw a browser client: the key came as a subprotocol entry.
      const start = tp.logs.find((l) => l['event'] === 'session_start');
      expect(start?.['userAgent']).toMatch(/HeadlessChrome|Chrome/);

      const shot = (await cdp.send('Page.captureScreenshot', { format: 'png' }, sessionId)) as { data: string };
      const png = Buffer.from(shot.data, 'base64');
      expect(png.subarray(1, 4).toString('ascii')).toBe('PNG');
      const out = process.env.DEMO_SCREENSHOT ?? join(mkdtempSync(join(tmpdir(), 'rp-demo-')), 'demo.png');
      writeFileSync(out, png);
      await cdp.send('Browser.close').catch(() => undefined);
    } finally {
      cdp.close();
    }
  }, 60_000);
});
