import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { POLICIES_DIR } from './support.js';

/**
 * A new user, not an adversary: reading policies/README.md to decide whether the shipped
 * customer-support policy serves apps that ask for `gpt-realtime-mini` (its `model.aliases` maps it
 * to `gpt-realtime-2.1-mini`). policies/README said "an aliased model is refused with the successor
 * in the message until the relay can rewrite the URL model", so such an app would be changed or
 * turned away; the proxy in fact dials the successor (README.md: "an alias is dialled as its
 * successor"; commit 71341e9). Guarantee broken: the policy documentation describes what runs.
 */

const policiesReadme = readFileSync(new URL('../../policies/README.md', import.meta.url), 'utf8');

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({ tenants: { acme: { policy: 'customer-support' } }, config: { policies: { dir: POLICIES_DIR, watch: false } } });
});
afterAll(async () => {
  await tp.stop();
});

describe('model aliases: what runs and what policies/README says', () => {
  it('?model=<alias> opens a session on the successor (customer-support: gpt-realtime-mini → gpt-realtime-2.1-mini)', async () => {
    const c = await tp.client({ query: 'model=gpt-realtime-mini' });
    const created = await c.next('session.created');
    expect((created['session'] as { model: string }).model).toBe('gpt-realtime-2.1-mini');
    expect(new URL(tp.sim.connections.at(-1)!.url, 'ws://upstream').searchParams.get('model')).toBe('gpt-realtime-2.1-mini');
    c.close();
  });

  it('policies/README does not say an aliased model is refused', () => {
    expect(policiesReadme).not.toMatch(/aliased model is refused/);
    expect(policiesReadme).toMatch(/alias(?:ed model)? is dialled as (?:its|the) successor/);
  });
});
