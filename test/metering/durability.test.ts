import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnProxy, whenListening } from '../support/spawned-proxy.js';
import { startTestProxy, TestClient, type TestProxy } from '../support/harness.js';
import { noonClock } from '../support/clock.js';
import { ADMIN_KEY, errorCode, spend, textTurn, usageRecords } from './support.js';
import { tempDir } from '../support/temp-dir.js';

const TENANT_KEY = 'rpk_test_acme_0123456789abcdef';

/** Clients looping text turns until stopped; collects the ids of every response.done they received. */
function load(clients: TestClient[]): { stop(): Promise<void>; seen: Set<string>; turns(): number } {
  const seen = new Set<string>();
  let running = true;
  const loops = clients.map(async (c) => {
    while (running) {
      const r = await Promise.race([textTurn(c, 'say: ok', 15_000), c.closed.then(() => null)]).catch(() => null);
      if (!r || !r.done) break;
      seen.add((r.done['response'] as { id: string }).id);
    }
  });
  // Anything delivered to a client counts, even a response.done the loop did not wait for.
  for (const c of clients) {
    c.ws.on('message', (data) => {
      const e = JSON.parse(String(data)) as { type: string; response?: { id: string } };
      if (e.type === 'response.done' && e.response) seen.add(e.response.id);
    });
  }
  return {
    seen,
    turns: () => seen.size,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Every response a client saw completed is in the ledger, and the spend equals the sum of the records. */
async function expectIntact(tp: TestProxy, seen: Set<string>): Promise<void> {
  const records = await usageRecords(tp.adminUrl, '?tenant=acme');
  const refs = new Set(records.map((r) => r['ref'] as string));
  for (const id of seen) expect(refs.has(id), `response ${id} was delivered but is not in the ledger`).toBe(true);
  const total = records.reduce((a, r) => a + (r['costNanos'] as number), 0);
  const s = await spend(tp.adminUrl);
  expect(s.day.spentNanos).toBe(total);
  expect(s.month.spentNanos).toBe(total);
  expect(total).toBeGreaterThan(0);
}

describe('metering: durable spend (SQLite ledger)', () => {
  it('keeps every settled response across a restart in the middle of load', async () => {
    const path = join(tempDir('rp-durable-'), 'ledger.sqlite');
    const options = { start: { clock: noonClock() }, config: { admin: { key: ADMIN_KEY }, metering: { ledger: { path } } } };
    const first = await startTestProxy(options);
    const clients = await Promise.all(Array.from({ length: 4 }, () => first.client()));
    await Promise.all(clients.map((c) => c.next('session.created')));
    const l = load(clients);
    await until(() => l.turns() >= 20, 15_000, '20 turns');
    const before = await spend(first.adminUrl);
    await first.stop(); // sessions still mid-turn are cut
    await l.stop();
    const second = await startTestProxy(options);
    try {
      await expectIntact(second, l.seen);
      const after = await spend(second.adminUrl);
      expect(after.day.spentNanos).toBeGreaterThanOrEqual(before.day.spentNanos);
    } finally {
      await second.stop();
    }
  });

  it('keeps every settled response when the proxy process is killed with SIGKILL', async () => {
    const dir = tempDir('rp-kill9-');
    const path = join(dir, 'ledger.sqlite');
    const file = join(dir, 'proxy.yaml');
    writeFileSync(
      file,
      [
        // One process: booting a primary and a worker per core under a loaded CI machine took most of the
        // test's time; kill -9 with workers is covered in test/relay/workers.test.ts.
        'server: { host: 127.0.0.1, port: 0, workers: 1 }',
        'logging: { level: info }',
        `admin: { key: ${ADMIN_KEY} }`,
        `metering: { ledger: { path: ${path} } }`,
        'tenants:',
        '  acme:',
        `    keys: [{ key: ${TENANT_KEY} }]`,
        '',
      ].join('\n'),
    );
    const { child, exited } = spawnProxy(file);
    let seen = new Set<string>();
    try {
      const { port } = await whenListening(child);
      const clients = Array.from({ length: 4 }, () => new TestClient(`ws://127.0.0.1:${port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${TENANT_KEY}` } }));
      await Promise.all(clients.map((c) => c.next('session.created', 10_000)));
      const l = load(clients);
      await until(() => l.turns() >= 12, 20_000, '12 turns');
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      await l.stop();
      seen = l.seen;
      for (const c of clients) c.ws.terminate();
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    // A fresh process (here: in-process) on the same file sees everything that was delivered.
    const l2 = await startTestProxy({ config: { admin: { key: ADMIN_KEY }, metering: { ledger: { path } } } });
    try {
      expect(seen.size).toBeGreaterThanOrEqual(12);
      await expectIntact(l2, seen);
    } finally {
      await l2.stop();
    }
  }, 40_000);

  it('kill -9 while clients drop before response.done and bursts of out-of-band creates run: nothing settled is lost or doubled', async () => {
    const dir = tempDir('rp-kill9-leaks-');
    const path = join(dir, 'ledger.sqlite');
    const file = join(dir, 'proxy.yaml');
    writeFileSync(
      file,
      [
        // One process: booting a primary and a worker per core under a loaded CI machine took most of the
        // test's time; kill -9 with workers is covered in test/relay/workers.test.ts.
        'server: { host: 127.0.0.1, port: 0, workers: 1 }',
        'logging: { level: info }',
        `admin: { key: ${ADMIN_KEY}, port: 0 }`,
        `metering: { ledger: { path: ${path} }, lingerAfterClientCloseMs: 2000 }`,
        'tenants:',
        '  acme:',
        `    keys: [{ key: ${TENANT_KEY} }]`,
        '    limits: { dailyUsd: 1000 }',
        '',
      ].join('\n'),
    );
    const { child, exited } = spawnProxy(file);
    const delivered = new Set<string>();
    let beforeKill: Record<string, unknown>[] = [];
    let running = true;
    const loops: Promise<void>[] = [];
    try {
      const listening = await whenListening(child);
      const { port } = listening;
      const adminPort = listening.adminPort ?? 0;
      const url = `ws://127.0.0.1:${port}/v1/realtime?model=gpt-realtime`;
      const open = async (): Promise<TestClient | null> => {
        const c = new TestClient(url, { headers: { authorization: `Bearer ${TENANT_KEY}` } });
        c.ws.on('message', (data) => {
          const e = JSON.parse(String(data)) as { type: string; response?: { id: string } };
          if (e.type === 'response.done' && e.response) delivered.add(e.response.id);
        });
        const ok = await Promise.race([c.opened.then(() => true), c.closed.then(() => false), c.refused.then(() => false)]).catch(() => false);
        return ok ? c : null;
      };
      // Clients that drop before response.done, again and again.
      for (let k = 0; k < 3; k++) {
        loops.push(
          (async () => {
            while (running) {
              const c = await open();
              if (!c) return;
              try {
                await c.next('session.created', 5000);
                c.say(`say: ${'streaming when the client goes '.repeat(3)}`);
                await c.waitFor((e) => e.type === 'response.output_audio.delta' || e.type === 'error', 5000);
              } catch {
                // the proxy died under us
              }
              c.ws.terminate();
            }
          })(),
        );
      }
      // Bursts of out-of-band creates against a large item.
      loops.push(
        (async () => {
          const c = await open();
          if (!c) return;
          await c.next('session.created', 5000);
          c.send({ type: 'conversation.item.create', item: { id: 'item_big', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'lorem ipsum '.repeat(2000) }] } });
          let i = 0;
          while (running) {
            for (let j = 0; j < 10; j++) c.send({ type: 'response.create', event_id: `evt_b${i++}`, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, input: [{ type: 'item_reference', id: 'item_big' }] } });
            await c.waitFor(() => !running || c.ofType('response.done').length + c.ofType('error').filter((e) => errorCode(e) !== null).length >= i, 5000).catch(() => undefined);
            if (c.ofType('error').some((e) => errorCode(e) === 'budget_exceeded')) return;
          }
        })(),
      );
      await until(() => delivered.size >= 40, 20_000, '40 delivered responses');
      beforeKill = await usageRecords(`http://127.0.0.1:${adminPort}`, '?tenant=acme');
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
    } finally {
      running = false;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await Promise.all(loops.map((l) => l.catch(() => undefined)));
    const l2 = await startTestProxy({ config: { admin: { key: ADMIN_KEY }, metering: { ledger: { path } } } });
    try {
      const after = await usageRecords(l2.adminUrl, '?tenant=acme&limit=100000');
      const refs = after.map((r) => r['ref'] as string);
      // Nothing doubled: one record per response.
      expect(new Set(refs).size).toBe(refs.length);
      // Nothing settled lost: every record read before the kill, and every delivered response.done.
      for (const r of beforeKill) expect(refs).toContain(r['ref']);
      for (const id of delivered) expect(refs, `response ${id} was delivered but is not in the ledger`).toContain(id);
      const s = await spend(l2.adminUrl);
      expect(s.day.spentNanos).toBe(after.reduce((a, r) => a + (r['costNanos'] as number), 0));
      expect(beforeKill.length).toBeGreaterThan(0);
    } finally {
      await l2.stop();
    }
  }, 60_000);
});
