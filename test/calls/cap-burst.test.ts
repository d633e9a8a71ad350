import { afterEach, describe, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { ADMIN_KEY, usageRecords } from '../metering/support.js';
import { callsProxy, placeCall, receivedTypes, say, types, until } from './support.js';

/*
 * A call's browser starts its responses on its data channel: the proxy's sideband can only cancel
 * them at response.created, and a short one finishes (and is billed) before the cancel lands. With
 * `calls.onCap: cancel` the call went on, so a browser starting tiny responses one after another
 * spent past the cap without bound (found 2026-12-05). Now the second response started over the cap
 * ends the call. Real proxy, simulator upstream (its call hub stands in for the browser).
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxy(): Promise<TestProxy> {
  const tp = await callsProxy({ tenants: { soft: { limits: { dailyTokens: 1 } } }, calls: { onCap: 'cancel' }, extra: { config: { admin: { key: ADMIN_KEY } } } });
  cleanups.push(() => tp.stop());
  return tp;
}

const tiny = (n: number) => ({ type: 'response.create', response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, metadata: { n: String(n) }, input: [] } });

describe('calls.onCap: cancel — a browser starting responses over the cap (found 2026-12-05)', () => {
  it('the first response over the cap is cancelled and the call goes on; a burst of tiny ones after it ends the call, and every response that started is billed', async () => {
    const tp = await proxy();
    const { call, callId } = await placeCall(tp, 'soft');
    say(call, 'say: first, within the cap');
    await until(() => types(call).includes('response.done'), 'the first response');
    // Over the cap now: the next response is cancelled, the call goes on (cancel mode).
    say(call, 'say: second, over the cap');
    await until(() => receivedTypes(call).includes('response.cancel'), 'the cancel');
    await until(() => call.dataChannel.filter((e) => e['type'] === 'response.done').length >= 2, 'the cancelled response done');
    expect(call.control.map((c) => c.action)).not.toContain('hangup');
    expect(call.state).toBe('active');
    // The browser fires tiny out-of-band responses, each done before a cancel could land.
    for (let i = 0; i < 5; i++) call.sendFromBrowser(tiny(i));
    await until(() => call.control.some((c) => c.action === 'hangup'), 'the hang-up');
    await until(() => call.state === 'ended', 'the call to end');
    expect(call.control.filter((c) => c.action === 'hangup')).toHaveLength(1);
    expect(tp.logs.find((l) => l['event'] === 'call_cap_repeat')).toMatchObject({ call: callId, overCapResponses: 2 });
    expect(tp.logs.find((l) => l['event'] === 'call_hangup' && l['call'] === callId)).toMatchObject({ why: 'a second response started over the cost cap' });
    // Every response the upstream started was seen by the sideband and billed: none ran unmetered.
    const started = call.dataChannel.filter((e) => e['type'] === 'response.created').map((e) => (e['response'] as { id: string }).id);
    expect(started.length).toBeGreaterThanOrEqual(3);
    await until(async () => (await usageRecords(tp.adminUrl, '?tenant=soft')).filter((r) => r['source'] === 'response').length === started.length, 'every started response billed');
    const billed = (await usageRecords(tp.adminUrl, '?tenant=soft')).filter((r) => r['source'] === 'response').map((r) => r['ref']);
    expect([...billed].sort()).toEqual([...started].sort());
    // The proxy ended the sideband (not the call's own end), once every cancelled response was done:
    // each billed from its response.done, every one after the first cancelled.
    const end = tp.logs.find((l) => l['msg'] === 'call sideband end' && l['call'] === callId);
    expect(end).toMatchObject({ initiator: 'proxy', meteringResponses: started.length, meteringEstimated: 0, meteringCancelled: started.length - 1 });
  }, 30_000);
});
