import { afterAll, afterEach, beforeAll } from 'vitest';
import { startRedis, type RedisServer } from './redis-server.js';

/**
 * One Redis for a test file and the proxies its tests start on it (stopped after each test).
 * `redis()` is the server (after beforeAll); `keyPrefix(name)` a fresh ledger key prefix per use,
 * so tests of one file never read each other's keys.
 */
export function redisSuite(): { redis(): RedisServer; readonly proxies: { stop(): Promise<void> }[]; keyPrefix(name: string): string } {
  let server: RedisServer | null = null;
  let seq = 0;
  const proxies: { stop(): Promise<void> }[] = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.stop()));
  });
  return {
    redis: () => {
      if (!server) throw new Error('redisSuite: the server starts in beforeAll');
      return server;
    },
    proxies,
    keyPrefix: (name) => `${name}${++seq}:`,
  };
}
