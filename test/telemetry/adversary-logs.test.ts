import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTelemetryProxy, type TelemetryProxy } from './support/proxy.js';

/**
 * Adversarial review of the logs (2026-12-06), through the real proxy (loopback, the simulator
 * upstream, pino lines captured). An event type the content-path table does not know passes
 * unchecked by default (`unknownContentEvents: pass`); the one trace of it is the warn line
 * "event type not in the content-path table", logged once per type to bound the volume. A client
 * with a valid key must not be able to switch that line off for everyone else.
 */

let p: TelemetryProxy;
beforeAll(async () => {
  p = await startTelemetryProxy({ tenants: { acme: {}, victim: {} }, simulator: { timing: { firstAudioDelayMs: 1, deltaIntervalMs: 0 } } });
});
afterAll(async () => {
  await p?.stop();
});

const UNKNOWN = 'event type not in the content-path table';

function unknownLines(): Record<string, unknown>[] {
  return p.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === UNKNOWN);
}

describe('unknown event types stay visible in the logs whatever another tenant sent', () => {
  // Runs first: the next test fills the process-wide set.
  it('a type one tenant sent first is still logged when another tenant sends it (the line names who sent it)', async () => {
    const a = await p.client('acme');
    await a.next('session.created');
    a.send({ type: 'conversation.item.shared_smuggle' });
    a.say('say:marker');
    await a.next('response.done');
    a.close();
    await a.closed;
    const v = await p.client('victim');
    await v.next('session.created');
    v.send({ type: 'conversation.item.shared_smuggle' });
    v.say('say:marker');
    await v.next('response.done');
    const tenants = unknownLines().filter((l) => l['eventType'] === 'conversation.item.shared_smuggle').map((l) => l['tenant']);
    expect(tenants).toContain('acme');
    expect(tenants).toContain('victim');
    v.close();
    await v.closed;
  });

  it('after one tenant sends 1024 made-up event types, another tenant\'s unknown event type is still logged (with its session)', async () => {
    const a = await p.client('acme');
    await a.next('session.created');
    for (let i = 0; i < 1024; i++) a.send({ type: `x.flood_${i}` });
    // The upstream handles events in order: once this turn is answered every flood frame went through the chain.
    a.say('say:marker');
    await a.next('response.done', 20_000);
    expect(unknownLines().length).toBeGreaterThan(0);
    a.close();
    await a.closed;

    const v = await p.client('victim');
    const created = await v.next('session.created');
    expect(created['type']).toBe('session.created');
    // A type the content-path table does not know, carrying text no guardrail read.
    v.send({ type: 'conversation.item.smuggle', text: 'unchecked' });
    v.say('say:marker');
    await v.next('response.done');
    const starts = p.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'session start' && l['tenant'] === 'victim');
    const victimSession = starts[starts.length - 1]!['session'];
    expect(typeof victimSession).toBe('string');
    const line = unknownLines().find((l) => l['eventType'] === 'conversation.item.smuggle');
    expect(line).toBeDefined();
    expect(line!['session']).toBe(victimSession);
    expect(line!['tenant']).toBe('victim');
    v.close();
    await v.closed;
  }, 60_000);
});
