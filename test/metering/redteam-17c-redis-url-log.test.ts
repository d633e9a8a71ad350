import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { closedPort } from '../support/ports.js';

/**
 * An operator points the ledger at a Redis whose password is written the two ways ioredis reads
 * it: in the query (`?password=…`, which ioredis merges into its options) or in the userinfo with an
 * unencoded `@` (ioredis splits at the last `@`). When that Redis is unreachable at boot, the proxy
 * logs the URL "redacted". Until 2026-12-07 metering had its own redaction (`//…@` up to the first
 * `@`): the query password was logged whole and the userinfo one from its first `@` on, so anyone
 * who reads the logs had the ledger's Redis password. The port is one nothing listens on (closedPort).
 */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function bootWithUnreachableRedis(url: string): Promise<TestProxy> {
  const tp = await startTestProxy({ config: { metering: { ledger: { kind: 'redis', url, keyPrefix: `url${process.pid}:`, commandTimeoutMs: 250 } } } });
  cleanups.push(() => tp.stop());
  return tp;
}

describe('the Redis ledger URL in the "unreachable at startup" log line', () => {
  it('keeps no password given in the query', async () => {
    const tp = await bootWithUnreachableRedis(`redis://127.0.0.1:${await closedPort()}/0?password=hunter2-query-secret`);
    const line = tp.logs.find((r) => r.msg?.startsWith('metering: redis ledger unreachable at startup'));
    expect(line).toBeDefined();
    expect(tp.logText()).not.toContain('hunter2-query-secret');
  });

  it('keeps no part of a userinfo password holding an unencoded @', async () => {
    const tp = await bootWithUnreachableRedis(`redis://:first@tail-secret-part@127.0.0.1:${await closedPort()}`);
    const line = tp.logs.find((r) => r.msg?.startsWith('metering: redis ledger unreachable at startup'));
    expect(line).toBeDefined();
    expect(tp.logText()).not.toContain('tail-secret-part');
  });
});
