import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { Child, type LoopStats, type ProcStats } from './lib/ipc.js';
import { RELAY_NODE_FLAGS } from '../src/server/node-flags.js';

/**
 * The attacks of issue 12 against the proxy in its own process (RSS and event-loop stalls are the
 * proxy's, not the attacker's):
 *  1. key flood: 10,000 upgrades with random ~120 KB keys (then 10,000 with 200-byte keys);
 *  2. unfinished messages: ten clients each send ~28 MiB of a fragmented text message, never finished;
 *  3. fairness: a tenant on the customer-support policy sends 14 MB text items while another
 *     tenant measures round trips; the proxy's worst event-loop stall is the worst per-frame time.
 * `npx tsx bench/security.ts [--flood 10000] [--items 5]`; prints the figures the README states.
 */

const { values } = parseArgs({ options: { flood: { type: 'string', default: '10000' }, items: { type: 'string', default: '5' }, 'item-mb': { type: 'string', default: '14' } } });
const FLOOD = Number(values.flood);
const ITEMS = Number(values.items);
const ITEM_BYTES = Number(values['item-mb']) * 1e6;
const MiB = 1024 * 1024;
const ATTACKER = 'rpk_bench_attacker_0123456789abcdef';
const VICTIM = 'rpk_bench_victim_0123456789abcdef';

const config = {
  upstream: { provider: 'simulator' },
  policies: { dir: `${process.cwd()}/policies`, watch: false },
  metering: { ledger: { path: ':memory:' } },
  tenants: {
    attacker: { keys: [{ key: ATTACKER }], policy: 'customer-support' },
    victim: { keys: [{ key: VICTIM }] },
  },
};

const proxy = new Child('proxy', 'bench/procs/security-proxy.ts', { cpus: null, args: [JSON.stringify(config)], nodeArgs: ['--expose-gc', ...RELAY_NODE_FLAGS], stdout: 'inherit' });
const { port } = (await proxy.ready) as { port: number };
const url = `ws://127.0.0.1:${port}/v1/realtime?model=gpt-realtime`;
const mb = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

async function rss(): Promise<number> {
  return (await proxy.call<ProcStats>('stats')).rss;
}

async function baseline(): Promise<number> {
  return (await proxy.call<ProcStats>('gc')).rss;
}

/** Samples the proxy RSS while `work` runs; returns the peak. */
async function peakDuring(work: () => Promise<void>): Promise<number> {
  let peak = await rss();
  let running = true;
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, await rss());
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  await work();
  running = false;
  await sampler;
  return Math.max(peak, await rss());
}

function upgrade(key: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () =>
      s.write(`GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${key}\r\n\r\n`),
    );
    let got = '';
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) s.destroy();
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(got.split('\r\n')[0] ?? ''));
  });
}

async function flood(keyBytes: number): Promise<{ statuses: Record<string, number>; before: number; peak: number; after: number }> {
  const before = await baseline();
  const statuses: Record<string, number> = {};
  const peak = await peakDuring(async () => {
    for (let done = 0; done < FLOOD; done += 200) {
      const batch = await Promise.all(Array.from({ length: Math.min(200, FLOOD - done) }, () => upgrade(randomBytes(Math.ceil(keyBytes * 0.75)).toString('base64'))));
      for (const s of batch) statuses[s] = (statuses[s] ?? 0) + 1;
    }
  });
  const after = await baseline();
  return { statuses, before, peak, after };
}

function open(key: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${key}` }, maxPayload: 64 * MiB });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

async function unfinished(): Promise<{ before: number; peak: number; closes: number[] }> {
  const before = await baseline();
  const closes: number[] = [];
  const fragment = Buffer.alloc(MiB, 0x41);
  const peak = await peakDuring(async () => {
    const clients = await Promise.all(Array.from({ length: 10 }, () => open(VICTIM)));
    await Promise.all(
      clients.map(
        (ws) =>
          new Promise<void>((resolve) => {
            ws.on('close', (code) => {
              closes.push(code);
              resolve();
            });
            ws.on('error', () => undefined);
            ws.send('{"type":"input_audio_buffer.append","audio":"', { fin: false });
            let sent = 0;
            const next = () => {
              if (sent >= 28 || ws.readyState !== ws.OPEN) return resolve();
              sent++;
              ws.send(fragment, { fin: false, binary: false }, () => setTimeout(next, 5));
            };
            next();
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 1500));
    for (const ws of clients) ws.terminate();
  });
  return { before, peak, closes };
}

async function fairness(): Promise<{ loop: LoopStats; victimMaxMs: number; victimP50Ms: number; attackerErrors: string[] }> {
  const attacker = await open(ATTACKER);
  const victim = await open(VICTIM);
  const attackerErrors: string[] = [];
  attacker.on('message', (d) => {
    const e = JSON.parse(d.toString()) as { type: string; error?: { code: string } };
    if (e.type === 'error') attackerErrors.push(e.error?.code ?? '?');
  });
  const rtts: number[] = [];
  let attackStart = performance.now();
  let stop = false;
  const probe = (async () => {
    let n = 0;
    while (!stop) {
      const id = `probe_${n++}`;
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        const on = (d: WebSocket.RawData) => {
          if (d.toString().includes(id)) {
            victim.off('message', on);
            resolve();
          }
        };
        victim.on('message', on);
        victim.send(JSON.stringify({ type: 'conversation.item.create', item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'ping' }] } }));
      });
      rtts.push(performance.now() - t0);
      if (process.env['SECURITY_TRACE'] && performance.now() - t0 > 50) console.log(`    slow probe ${(performance.now() - t0).toFixed(0)} ms at ${(t0 - attackStart).toFixed(0)} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  await proxy.call('loop', true);
  if (process.env['SECURITY_PROFILE']) await proxy.call('profileStart', 500);
  const text = 'lorem ipsum dolor sit amet, '.repeat(Math.ceil(ITEM_BYTES / 28)).slice(0, ITEM_BYTES);
  const frame = JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  attackStart = performance.now();
  for (let i = 0; i < ITEMS; i++) {
    await new Promise<void>((resolve) => attacker.send(frame, () => resolve()));
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 500));
  const loop = await proxy.call<LoopStats>('loop', false);
  if (process.env['SECURITY_PROFILE']) {
    const p = await proxy.call<{ top: { selfPct: number; fn: string; where: string }[] }>('profileStop', null);
    for (const l of p.top.slice(0, 15)) console.log(`    ${l.selfPct.toFixed(1)}% ${l.fn} ${l.where}`);
  }
  stop = true;
  await probe;
  attacker.terminate();
  victim.terminate();
  rtts.sort((a, b) => a - b);
  return { loop, victimMaxMs: rtts[rtts.length - 1] ?? 0, victimP50Ms: rtts[Math.floor(rtts.length / 2)] ?? 0, attackerErrors };
}

try {
  const big = await flood(120_000);
  console.log(`key flood, ${FLOOD} × ~120 KB keys: ${JSON.stringify(big.statuses)}; RSS ${mb(big.before)} → peak ${mb(big.peak)} (+${mb(big.peak - big.before)}), after GC ${mb(big.after)}`);
  const small = await flood(200);
  console.log(`key flood, ${FLOOD} × 200 B keys: ${JSON.stringify(small.statuses)}; RSS ${mb(small.before)} → peak ${mb(small.peak)} (+${mb(small.peak - small.before)}), after GC ${mb(small.after)}`);
  console.log(`  key cache after the floods: ${JSON.stringify((await proxy.call<{ keyCache: unknown }>('counters')).keyCache)}`);
  const un = await unfinished();
  console.log(`10 unfinished ~28 MiB fragmented messages: closes ${JSON.stringify(un.closes)}; RSS ${mb(un.before)} → peak ${mb(un.peak)} (+${mb(un.peak - un.before)})`);
  const fair = await fairness();
  console.log(
    `fairness, ${ITEMS} × ${values['item-mb']} MB text items under customer-support: proxy event-loop max stall ${fair.loop.delayMaxMs.toFixed(1)} ms (p99 ${fair.loop.delayP99Ms.toFixed(1)} ms); ` +
      `other tenant round trip p50 ${fair.victimP50Ms.toFixed(1)} ms, max ${fair.victimMaxMs.toFixed(1)} ms; attacker errors ${JSON.stringify(fair.attackerErrors)}`,
  );
} finally {
  await proxy.call('exit').catch(() => undefined);
}
