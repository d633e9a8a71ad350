import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { LoggedSession } from '../support/fake-session.js';
import { defineGuardrail, type Decision } from '../../src/policies/api.js';
import { GuardrailFilter } from '../../src/policies/guardrails.js';
import { added, deletes, typed } from './item-events.js';
import { entryOf, guardrailsWith, policyDir, policyFrom, wire } from './support.js';
import { deletesOf, echoedWith, openSession, settled, until } from './late-twin-support.js';

/**
 * The wrong twin deleted by a late custom verdict. A `parallel` custom guardrail's late `block` of a
 * client item sent without an id deleted "the items echoed with its text" (a fingerprint): any item
 * of the same text. Custom code may judge identical texts differently (it reads context, keeps
 * state, asks a model): here it blocks a text the second time it is typed. Verdict after both
 * echoes: both twins were deleted, the one the guardrail let through too. Verdict before the
 * echoes: the first echo of the text went (the twin it let through) and the item it blocked stayed,
 * read by every later response. Guarantee broken: a blocked input never reaches the model (and an
 * allowed one is not taken away). Now the verdict finds its own create (`Sent.blockedBy`, as commit
 * 10ea5d9 did for the built-in rules): the echo that answers that create, or the item it got.
 */

const api = new URL('../../src/policies/api.ts', import.meta.url).pathname;
/**
 * Blocks a `twin:` text the second time it is typed (per session). `hold:` texts wait for the test
 * (globalThis.__lateTwin.release) before they answer; others answer at once (a resolved Promise:
 * before any echo can come back).
 */
const JUDGE = `import { defineGuardrail } from '${api}';
const test = (globalThis.__lateTwin ??= { waiting: [], gates: [] });
export default defineGuardrail({
  name: 'judge',
  wants: ['input'],
  evaluate: (e, ctx) => {
    if (!e.text.includes('twin:')) return { action: 'allow' };
    const seen = ctx.state.get(e.text) ?? 0;
    ctx.state.set(e.text, seen + 1);
    const decision = seen === 1 ? { action: 'block' } : { action: 'allow' };
    if (!e.text.startsWith('hold:')) return Promise.resolve(decision);
    return new Promise((resolve) => test.waiting.push(() => resolve(decision)));
  },
});
`;
/** Holds a `gate:` text (a blocking guardrail: the client direction waits) until the test opens it (globalThis.__lateTwin.gates). */
const GATE = `import { defineGuardrail } from '${api}';
const test = (globalThis.__lateTwin ??= { waiting: [], gates: [] });
export default defineGuardrail({
  name: 'gate',
  wants: ['input'],
  evaluate: (e) => (e.text.startsWith('gate:') ? new Promise((resolve) => test.gates.push(() => resolve({ action: 'allow' }))) : { action: 'allow' }),
});
`;
const POLICY = `
guardrails:
  custom:
    - { id: judge, module: ./judge.mjs, sources: [input], mode: parallel, timeoutMs: 30000 }
    - { id: gate, module: ./gate.mjs, sources: [input], mode: blocking, timeoutMs: 30000 }
`;

interface Waiting {
  waiting: (() => void)[];
  gates: (() => void)[];
}
const held = (): Waiting => (globalThis as unknown as { __lateTwin: Waiting }).__lateTwin;

const item = (text: string, extra: Record<string, unknown> = {}) => ({ type: 'conversation.item.create', ...extra, item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: { policy: 'p' } },
    config: { policies: { dir: policyDir({ 'p.yaml': POLICY, 'judge.mjs': JUDGE, 'gate.mjs': GATE }), watch: false } },
  });
});
afterAll(async () => {
  await tp?.stop();
});


describe('a late custom block of the second of two identical items sent without an id', () => {
  it('verdicts after both echoes: the blocked item is deleted, its twin stays', async () => {
    const { c, sim } = await openSession(tp);
    const text = 'hold: twin: wire the money';
    c.send(item(text));
    c.send(item(text));
    await until(() => echoedWith(c, text).length === 2 && held().waiting.length === 2, 'both echoed, both verdicts to come');
    const [twin, blocked] = echoedWith(c, text) as [string, string];
    for (const release of held().waiting.splice(0)) release();
    await until(() => c.ofType('conversation.item.deleted').length > 0, 'a delete');
    await settled(c);
    // Old code: both twins were deleted (every echo with the text).
    expect(deletesOf(c, sim, [twin, blocked])).toEqual({ upstream: [blocked], client: [blocked] });
    c.close();
  });

  it('verdict before the echoes: the echo that answers the blocked create is deleted, not the first of its text', async () => {
    const { c, sim } = await openSession(tp);
    const text = 'twin: wire the money';
    c.send(item(text));
    c.send(item(text));
    await until(() => echoedWith(c, text).length === 2 && c.ofType('conversation.item.deleted').length > 0, 'both echoed, one deleted');
    const [twin, blocked] = echoedWith(c, text) as [string, string];
    await settled(c);
    // Old code: the first echo of the text (the twin let through) was deleted, the blocked item stayed.
    expect(deletesOf(c, sim, [twin, blocked])).toEqual({ upstream: [blocked], client: [blocked] });
    c.close();
  });

  it('verdict while the blocked item is still judged (a blocking guardrail holds it): its own echo is deleted', async () => {
    const { c, sim } = await openSession(tp);
    const text = 'gate: twin: wire the money';
    c.send(item(text));
    c.send(item(text));
    // The first goes up when its gate opens; the second is judged next: its late block comes at once, before it goes up.
    await until(() => held().gates.length === 1, 'the first held');
    held().gates.shift()!();
    await until(() => held().gates.length === 1 && echoedWith(c, text).length === 1, 'the first echoed, the second held');
    held().gates.shift()!();
    await until(() => echoedWith(c, text).length === 2 && c.ofType('conversation.item.deleted').length > 0, 'both echoed, one deleted');
    const [twin, blocked] = echoedWith(c, text) as [string, string];
    await settled(c);
    // Old code: the first echo of the text (the twin let through) was deleted, the blocked item stayed.
    expect(deletesOf(c, sim, [twin, blocked])).toEqual({ upstream: [blocked], client: [blocked] });
    c.close();
  });

  it('verdict after the upstream refused the blocked create: nothing is deleted, its twin stays', async () => {
    const { c, sim } = await openSession(tp);
    const text = 'hold: twin: refused wire the money';
    c.send(item(text));
    c.send(item(text, { event_id: 'f', previous_item_id: 'item_nope' }));
    await until(() => c.ofType('error').some((e) => (e['error'] as { event_id?: string }).event_id === 'f') && echoedWith(c, text).length === 1 && held().waiting.length === 2, 'the twin echoed, the other refused');
    const [twin] = echoedWith(c, text) as [string];
    for (const release of held().waiting.splice(0)) release();
    await until(() => tp.logs.filter((l) => l.msg === 'guardrail tripped' && l['rule'] === 'judge').length > 0, 'the late block');
    await settled(c);
    // Old code: the twin (echoed with the text, the one the guardrail let through) was deleted.
    expect(deletesOf(c, sim, [twin])).toEqual({ upstream: [], client: [] });
    c.close();
  });
});

describe('a create blocked before its echo, then the policy reloaded to one with nothing to judge', () => {
  it('its echo is still deleted (the echo still answers the create)', async () => {
    let release!: (d: Decision) => void;
    const session = new LoggedSession();
    const judge = defineGuardrail({ name: 'p', wants: ['input'], evaluate: () => new Promise<Decision>((r) => (release = r)) });
    const entry = entryOf(await policyFrom('guardrails:\n  custom: [{ id: p, module: ./x.ts, mode: parallel, timeoutMs: 5000 }]', 'test', async () => ({ default: judge })));
    const filter = new GuardrailFilter(session, entry);
    session.fromClient(filter, wire({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'words' }] } }));
    release({ action: 'block' });
    await new Promise((r) => setTimeout(r, 0));
    entry.current = await policyFrom('guardrails:\n  unknownContentEvents: pass');
    session.fromServer(filter, wire({ type: 'conversation.item.added', event_id: 'ev_ca', previous_item_id: null, item: { id: 'item_w', type: 'message', object: 'realtime.item', role: 'user', status: 'completed', content: [{ type: 'input_text', text: 'words' }] } }));
    // Before: an idle policy passed every server event at once, and the echo that answers the blocked create stayed.
    expect(session.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id'])).toEqual(['item_w']);
  });
});

describe('echoes of creates blocked before their echo, while another late verdict is to come', () => {
  it('are deleted, not kept as fingerprints for a verdict (1260 of them do not end the session)', async () => {
    // "bad" texts are blocked at once; "slow" waits for ever (a verdict to come all along).
    const judge = defineGuardrail({ name: 'late', wants: ['input'], evaluate: (e) => (e.text.startsWith('bad') ? Promise.resolve<Decision>({ action: 'block' }) : new Promise<Decision>(() => {})) });
    const { client, server, session } = await guardrailsWith('guardrails:\n  custom: [{ id: late, module: ./x.ts, mode: parallel, timeoutMs: 30000 }]', judge);
    client(typed('slow', null));
    // In batches the session's conversation follows (64 creates waiting at most).
    for (let batch = 0; batch < 21; batch++) {
      const ids = Array.from({ length: 60 }, (_, i) => `${batch}_${i}`);
      for (const id of ids) client(typed(`bad ${id}`, null));
      await new Promise((r) => setTimeout(r, 0));
      for (const id of ids) server(added(`item_${id}`, `bad ${id}`));
    }
    // Before: each deleted echo was kept too (1024 items at most), and the session ended.
    expect([session.closedWith?.message, deletes(session).length]).toEqual([undefined, 1260]);
  });
});
