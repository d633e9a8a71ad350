import { afterEach, describe, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { ADMIN_KEY, usageRecords } from '../metering/support.js';
import { callsProxy, placeCall, say, until } from './support.js';

/*
 * A call's end decided on its own sideband (a guardrail's end_session here; a governance failure,
 * the session's max duration and any other close the relay or a filter decides take the same
 * path) used to close the sideband first and hang up from its end: a response the browser started
 * while the hang-up was on its way, or while a failed one waited for its retry, ran and was billed
 * by OpenAI but read by no sideband, so never billed here (found 2026-12-05). Now the sideband hangs
 * the call up first and closes once that settled, as the governor does over a cap
 * (hangup-first.test.ts). Real proxy, the simulator upstream (its call hub stands in for the
 * browser), the real SQLite ledger.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxy(): Promise<TestProxy> {
  const tp = await callsProxy({ tenants: { acme: { policy: 'locked' } }, extra: { config: { admin: { key: ADMIN_KEY } } } });
  cleanups.push(() => tp.stop());
  return tp;
}

const tiny = { type: 'response.create', response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, metadata: { n: 'late' }, input: [] } };

describe('a call ended inside its sideband is hung up before the sideband closes (found 2026-12-05)', () => {
  it('guardrail end_session, the first hang-up fails: a response the browser starts meanwhile is read and billed', async () => {
    const tp = await proxy();
    const { call, callId } = await placeCall(tp, 'acme');
    // The first hang-up attempt fails (a 5xx): the next goes out a second later.
    tp.sim.calls.failControl(1, 503);
    say(call, 'say: initiating self destruct sequence');
    await until(() => tp.logs.some((l) => l['msg'] === 'upstream refused the hangup' && l['call'] === callId), 'the failed hang-up');
    // While the hang-up waits for its retry, the browser starts another response: OpenAI runs (and bills) it.
    call.sendFromBrowser(tiny);
    await until(() => call.state === 'ended', 'the call to end', 10_000);
    expect(call.control.filter((c) => c.action === 'hangup')).toHaveLength(1);
    const started = call.dataChannel.filter((e) => e['type'] === 'response.created').map((e) => (e['response'] as { id: string }).id);
    expect(started).toHaveLength(2);
    // Every response the call ran is billed: the sideband was open until the call was gone.
    const billed = async () => (await usageRecords(tp.adminUrl, '?tenant=acme')).filter((r) => r['source'] === 'response');
    await until(async () => (await billed()).length === started.length, 'every started response billed');
    expect((await billed()).map((r) => r['ref']).sort()).toEqual([...started].sort());
    // The late one from its own response.done: the sideband read it whole.
    expect((await billed()).find((r) => r['ref'] === started[1])).toMatchObject({ settledBy: 'response.done', estimated: false });
    // The hang-up went out before the sideband ended; the guardrail's end is what the sideband ended as.
    const at = (msg: string) => tp.logs.findIndex((l) => l['msg'] === msg && l['call'] === callId);
    await until(() => at('call sideband end') >= 0, 'the sideband end');
    expect(at('hanging up the call')).toBeGreaterThanOrEqual(0);
    expect(at('hanging up the call')).toBeLessThan(at('call sideband end'));
    // Hung up from the sideband's close, with the closing error's code.
    const hangup = tp.logs.find((l) => l['event'] === 'call_hangup' && l['call'] === callId)!;
    expect(String(hangup['why'])).toMatch(/^the proxy ended the call sideband \(\w+\)$/);
  }, 30_000);

  it('the response running when the sideband decides to end the call is cancelled and its response.done read before the hang-up: billed from its usage, not at its reservation (found 2026-12-05)', async () => {
    const tp = await proxy();
    const { call, callId } = await placeCall(tp, 'acme');
    say(call, 'say: initiating self destruct sequence');
    await until(() => call.state === 'ended', 'the call to end', 10_000);
    const started = call.dataChannel.filter((e) => e['type'] === 'response.created').map((e) => (e['response'] as { id: string }).id);
    expect(started).toHaveLength(1);
    const billed = async () => (await usageRecords(tp.adminUrl, '?tenant=acme')).filter((r) => r['source'] === 'response');
    await until(async () => (await billed()).length === 1, 'the response billed');
    expect((await billed())[0]).toMatchObject({ ref: started[0], settledBy: 'response.done', estimated: false });
    // Cancelled once (by the guardrail, or by the drain when no filter had), before the hang-up.
    expect(call.received.filter((r) => r.from === 'sideband' && r.type === 'response.cancel')).toHaveLength(1);
    expect(call.control.filter((c) => c.action === 'hangup')).toHaveLength(1);
    const hangup = tp.logs.find((l) => l['event'] === 'call_hangup' && l['call'] === callId)!;
    expect(String(hangup['why'])).toMatch(/^the proxy ended the call sideband \(\w+\)$/);
  }, 30_000);
});
