import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { textTurn } from '../metering/support.js';

const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

async function metrics(tp: TestProxy): Promise<string> {
  const res = await fetch(`${tp.adminUrl}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

function sample(text: string, series: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
}

describe('server.workers: 2', () => {
  it('sessions land on both workers, each works end to end, one /metrics counts them all', async () => {
    const tp = await startTestProxy({ config: { server: { workers: 2 } } });
    proxies.push(tp);
    expect(tp.proxy.workers?.count).toBe(2);
    const clients = await Promise.all(Array.from({ length: 16 }, () => tp.client()));
    await Promise.all(clients.map((c) => c.next('session.created', 15_000)));
    const turns = await Promise.all(clients.map((c) => textTurn(c, 'say: hello from a worker', 15_000)));
    for (const t of turns) expect(t.done?.['response']).toMatchObject({ status: 'completed' });
    const text = await metrics(tp);
    const w0 = sample(text, 'rtproxy_worker_sessions_started_total{worker="0"}');
    const w1 = sample(text, 'rtproxy_worker_sessions_started_total{worker="1"}');
    console.log(text.split('\n').filter((l) => l.includes('session')).join('\n'));
    expect(w0! + w1!).toBe(16);
    expect(w0).toBeGreaterThan(0);
    expect(w1).toBeGreaterThan(0);
  });
});
