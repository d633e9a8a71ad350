import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

/**
 * Headless Chromium driven over the DevTools protocol (no extra package): launch, open a page,
 * evaluate an async expression in it and return its JSON value. Every wait is bounded.
 */
export interface Chromium {
  evaluate<T>(url: string, expression: string, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

const BINARY = process.env['CHROMIUM_BIN'] ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Chromium> {
  const profile = mkdtempSync(join(tmpdir(), 'rp-chromium-'));
  const proc: ChildProcess = spawn(
    BINARY,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--remote-debugging-port=0',
      `--user-data-dir=${profile}`,
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const endpoint = await new Promise<string>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`chromium did not start: ${text.slice(-500)}`)), 20_000);
    proc.stderr!.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chromium exited with ${code}: ${text.slice(-500)}`));
    });
  });
  const ws = new WebSocket(endpoint, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let seq = 0;
  const pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  ws.on('message', (data: Buffer) => {
    const msg = JSON.parse(data.toString('utf8')) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
    if (msg.id === undefined) return;
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(msg.error.message));
    else p.resolve(msg.result ?? {});
  });
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string, timeoutMs = 20_000): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const id = ++seq;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`CDP ${method} timed out`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });

  return {
    async evaluate<T>(url: string, expression: string, timeoutMs = 20_000): Promise<T> {
      const { targetId } = (await send('Target.createTarget', { url })) as { targetId: string };
      const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
      // Wait until the page itself has loaded: the target's initial about:blank is 'complete' at
      // once, and a script run there is torn down mid-fetch when the navigation commits.
      let loaded = false;
      for (let i = 0; i < 400 && !loaded; i++) {
        const r = (await send('Runtime.evaluate', { expression: `location.href === ${JSON.stringify(url)} && document.readyState === 'complete'`, returnByValue: true }, sessionId)) as { result: { value?: boolean } };
        loaded = r.result.value === true;
        if (!loaded) await new Promise((res) => setTimeout(res, 25));
      }
      if (!loaded) throw new Error(`${url} did not load`);
      const out = (await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId, timeoutMs)) as {
        result: { value?: T };
        exceptionDetails?: { text: string; exception?: { description?: string } };
      };
      await send('Target.closeTarget', { targetId }).catch(() => undefined);
      if (out.exceptionDetails) throw new Error(`page threw: ${out.exceptionDetails.exception?.description ?? out.exceptionDetails.text}`);
      return out.result.value as T;
    },
    async close() {
      ws.close();
      proc.kill('SIGTERM');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          proc.kill('SIGKILL');
          resolve();
        }, 5000);
        proc.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      // Chromium's helper processes (crash handler, zygote) can outlive the browser and still write
      // into the profile: removing it is best effort (it is a temporary directory).
      try {
        rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
      } catch {
        // Left for the OS's tmp cleanup.
      }
    },
  };
}
