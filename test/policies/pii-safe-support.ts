import { BUILTIN_PII } from '../../src/policies/pii.js';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { POLICIES_DIR, userMessage } from './support.js';

/*
 * Fixtures of the tests that run the shipped `pii-safe` policy end to end (they start the proxy
 * harness, so they live apart from support.ts, which unit tests load).
 */

const phone = BUILTIN_PII.find((d) => d.name === 'phone')!;

/** What the built-in phone detector (with its validator) reports in `text`. */
export function phonesIn(text: string): string[] {
  const re = new RegExp(phone.pattern.source, phone.pattern.flags);
  const found: string[] = [];
  for (const m of text.matchAll(re)) {
    const len = phone.validate ? phone.validate(m[0]) : m[0].length;
    if (len > 0) found.push(m[0].slice(0, len));
  }
  return found;
}

/** A proxy whose tenant `acme` runs the shipped `pii-safe` policy, over the simulator. */
export function piiSafeProxy(): Promise<TestProxy> {
  return startTestProxy({ tenants: { acme: { policy: 'pii-safe' } }, config: { policies: { dir: POLICIES_DIR, watch: false } } });
}

/** Sends `text` as a user message item and returns the text the upstream received for it. */
export async function typedReachingModel(tp: TestProxy, c: TestClient, text: string): Promise<string> {
  const upstream = tp.sim.connections.at(-1)!;
  c.send({ type: 'conversation.item.create', item: userMessage(text) });
  await c.next('conversation.item.done');
  const typed = upstream.received.findLast((r) => r.type === 'conversation.item.create')!.event as { item: { content: { text: string }[] } };
  return typed.item.content[0]!.text;
}
