import { afterEach, describe, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { ADMIN_KEY, usageRecords } from '../metering/support.js';
import { callsProxy, placeCall, receivedTypes, say, types, until } from './support.js';

/*
 * When the proxy ends a call over its cap it used to close the call's sideband first and then POST
 * /hangup: a response the browser (or the server) started while the hang-up was on its way, or
 * while a failed one waited for its retry, ran and was billed by OpenAI, but no sideband read it,
 * so it was never billed here (found 2026-12-05). Now the proxy hangs up first (after the cancelled
 * responses' response.done) and closes the sideband once the hang-up settled. Real proxy, the
 * simulator upstream (its call hub stands in for the browser), the real SQLite ledger.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxy(): Promise<TestProxy> {
  const tp = await callsProxy({ tenants: { capped: { limits: { dailyTokens: 1 } } }, extra: { config: { admin: { key: ADMIN_KEY } } } });
  cleanups.push(() => tp.stop());
  return tp;
}

const tiny = { type: 'response.create', response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, metadata: { n: 'late' }, input: [] } };

describe('calls.onCap: hangup — the sideband reads the call until the hang-up settled (found 2026-12-05)', () => {
  it('a response the browser starts while a failed hang-up waits for its retry is seen on the sideband and billed', async () => {
    const tp = await proxy();
    const { call, callId } = await placeCall(tp, 'capped');
    say(call, 'say: first answer is within the cap');
    await until(() => types(call).includes('response.done'), 'the first response');
    // The first hang-up attempt fails (a 5xx): the next goes out a second later.
    tp.sim.calls.failControl(1, 503);
    say(call, 'say: second answer is over the cap');
    await until(() => tp.logs.some((l) => l['msg'] === 'upstream refused the hangup' && l['call'] === callId), 'the failed hang-up');
    // The cancelled response's response.done came before the hang-up went out.
    const dones = call.dataChannel.filter((e) => e['type'] === 'response.done');
    expect(dones).toHaveLength(2);
    expect((dones[1]!['response'] as { status: string }).status).toBe('cancelled');
    expect(receivedTypes(call)).toContain('response.cancel');
    // While the hang-up waits for its retry, the browser starts another response: OpenAI runs (and bills) it.
    call.sendFromBrowser(tiny);
    await until(() => call.state === 'ended', 'the call to end', 10_000);
    expect(call.control.filter((c) => c.action === 'hangup')).toHaveLength(1);
    const started = call.dataChannel.filter((e) => e['type'] === 'response.created').map((e) => (e['response'] as { id: string }).id);
    expect(started).toHaveLength(3);
    // Every response the call ran is billed: the sideband was open until the call was gone.
    const billed = async () => (await usageRecords(tp.adminUrl, '?tenant=capped')).filter((r) => r['source'] === 'response');
    await until(async () => (await billed()).length === started.length, 'every started response billed');
    expect((await billed()).map((r) => r['ref']).sort()).toEqual([...started].sort());
    // The two before the hang-up, from their response.done (the cancelled one included).
    const exact = (await billed()).filter((r) => r['ref'] === started[0] || r['ref'] === started[1]);
    for (const r of exact) expect(r).toMatchObject({ settledBy: 'response.done', estimated: false });
    // The hang-up went out before the sideband ended.
    const at = (msg: string) => tp.logs.findIndex((l) => l['msg'] === msg && l['call'] === callId);
    await until(() => at('call sideband end') >= 0, 'the sideband end');
    expect(at('hanging up the call')).toBeGreaterThanOrEqual(0);
    expect(at('hanging up the call')).toBeLessThan(at('call sideband end'));
  }, 30_000);
});
