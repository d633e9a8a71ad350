import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { textTurn } from '../metering/support.js';
import { tempDir } from '../support/temp-dir.js';

/*
 * With relay workers the client port (where a load balancer asks /readyz) is the workers': the
 * primary's SQLite ledger refusing writes (src/metering/sqlite-ledger.ts keeps the records and is
 * not ready) must make them not ready too. The primary tells them with every liveness ping.
 */

const proxies: TestProxy[] = [];
const side: Database.Database[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
  for (const db of side.splice(0)) db.close();
});

async function readyz(url: string): Promise<{ status: number; reason: unknown }> {
  const res = await fetch(`${url}/readyz`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, reason: ((await res.json()) as Record<string, unknown>)['reason'] };
}

describe('relay workers and the primary ledger\'s failed writes', () => {
  it('a settle the primary\'s file refused makes every listener not ready until the record is written', { timeout: 60_000 }, async () => {
    const path = join(tempDir('rp-workers-ledger-'), 'm.sqlite');
    const tp = await startTestProxy({ config: { server: { workers: 2 }, metering: { ledger: { path } } } });
    proxies.push(tp);
    expect((await readyz(tp.httpUrl)).status).toBe(200);
    // A second connection makes every usage insert fail as a full disk does (the primary's transaction rolls back).
    const db = new Database(path);
    side.push(db);
    db.exec(`CREATE TRIGGER disk_full BEFORE INSERT ON usage BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`);
    const c = await tp.client();
    await c.next('session.created', 15_000);
    const turn = await textTurn(c);
    // The response is billed in memory; the client is not refused for the file's failure.
    expect(turn.error).toBeNull();
    const reason = 'metering: ledger owner: sqlite ledger: usage records not written (writes failing)';
    await expect.poll(async () => readyz(tp.adminUrl), { timeout: 10_000 }).toEqual({ status: 503, reason: 'metering: sqlite ledger: usage records not written (writes failing)' });
    // Both workers (a new connection each time: the kernel spreads them), within a ping.
    await expect.poll(async () => (await Promise.all(Array.from({ length: 6 }, () => readyz(tp.httpUrl)))).every((r) => r.status === 503 && r.reason === reason), { timeout: 10_000 }).toBe(true);
    db.exec('DROP TRIGGER disk_full');
    // The primary's retry timer writes the record; the next pings clear the workers.
    await expect.poll(async () => (await Promise.all(Array.from({ length: 6 }, () => readyz(tp.httpUrl)))).every((r) => r.status === 200), { timeout: 20_000 }).toBe(true);
    expect((await readyz(tp.adminUrl)).status).toBe(200);
    expect((db.prepare('SELECT count(*) AS n FROM usage').get() as { n: number }).n).toBe(1);
  });
});
