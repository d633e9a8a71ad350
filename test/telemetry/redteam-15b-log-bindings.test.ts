import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTelemetryProxy, type TelemetryProxy } from './support/proxy.js';

/**
 * Red team (2026-12-06, observability): the session's log bindings. Every line a session writes
 * carries `session`, `tenant` and `model` as pino bindings, and `model` is whatever the client put
 * in the upgrade URL (`?model=`; with `metering.fallbackPrice` any text is admitted, up to the
 * header limit). The top-level field cap (`capLogFields`, 1024 characters) applies to a line's own
 * fields, not to bindings: an adversary with a tenant key repeats ~12 KB of text it chose on every
 * line of its session (session start, end, upstream errors, turn lines), which breaks the README's
 * "no line longer than a field cap" bound and puts client text into every log line.
 */

let p: TelemetryProxy;
beforeAll(async () => {
  p = await startTelemetryProxy({ tenants: { acme: {} }, config: { metering: { ledger: { path: ':memory:' }, fallbackPrice: 'gpt-realtime' } } });
});
afterAll(async () => {
  await p?.stop();
});

describe('the model a client names in the URL is capped on its session\'s log lines', () => {
  it('a 12 000-character model: every line of the session stays under 4 KiB', async () => {
    const model = `m${'Q'.repeat(12_000)}`;
    const before = p.lines.length;
    const c = await p.client('acme', `model=${model}`);
    c.say('say:hello');
    await c.closed;
    for (let i = 0; i < 500 && !p.lines.slice(before).some((l) => l.includes('"session end"')); i++) await new Promise((r) => setTimeout(r, 10));
    const session = p.lines.slice(before).filter((l) => l.includes('"mQQQ'));
    // The session did log under that model (start and end at least) ...
    expect(session.length).toBeGreaterThanOrEqual(2);
    expect(p.lines.slice(before).some((l) => l.includes('"session end"'))).toBe(true);
    // ... and no line of it repeats the client's 12 000 characters.
    for (const l of p.lines.slice(before)) expect(l.length).toBeLessThan(4096);
  });
});
