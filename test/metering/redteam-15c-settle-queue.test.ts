import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { NO_CAPS } from '../../src/metering/limits.js';
import { RedisLedger } from '../../src/metering/redis-ledger.js';
import { caps, record, T0 } from './ledger-contract.js';
import { startRedis, type RedisServer } from './redis-server.js';

/*
 * Red team (fifteenth session, ledger): the Redis ledger's bounded settle queue dropped the record
 * its flush was writing. An adversary's session settles while Redis is slow (a flush in flight)
 * and the queue is full: the "oldest" dropped was the head being written, the write landed anyway,
 * and the flush then shifted the NEXT record out unwritten and subtracted the written one's cost
 * from the queued sum a second time. One record was lost without a log line and the instance's
 * queued sum stayed negative by (written − lost) for the rest of its life: every reserve on it saw
 * that much less spend, so a tenant whose big response was the one in flight spent past its cap
 * (the guarantee: remaining ≤ cap + one response's worst case).
 */

/** A loopback relay in front of Redis that holds client bytes from the first script call on, until released. */
class HoldingRelay {
  readonly server: Server;
  readonly #held: Array<{ upstream: Socket; data: Buffer }> = [];
  readonly #sockets: Socket[] = [];
  #holding = true;
  heldScripts = 0;

  constructor(readonly redisPort: number) {
    this.server = createServer((client) => {
      const upstream = connect(redisPort, '127.0.0.1');
      this.#sockets.push(client, upstream);
      upstream.on('data', (d: Buffer) => client.write(d));
      client.on('data', (d: Buffer) => {
        if (this.#holding && /evalsha|\beval\b/i.test(d.toString('latin1'))) {
          this.heldScripts++;
          this.#held.push({ upstream, data: d });
        } else if (this.#held.length > 0) this.#held.push({ upstream, data: d });
        else upstream.write(d);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.on('error', () => undefined);
      upstream.on('error', () => undefined);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  release(): void {
    this.#holding = false;
    for (const { upstream, data } of this.#held.splice(0)) upstream.write(data);
  }

  close(): void {
    this.server.close();
    for (const s of this.#sockets) s.destroy();
  }
}

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe('redis settle queue full while a flush is writing its head', () => {
  it('drops a record not being written, loses none unlogged, and keeps the queued sum exact (no spend past the cap)', async () => {
    const relay = new HoldingRelay(redis.port);
    const port = await relay.listen();
    const ledger = new RedisLedger({
      url: `redis://127.0.0.1:${port}`,
      keyPrefix: 'q15c:',
      commandTimeoutMs: 60_000,
      reservationTtlSec: 600,
      usageStreamMaxLen: 10_000,
      pendingMax: 2,
      failMode: 'closed',
      tenants: ['acme'],
      log: pino({ level: 'silent' }),
      wall: () => T0,
    });
    try {
      // Queued before the connection exists: a big response (the adversary's) and a small one.
      await ledger.settle(null, record({ ref: 'big', costNanos: 9_000_000, totalTokens: 1 }));
      await ledger.settle(null, record({ ref: 'small', costNanos: 1_000_000, totalTokens: 1 }));
      await ledger.connect();
      // The flush's write of 'big' is on its way (held by the relay: Redis is slow).
      await vi.waitFor(() => expect(relay.heldScripts).toBe(1), { timeout: 10_000, interval: 10 });
      // The queue is at its bound: a third settle is still kept (bodies are kept up to twice the
      // bound since 2026-12-07; nothing queued is dropped any more), new reservations are refused.
      await ledger.settle(null, record({ ref: 'third', costNanos: 1_000_000, totalTokens: 1 }));
      expect(ledger.pendingCount).toBe(3);
      expect(await ledger.reserve({ tenant: 'acme', id: 'rps_x:0', amount: { nanos: 1, tokens: 1 }, caps: NO_CAPS, wallMs: T0, mode: 'remaining' })).toMatchObject({ kind: 'unavailable', queueFull: true });
      relay.release();
      expect(await ledger.drain(20_000)).toBe(true);

      const written = (await ledger.usagePage('acme', 0, 10)).records;
      const writtenNanos = written.reduce((sum, r) => sum + r.costNanos, 0);
      // All three written once, in order (the one in flight included).
      expect(written.map((r) => r.ref)).toEqual(['big', 'small', 'third']);
      // The instance's view of spend is what Redis holds (the queue is empty: nothing else to add).
      const status = await ledger.status('acme', NO_CAPS, T0);
      expect(status.day.spent.nanos).toBe(writtenNanos);
      // A cap at what was spent refuses the next response (remaining mode: spent ≥ cap).
      const next = await ledger.reserve({ tenant: 'acme', id: 'rps_x:1', amount: { nanos: 1, tokens: 1 }, caps: caps({ dayNanos: writtenNanos }), wallMs: T0, mode: 'remaining' });
      expect(next.kind).toBe('over');
    } finally {
      await ledger.close();
      relay.close();
    }
  });
});
