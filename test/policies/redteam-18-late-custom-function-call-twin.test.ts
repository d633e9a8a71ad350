import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { policyDir } from './support.js';
import { deletesOf, echoedWith, openSession, settled, until } from './late-twin-support.js';

/**
 * The wrong twin deleted by a late custom verdict, for items with no input or tool-output text.
 * Since f380416 a `parallel` custom guardrail's late `block` of a client item sent without an id
 * follows the create it judged (redteam-17-late-custom-twin), but only creates that added input or
 * tool-output text were followed. A user message holding only an image (`image` text, read by an
 * `image` guardrail) was still found by the fingerprint of its text: a late block of the second of
 * two identical images deleted both (verdict after both echoes), or the first, the one the guardrail
 * let through, while the blocked one stayed (verdict before the echoes). Guarantee broken: a blocked
 * input never reaches the model, and an allowed one is not taken away. Now every create sent without
 * an id is followed, whatever its texts.
 *
 * A client `function_call` item (judged by a `tool_call` guardrail) already paired: its arguments and
 * name are read as input too (a conversation text), so its create was followed. Pinned here as well.
 */

const api = new URL('../../src/policies/api.ts', import.meta.url).pathname;
/**
 * Blocks a text (an image URL, a call's arguments) the second time it is seen (per session). Texts
 * with `hold` wait for the test (globalThis.__lateTwin18); others answer at once (a resolved Promise:
 * before any echo can come back).
 */
const judge = (name: string, source: string): string => `import { defineGuardrail } from '${api}';
const test = (globalThis.__lateTwin18 ??= { waiting: [] });
export default defineGuardrail({
  name: '${name}',
  wants: ['${source}'],
  evaluate: (e, ctx) => {
    if (!e.text.includes('twin')) return { action: 'allow' };
    const seen = ctx.state.get(e.text) ?? 0;
    ctx.state.set(e.text, seen + 1);
    const decision = seen === 1 ? { action: 'block' } : { action: 'allow' };
    if (!e.text.includes('hold')) return Promise.resolve(decision);
    return new Promise((resolve) => test.waiting.push(() => resolve(decision)));
  },
});
`;
const POLICY = `
guardrails:
  custom:
    - { id: pictures, module: ./pictures.mjs, sources: [image], mode: parallel, timeoutMs: 30000 }
    - { id: calls, module: ./calls.mjs, sources: [tool_call], mode: parallel, timeoutMs: 30000 }
`;

const held = (): (() => void)[] => (globalThis as unknown as { __lateTwin18: { waiting: (() => void)[] } }).__lateTwin18.waiting;

const image = (url: string) => ({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_image', image_url: url }] } });
const call = (args: string) => ({ type: 'conversation.item.create', item: { type: 'function_call', call_id: 'call_twin', name: 'pay', arguments: args } });
const marker = (text: string) => ({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: { policy: 'p' } },
    config: { policies: { dir: policyDir({ 'p.yaml': POLICY, 'pictures.mjs': judge('pictures', 'image'), 'calls.mjs': judge('calls', 'tool_call') }), watch: false } },
  });
});
afterAll(async () => {
  await tp?.stop();
});


const kinds = [
  { kind: 'an image (no input text)', create: image, text: (tag: string) => `https://example.com/${tag}-twin.png` },
  { kind: 'a function call (its arguments are input too)', create: call, text: (tag: string) => `{"to":"${tag} twin"}` },
] as const;

describe.each(kinds)('a late custom block of the second of two identical client items sent without an id: $kind', ({ create, text: textOf }) => {
  it('verdicts after both echoes: the blocked item is deleted, its twin stays', async () => {
    const { c, sim } = await openSession(tp);
    const text = textOf('hold');
    c.send(create(text));
    c.send(create(text));
    await until(() => echoedWith(c, text).length === 2 && held().length === 2, 'both echoed, both verdicts to come');
    const [twin, blocked] = echoedWith(c, text) as [string, string];
    for (const release of held().splice(0)) release();
    await until(() => c.ofType('conversation.item.deleted').length > 0, 'a delete');
    await settled(c);
    // Before (the image): both twins were deleted (every echo with the text).
    expect(deletesOf(c, sim, [twin, blocked])).toEqual({ upstream: [blocked], client: [blocked] });
    c.close();
  });

  it('verdict before the echoes: the echo that answers the blocked create is deleted, not the first of its text', async () => {
    const { c, sim } = await openSession(tp);
    const text = textOf('now');
    c.send(create(text));
    c.send(create(text));
    await until(() => echoedWith(c, text).length === 2 && c.ofType('conversation.item.deleted').length > 0, 'both echoed, one deleted');
    const [twin, blocked] = echoedWith(c, text) as [string, string];
    await settled(c);
    // Before (the image): the first echo of the text (the twin let through) was deleted, the blocked item stayed.
    expect(deletesOf(c, sim, [twin, blocked])).toEqual({ upstream: [blocked], client: [blocked] });
    c.close();
  });
});
