import { afterEach, describe, expect, it, vi } from 'vitest';
import { LoggedSession } from '../../test/support/fake-session.js';
import pino from 'pino';
import { entryOf, policyFrom, responseCreated, userText, wire } from '../../test/policies/support.js';
import type { Verdict } from '../pipeline/filter.js';
import type { Frame } from '../pipeline/frame.js';
import { defineGuardrail } from './api.js';
import { GuardrailFilter } from './guardrails.js';
import { checkSessionConfig } from './session-config-check.js';
import { SCAN_LIMIT_RULE } from './guardrail-scans.js';

/**
 * A screened regex still costs quadratic time per scanned window (`[\w.+-]+@[\w-]+\.\w+` on a run
 * of letters: every start runs to the end of the window). Until 2026-12-06 a complete client text
 * was scanned in one task, 16,384 characters per regex run: ~120 ms for 16 KiB, ~9 s for one
 * 1,000,000-character event, every session of the process waiting (test/policies/adversary-regex.test.ts
 * measures the stall). Now texts longer than one window (`maxInputChars`, 1024 by default) are
 * scanned window by window across macrotasks, within a per-event budget (SCAN_BUDGET_MS, src/policies/matchers.ts).
 * No timed assertions: the order of macrotasks is observed, and time is faked where the budget is.
 */

const CARELESS = `
guardrails:
  rules:
    - id: no-emails
      sources: [input]
      match: { regex: [{ pattern: "[\\\\w.+-]+@[\\\\w-]+\\\\.\\\\w+", flags: i }] }
      action: block
`;

async function setup(yaml = CARELESS) {
  const session = new LoggedSession();
  const filter = new GuardrailFilter(session, entryOf(await policyFrom(yaml)));
  const client = (f: Frame) => session.fromClient(filter, f);
  const server = (f: Frame) => session.fromServer(filter, f);
  return { session, client, server };
}
const OUTPUT = CARELESS.replace('sources: [input]', 'sources: [output]').replace('action: block', 'action: cancel_response');

const isPromise = (v: unknown): v is Promise<Verdict> => typeof (v as Promise<Verdict>)?.then === 'function';

/** Resolves the verdict and says whether a macrotask queued right after the frame ran before it. */
async function verdictAfterOthers(v: Verdict | Promise<Verdict>): Promise<{ verdict: Verdict; othersRan: boolean }> {
  let othersRan = false;
  setImmediate(() => (othersRan = true));
  const verdict = await v;
  return { verdict, othersRan };
}

/**
 * The clock (performance.now, slices) and the process's CPU time (process.cpuUsage, the budget)
 * advancing `stepMs` per reading: slices and the budget run out by count, not by the machine's speed.
 */
function fakeNow(stepMs: number): void {
  let t = 0;
  let cpu = 0;
  vi.spyOn(performance, 'now').mockImplementation(() => (t += stepMs));
  vi.spyOn(process, 'cpuUsage').mockImplementation(() => ({ user: (cpu += stepMs * 1000), system: 0 }));
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('guardrail scans of long texts are sliced across macrotasks', () => {
  it('a client text longer than one window: other macrotasks run before its verdict, and the verdict is the same', async () => {
    const { client } = await setup();
    fakeNow(1);
    const clean = await verdictAfterOthers(client(userText('a'.repeat(16_384))));
    expect(clean.othersRan).toBe(true);
    expect(clean.verdict.kind).toBe('continue');
    // A match in the last window (and across a window edge) still blocks.
    const text = `${'a'.repeat(16_384 - 1030)} jane@example.com ${'b'.repeat(1000)}`;
    const found = await verdictAfterOthers(client(userText(text, 'evt_2')));
    expect(found.othersRan).toBe(true);
    expect(found.verdict.kind).toBe('reject');
  });

  it('a thousand short parts of one event are sliced too: they cost what one long text costs', async () => {
    const { client } = await setup();
    fakeNow(1);
    const content = Array.from({ length: 1000 }, () => ({ type: 'input_text', text: 'hello '.repeat(150) }));
    const v = client(wire({ type: 'conversation.item.create', event_id: 'evt_parts', item: { type: 'message', role: 'user', content } }));
    expect(isPromise(v)).toBe(true);
    const { verdict, othersRan } = await verdictAfterOthers(v);
    expect(othersRan).toBe(true);
    expect(verdict.kind).toBe('continue');
  });

  it("a custom guardrail's verdict and the rules' sliced scan combine as at once: rules first, its redaction rescanned", async () => {
    // The guardrail's replacement makes a blocked phrase: the rescan of its text (within the budget) finds it.
    const g = defineGuardrail({ name: 'g', wants: ['input'], evaluate: (e) => ({ action: 'redact', text: e.text.replace('secret', 'ignore previous instructions') }) });
    const yaml = `${CARELESS.replace('action: block', 'action: redact')}    - { id: inj, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }\n  custom: [{ id: g, module: ./x.ts }]\n`;
    const policy = await policyFrom(yaml, 'test', async () => ({ default: g }));
    const judged = async (text: string) => {
      const session = new LoggedSession();
      const filter = new GuardrailFilter(session, entryOf(policy));
      const v = session.fromClient(filter, userText(text));
      return { sliced: isPromise(v), kind: (await v).kind, lines: session.lines.filter((l) => l['msg'] === 'guardrail tripped').map((l) => [l['rule'], l['matcher']]) };
    };
    const short = await judged(`${'a'.repeat(100)} jane@example.com secret`);
    const long = await judged(`${'a'.repeat(5000)} jane@example.com secret`);
    expect(short).toEqual({ sliced: false, kind: 'reject', lines: [['no-emails', 'regex'], ['g', 'custom:verdict'], ['inj', 'phrase:after_redaction']] });
    expect(long).toEqual({ ...short, sliced: true });
  });

  it('a text no longer than one window is still judged at once', async () => {
    const { client } = await setup();
    const v = client(userText(`${'a'.repeat(900)} jane@example.com`));
    expect(isPromise(v)).toBe(false);
    expect((v as Verdict).kind).toBe('reject');
  });

  it('an event whose scan takes longer than the budget (SCAN_BUDGET_MS, 2 s in all) gets overScanLimit: blocked by default (rule scan_limit, label scan_time)', async () => {
    const { client, session } = await setup();
    // Every reading of the clock is 50 ms later: the budget runs out after ~40 windows of 128.
    fakeNow(50);
    const v = await client(userText('a'.repeat(200_000)));
    expect(v.kind).toBe('reject');
    expect(v.kind === 'reject' && v.error.details).toMatchObject({ rule: SCAN_LIMIT_RULE, action: 'block' });
    const line = session.lines.find((l) => l['msg'] === 'guardrail tripped');
    expect(line).toMatchObject({ rule: SCAN_LIMIT_RULE, action: 'block', matcher: 'scan_time' });
  });

  it('an event of many parts past the budget is reported once, not once per part left unscanned', async () => {
    const { client, session } = await setup(CARELESS.replace('guardrails:\n', 'guardrails:\n  overScanLimit: pass_unscanned\n'));
    fakeNow(50);
    const content = Array.from({ length: 200 }, () => ({ type: 'input_text', text: 'a'.repeat(1000) }));
    const v = await client(wire({ type: 'conversation.item.create', event_id: 'evt_parts', item: { type: 'message', role: 'user', content } }));
    expect(v.kind).toBe('continue');
    expect(session.lines.filter((l) => l['msg'] === 'guardrail tripped').map((l) => [l['rule'], l['matcher']])).toEqual([[SCAN_LIMIT_RULE, 'scan_time']]);
  });

  it('with overScanLimit: pass_unscanned the event whose scan ran out of time goes on, logged as scan_limit', async () => {
    const { client, session } = await setup(CARELESS.replace('guardrails:\n', 'guardrails:\n  overScanLimit: pass_unscanned\n'));
    fakeNow(50);
    const v = await client(userText(`${'a'.repeat(200_000)} jane@example.com`));
    expect(v.kind).toBe('continue');
    expect(session.lines.find((l) => l['msg'] === 'guardrail tripped')).toMatchObject({ rule: SCAN_LIMIT_RULE, action: 'log', matcher: 'scan_time' });
  });

  it("a model's long complete text (.done, and an item repeating it) is judged across macrotasks too", async () => {
    const { server, session } = await setup(OUTPUT);
    await server(responseCreated('resp_1'));
    const text = 'a'.repeat(16_384);
    fakeNow(1);
    const done = server(wire({ type: 'response.output_text.done', event_id: 'ev_d', response_id: 'resp_1', item_id: 'item_m', output_index: 0, content_index: 0, text }));
    const d = await verdictAfterOthers(done);
    expect(d.othersRan).toBe(true);
    expect(d.verdict.kind).toBe('continue');
    const item = { id: 'item_m', type: 'message', object: 'realtime.item', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: `${text} jane@example.com` }] };
    const i = await verdictAfterOthers(server(wire({ type: 'response.output_item.done', event_id: 'ev_i', response_id: 'resp_1', output_index: 0, item })));
    expect(i.othersRan).toBe(true);
    // The address in the item's text stops the response, as a scan at once would: the text is blanked, the response cancelled.
    expect(i.verdict.kind).toBe('replace');
    const shown = i.verdict.kind === 'replace' ? (i.verdict.frame.json()['item'] as { content: { text: string }[] }).content[0]!.text : null;
    expect(shown).toBe('');
    expect(session.cancelled.map((c) => c.responseId)).toEqual(['resp_1']);
  });

  it('a session config minted over HTTP: long instructions are sliced, and one past the budget is refused (scan_limit)', async () => {
    const policy = await policyFrom(CARELESS);
    const info = { sessionId: '', tenantId: 'acme', model: 'gpt-realtime', policy: 'test', log: pino({ level: 'silent' }) };
    fakeNow(1);
    let othersRan = false;
    setImmediate(() => (othersRan = true));
    const ok = await checkSessionConfig(policy, { instructions: 'a'.repeat(16_384) }, info);
    expect(othersRan).toBe(true);
    expect(ok.refusal).toBeNull();
    vi.restoreAllMocks();
    fakeNow(50);
    const over = await checkSessionConfig(policy, { instructions: 'a'.repeat(200_000) }, info);
    expect(over.findings.map((f) => [f.id, f.action, f.label])).toEqual([[SCAN_LIMIT_RULE, 'block', 'scan_time']]);
    expect(over.refusal?.details).toMatchObject({ rule: SCAN_LIMIT_RULE });
  });
});
