import { afterEach, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/*
 * Operator's red team (18o): server.memoryBudgetTenantShare is a share of each relay
 * process's budget, and with `workers: auto` that budget is memoryBudgetBytes / cores. With the
 * defaults (256 MiB, share 0.5 with two tenants) on a 16-core host a worker's tenant limit is 8 MiB,
 * below maxFrameBytes (16 MiB; "a single input_audio_buffer.append may carry 15 MiB"), from 9 cores
 * below 15 MiB. A tenant holding nothing else then has every append above the limit refused
 * `memory_budget_exceeded` ("Retry shortly"), on every retry: the guarantee broken is that a frame
 * within maxFrameBytes is relayed when the proxy holds nothing. check-config says ok (it knows the
 * worker count and prints it). Before 2026-12-07 the same needed 17+ cores (the whole per-worker budget).
 * Here one process with the budget such a worker gets (16 MiB) stands for it. Now a tenant's share is
 * at least one maxFrameBytes frame (within the budget).
 */

const MiB = 1024 * 1024;
let tp: TestProxy | null = null;
afterEach(async () => {
  await tp?.stop();
  tp = null;
});

it('a 10 MiB append (within maxFrameBytes) from a tenant holding nothing is relayed with a 16 MiB per-process budget and two tenants', { timeout: 30_000 }, async () => {
  tp = await startTestProxy({ tenants: { a: {}, b: {} }, config: { server: { memoryBudgetBytes: 16 * MiB } } });
  // Half the budget would be 8 MiB: the share is one maxFrameBytes frame (16 MiB) instead, within the budget.
  expect(tp.proxy.server.memoryBudget.tenantLimit).toBe(16 * MiB);
  const c = await tp.client({ tenant: 'a' });
  await c.next('session.created');
  const empty = JSON.stringify({ type: 'input_audio_buffer.append', audio: '' });
  c.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(10 * MiB - empty.length) }));
  c.send({ type: 'input_audio_buffer.clear' });
  await c.next('input_audio_buffer.cleared');
  expect(c.ofType('error').map((e) => (e['error'] as { code: string }).code)).toEqual([]);
});
