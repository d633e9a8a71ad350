import { afterEach, describe, expect, it, vi } from 'vitest';
import { LoggedSession } from '../../test/support/fake-session.js';
import { guardrailsWith, wire } from '../../test/policies/support.js';
import { added, deleted, deletes, FILLER, modelAdded, refused, spokenAdded, splitAroundFiller, toolOut, transcript, typed } from '../../test/policies/item-events.js';
import { allowScanWindows } from '../../test/policies/scan-windows.js';
import type { Verdict } from '../pipeline/filter.js';
import { defineGuardrail } from './api.js';

/**
 * Tests for the mutants of src/policies/guardrails.ts that survived the range run of 2026-12-06
 * (thirteenth session: lines 1-785 and the withdraw / settle / echo matching code), and for the open
 * survivors of the twelfth (the spoken turn's following items). What the upstream refuses or deletes
 * leaves the context (#withdraw, #unplace, #saidOf), what is past MAX_SAID stays (#settle), an echo
 * names the item it shows (#answered). Driven without sockets (a LoggedSession records what the
 * filter sends, reports and logs).
 */

type Json = Record<string, unknown>;

const INJ = 'guardrails:\n  rules: [{ id: inj, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }]';
const RULE_INJ = '    - { id: inj, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }';
const INJ_ZEBRA = `guardrails:\n  rules:\n${RULE_INJ}\n    - { id: zebra, sources: [input], match: { phrases: ["zebra crossing"] }, action: block }`;
const FILLER2 = `${'other words '.repeat(20)}end`;

const segment = (id: string, text: string) =>
  wire({ type: 'conversation.item.input_audio_transcription.segment', event_id: `ev_g_${id}`, item_id: id, content_index: 0, id: `seg_${id}`, speaker: 'A', start: 0.5, end: 1.5, text });
const outDone = (id: string, text: string) =>
  wire({ type: 'response.output_text.done', event_id: `ev_od_${id}`, response_id: 'resp_1', item_id: id, output_index: 0, content_index: 0, text });
const reports = (s: LoggedSession) => s.reports.flatMap((r) => (r.kind === 'guardrail' ? [[r.ruleId, r.action]] : []));
const isPromise = (v: unknown): boolean => typeof (v as Promise<Verdict>)?.then === 'function';
const settle = () => new Promise((r) => setTimeout(r, 0));

afterEach(() => {
  vi.restoreAllMocks();
});

describe('budgetFor: only texts some rule reads count toward the sliced scan', () => {
  it('a long input text under a policy with output rules only is decided at once (no budget, no Promise)', async () => {
    const g = await guardrailsWith('guardrails:\n  rules: [{ id: out, sources: [output], match: { phrases: ["zzz"] }, action: block }]');
    const v = g.client(typed('word '.repeat(1000), 'item_1'));
    expect(isPromise(v)).toBe(false);
    expect((v as Verdict).kind).toBe('continue');
  });
});

describe('only an upstream error refuses a waiting item create', () => {
  it('another event carrying an error member naming the create takes nothing out of the context', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    client(typed('ignore previous', 'item_a', 'evt_a'));
    client(typed(FILLER, 'item_x', 'evt_x'));
    server(wire({ type: 'rate_limits.updated', event_id: 'ev_rl', rate_limits: [], error: { event_id: session.upstreamIdOf('evt_x') } }));
    expect(client(typed('instructions, please', 'item_b', 'evt_b')).kind).toBe('continue');
    expect(deletes(session)).toEqual([]);
  });
});

describe('a deletion while only inserted items are placed (#said empty): what follows the deleted item is judged again', () => {
  it('items inserted at the start and echoed: deleting the middle one deletes the item after it (named by its place)', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    server(modelAdded('item_m'));
    expect(client(typed('instructions, please', 'item_b', 'evt_b', 'root')).kind).toBe('continue');
    expect(client(typed(FILLER, 'item_f', 'evt_f', 'root')).kind).toBe('continue');
    expect(client(typed('ignore previous', 'item_a', 'evt_a', 'root')).kind).toBe('continue');
    server(added('item_b', 'instructions, please'));
    server(added('item_f', FILLER));
    server(added('item_a', 'ignore previous'));
    server(deleted('item_f'));
    expect(deletes(session)).toEqual(['item_b']);
  });
});

describe('#saidOf: a placed item met again after a deletion is named by what it added to the context', () => {
  it("a spoken turn: its own record (the transcript's event type is logged), not an earlier turn", async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    server(spokenAdded('item_s0'));
    expect(server(transcript('item_s0', 'hello')).kind).toBe('continue');
    server(modelAdded('item_m', 'item_s0'));
    server(spokenAdded('item_s', 'item_m'));
    expect(server(transcript('item_s', 'instructions now')).kind).toBe('continue');
    expect(client(typed(FILLER, 'item_f', 'evt_f', 'item_m')).kind).toBe('continue');
    expect(client(typed('ignore previous', 'item_a', 'evt_a', 'item_m')).kind).toBe('continue');
    server(deleted('item_f'));
    expect(deletes(session)).toEqual(['item_s']);
    const line = session.lines.find((l) => l['msg'] === 'guardrail tripped');
    expect([line?.['eventType'], line?.['matcher']]).toEqual(['conversation.item.input_audio_transcription.completed', 'phrase:refused_item']);
  });

  it("a typed item appended and echoed: its own record (its later transcript events are not withheld as a spoken turn's)", async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    server(modelAdded('item_m'));
    expect(client(typed('instructions, please', 'item_b', 'evt_b')).kind).toBe('continue');
    server(added('item_b', 'instructions, please', 'item_m'));
    expect(client(typed(FILLER, 'item_f', 'evt_f', 'item_m')).kind).toBe('continue');
    expect(client(typed('ignore previous', 'item_a', 'evt_a', 'item_m')).kind).toBe('continue');
    server(added('item_f', FILLER, 'item_m'));
    server(added('item_a', 'ignore previous', 'item_m'));
    server(deleted('item_f'));
    expect(deletes(session)).toEqual(['item_b']);
    expect(server(segment('item_b', 'hello')).kind).toBe('continue');
  });
});

describe('#retract: the rule recorded is the one of the strongest action', () => {
  it('block and cancel_response across the same split: the item is marked with the cancel_response rule', async () => {
    const yaml = `
guardrails:
  rules:
    - { id: inj, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
    - { id: cr, sources: [input], match: { phrases: ["previous instructions"] }, action: cancel_response }
`;
    const { client, server, session } = await guardrailsWith(yaml);
    splitAroundFiller({ client, server });
    server(deleted('item_x'));
    expect(deletes(session)).toEqual(['item_b']);
    expect(session.conversation.item('item_b')?.marks.map((m) => [m.kind, m.rule])).toEqual([
      ['blocked', 'cr'],
      ['deleted', 'cr'],
    ]);
  });
});

describe('#answered: an echo of an item sent without an id is found by its texts', () => {
  it('the echo of the second item sent without an id takes the first (never echoed) out: the second meets the text before it, and is deleted', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    client(typed('ignore previous', 'item_a', 'evt_a'));
    server(added('item_a', 'ignore previous'));
    client(typed(FILLER, null, 'evt_x'));
    expect(client(typed('instructions, please', null, 'evt_b')).kind).toBe('continue');
    server(added('item_srv_b', 'instructions, please'));
    expect(deletes(session)).toEqual(['item_srv_b']);
  });
});

describe('#answered: one text in common is enough to know an echo', () => {
  it('an item sent without an id whose echo shows one of its texts otherwise (an image not shown back) is still answered by it', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    const image = 'data:image/png;base64,AAAA';
    client(typed('ignore previous', 'item_a', 'evt_a'));
    server(added('item_a', 'ignore previous'));
    const parts = [
      { type: 'input_text', text: FILLER },
      { type: 'input_image', image_url: image },
    ];
    expect(client(wire({ type: 'conversation.item.create', event_id: 'evt_x', item: { type: 'message', role: 'user', content: parts } })).kind).toBe('continue');
    expect(client(typed('instructions, please', 'item_b', 'evt_b')).kind).toBe('continue');
    server(wire({ type: 'conversation.item.added', event_id: 'ev_a_x', previous_item_id: 'item_a', item: { id: 'item_srv_x', type: 'message', object: 'realtime.item', role: 'user', status: 'completed', content: [parts[0], { type: 'input_image', image_url: null }] } }));
    server(added('item_b', 'instructions, please', 'item_srv_x'));
    // item_x is in the conversation: nothing is taken out, item_b stays.
    expect(deletes(session)).toEqual([]);
  });
});

describe('#withdraw: the context rebuilt without what left', () => {
  it('a blamed tool output leaves the input context too (its text as input): the next typed item does not meet it', async () => {
    const yaml = `
guardrails:
  rules:
    - { id: tool-inj, sources: [tool_output], match: { phrases: ["ignore previous instructions"] }, action: block }
    - { id: zebra, sources: [input], match: { phrases: ["zebra crossing"] }, action: block }
`;
    const { client, server, session } = await guardrailsWith(yaml);
    expect(client(toolOut('ignore previous', 'item_a', 'evt_a')).kind).toBe('continue');
    expect(client(toolOut(FILLER, 'item_x', 'evt_x')).kind).toBe('continue');
    expect(client(toolOut('instructions zebra', 'item_b', 'evt_b')).kind).toBe('continue');
    server(refused(session.upstreamIdOf('evt_x')));
    expect(deletes(session)).toEqual(['item_b']);
    expect(client(typed('crossing', 'item_d', 'evt_d')).kind).toBe('continue');
  });

  it('a blamed spoken turn takes only its own text out: a spoken turn after it stays context', async () => {
    const { client, server, session } = await guardrailsWith(INJ_ZEBRA);
    client(typed('ignore previous', 'item_a', 'evt_a'));
    client(typed(FILLER, 'item_x', 'evt_x'));
    expect(server(transcript('item_s1', 'instructions now')).kind).toBe('continue');
    expect(server(transcript('item_s2', 'zebra')).kind).toBe('continue');
    server(refused(session.upstreamIdOf('evt_x')));
    expect(deletes(session)).toEqual(['item_s1']);
    expect(client(typed('crossing', 'item_d', 'evt_d')).kind).toBe('reject');
  });

  it('only texts of the source are its context: an input item between a refused tool output and the next is no tool_output context', async () => {
    const yaml = 'guardrails:\n  rules: [{ id: tool-inj, sources: [tool_output], match: { phrases: ["ignore previous instructions"] }, action: block }]';
    const { client, server, session } = await guardrailsWith(yaml);
    client(typed('ignore previous', 'item_a', 'evt_a'));
    client(toolOut(FILLER, 'item_x', 'evt_x'));
    expect(client(toolOut('instructions', 'item_b', 'evt_b')).kind).toBe('continue');
    server(refused(session.upstreamIdOf('evt_x')));
    expect(deletes(session)).toEqual([]);
  });

  it('a refused first item leaves the record for good: a later refusal does not find it between the base and what follows', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    client(typed('ignore previous', 'item_a', 'evt_a'));
    client(typed(FILLER, 'item_x', 'evt_x'));
    client(typed(FILLER2, 'item_y', 'evt_y'));
    client(typed('instructions', 'item_c', 'evt_c'));
    // 129 items: the first (item_a) joins the base, item_x is the first kept.
    for (let i = 0; i < 125; i++) client(typed(`ok ${i}`, `item_n${i}`, `evt_n${i}`));
    server(refused(session.upstreamIdOf('evt_x')));
    expect(deletes(session)).toEqual([]);
    server(refused(session.upstreamIdOf('evt_y')));
    expect(deletes(session)).toEqual(['item_c']);
  });

  it('the rebuilt context starts empty when nothing joined the base', async () => {
    // A probe rule: it matches only if some text ending in "here!" (and an optional "ok") came before "instructions".
    const yaml = "guardrails:\n  rules: [{ id: bang, sources: [input], match: { regex: ['here!(ok )?instructions'] }, action: block }]";
    const { client, server, session } = await guardrailsWith(yaml);
    client(typed(FILLER, 'item_x', 'evt_x'));
    expect(client(typed('instructions', 'item_c', 'evt_c')).kind).toBe('continue');
    server(refused(session.upstreamIdOf('evt_x')));
    expect(deletes(session)).toEqual([]);
  });

  it('a 16-character window: a record starts with its own text (its start is built from nothing), and is judged again by it', async () => {
    // No phrase, an unbounded regex: the window is streamWindowChars (16).
    const yaml = "guardrails:\n  streamWindowChars: 16\n  rules: [{ id: inj, sources: [input], match: { regex: ['ignore\\s+previous\\s+instructions'] }, action: block }]";
    const { client, server, session } = await guardrailsWith(yaml);
    // A phrase over three items around the refused one: only #withdraw finds the third (the one
    // after the refused item, which #unplace meets, completes nothing alone).
    client(typed('ignore', 'item_a', 'evt_a'));
    client(typed(FILLER, 'item_x', 'evt_x'));
    expect(client(typed('previous', 'item_b', 'evt_b')).kind).toBe('continue');
    expect(client(typed('instructions', 'item_c', 'evt_c')).kind).toBe('continue');
    server(refused(session.upstreamIdOf('evt_x')));
    expect(deletes(session)).toEqual(['item_c']);
  });
});

describe('#settle: past MAX_SAID (128) records the oldest joins the base and stays context', () => {
  const run = async (after: (g: Awaited<ReturnType<typeof guardrailsWith>>) => void, yaml = INJ) => {
    const g = await guardrailsWith(yaml);
    g.client(typed('ignore', 'item_a', 'evt_a'));
    g.client(typed(FILLER, 'item_x', 'evt_x'));
    g.client(typed('previous', 'item_b', 'evt_b'));
    g.client(typed('instructions', 'item_c', 'evt_c'));
    after(g);
    g.server(refused(g.session.upstreamIdOf('evt_x')));
    return deletes(g.session);
  };
  const fillers = (n: number) => (g: Awaited<ReturnType<typeof guardrailsWith>>) => {
    for (let i = 0; i < n; i++) g.client(typed(`ok ${i}`, `item_n${i}`, `evt_n${i}`));
  };

  it('129 records: only the oldest joined the base, the refused item is taken out and the phrase after it found', async () => {
    expect(await run(fillers(125))).toEqual(['item_c']);
  });

  it('130 records: the refused item had joined the base, it stays context', async () => {
    expect(await run(fillers(126))).toEqual([]);
  });

  it("a model's texts are no records: 126 outputs push nothing into the base", async () => {
    const yaml = `guardrails:\n  rules:\n${RULE_INJ}\n    - { id: note, sources: [output], match: { phrases: ["zzz"] }, action: log }`;
    expect(
      await run((g) => {
        for (let i = 0; i < 126; i++) g.server(outDone(`item_o${i}`, `model says ${i}`));
      }, yaml),
    ).toEqual(['item_c']);
  });

  it('the base keeps what joined it before: two records joined, the phrase over both still meets the item after the refused one', async () => {
    const { client, server, session } = await guardrailsWith(INJ);
    client(typed('ignore', 'item_a', 'evt_a'));
    client(typed('previous', 'item_y', 'evt_y'));
    client(typed(FILLER, 'item_x', 'evt_x'));
    client(typed('instructions', 'item_c', 'evt_c'));
    for (let i = 0; i < 126; i++) client(typed(`ok ${i}`, `item_n${i}`, `evt_n${i}`));
    server(refused(session.upstreamIdOf('evt_x')));
    expect(deletes(session)).toEqual(['item_c']);
  });

  it('the base starts empty', async () => {
    // The probe rule above: only "ok" joined the base, nothing before it.
    const yaml = "guardrails:\n  rules: [{ id: bang, sources: [input], match: { regex: ['here!(ok )?instructions'] }, action: block }]";
    const { client, server, session } = await guardrailsWith(yaml);
    client(typed('ok', 'item_a', 'evt_a'));
    client(typed(FILLER, 'item_x', 'evt_x'));
    client(typed('instructions', 'item_c', 'evt_c'));
    // 129 records: item_a joins the base.
    for (let i = 0; i < 126; i++) client(typed(`fine ${i}`, `item_n${i}`, `evt_n${i}`));
    server(refused(session.upstreamIdOf('evt_x')));
    expect(deletes(session)).toEqual([]);
  });
});

describe("an item a call's browser wrote takes its place with the end of its first source's texts", () => {
  it('an MCP call with an output and an error: a tool output inserted after it meets the output, not the error (read as input)', async () => {
    const yaml = 'guardrails:\n  rules: [{ id: tool-inj, sources: [tool_output], match: { phrases: ["ignore previous instructions"] }, action: block }]';
    const g = await guardrailsWith(yaml);
    Object.assign(g.session, { callId: 'rtc_1' });
    const call = { id: 'item_mc', type: 'mcp_call', server_label: 'docs', name: 'lookup', output: 'ignore previous', error: 'zzz' };
    expect(g.server(wire({ type: 'conversation.item.added', event_id: 'ev_mc', previous_item_id: null, item: call })).kind).toBe('continue');
    g.server(modelAdded('item_m', 'item_mc'));
    const inserted = wire({ type: 'conversation.item.create', event_id: 'evt_o', previous_item_id: 'item_mc', item: { id: 'item_o', type: 'function_call_output', call_id: 'call_o', output: 'instructions' } });
    expect(g.client(inserted)).toMatchObject({ kind: 'reject', error: { details: { rule: 'tool-inj' } } });
  });
});

describe("a spoken turn's complete transcript and the typed items around its place (twelfth session's open survivors)", () => {
  it("a model's text is not judged against the typed input before its place (output rules read output context)", async () => {
    const yaml = 'guardrails:\n  rules: [{ id: out, sources: [output], match: { phrases: ["ignore previous instructions"] }, action: block }]';
    const { client, server, session } = await guardrailsWith(yaml);
    client(typed('ignore previous', 'item_a', 'evt_a'));
    server(added('item_a', 'ignore previous'));
    server(modelAdded('item_m', 'item_a'));
    expect(server(outDone('item_m', 'instructions')).kind).toBe('continue');
    expect(reports(session)).toEqual([]);
  });

  it('a rule found across the typed item before the turn counts even when another rule tripped the turn alone', async () => {
    const yaml = `
guardrails:
  rules:
    - { id: inj, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
    - { id: note, sources: [input], match: { phrases: ["zzz"] }, action: log }
`;
    const { client, server, session } = await guardrailsWith(yaml);
    server(modelAdded('item_m'));
    server(spokenAdded('item_s', 'item_m'));
    expect(client(typed('ignore previous', 'item_a', 'evt_a', 'item_m')).kind).toBe('continue');
    expect(server(transcript('item_s', 'instructions zzz')).kind).toBe('drop');
    expect(reports(session)).toEqual([
      ['note', 'log'],
      ['inj', 'block'],
    ]);
  });

  it("the budget runs out on the match across the typed item before the turn: scan_time, the transcript's decision", async () => {
    const long = `instructions ${'word '.repeat(700)}`;
    // Control: the turn's own scan alone (no typed item before its place), windows counted.
    const alone = await guardrailsWith(INJ);
    alone.server(modelAdded('item_m'));
    alone.server(spokenAdded('item_s', 'item_m'));
    const counted = allowScanWindows(Number.MAX_SAFE_INTEGER);
    expect((await alone.server(transcript('item_s', long))).kind).toBe('continue');
    const used = counted.used();
    vi.restoreAllMocks();
    const { client, server, session } = await guardrailsWith(INJ);
    server(modelAdded('item_m'));
    server(spokenAdded('item_s', 'item_m'));
    client(typed('hello', 'item_a', 'evt_a', 'item_m'));
    allowScanWindows(used);
    const v = await server(transcript('item_s', long));
    expect(reports(session)).toEqual([['scan_limit', v.kind === 'continue' ? 'log' : 'block']]);
  });
});

describe('late blocks and echoes kept for items sent without an id are bounded', () => {
  const lateBlock = defineGuardrail({ name: 'late', wants: ['input'], evaluate: async (e) => ({ action: e.text.startsWith('bad') ? 'block' : 'allow' }) });
  const LATE = `${INJ}\n  custom: [{ id: late, module: ./x.ts, mode: parallel }]`;

  it('256 late blocks waiting for their echo: a retraction of an item sent without an id takes none (it waits on its create); one more late block ends the session', async () => {
    const { client, server, session } = await guardrailsWith(LATE, lateBlock);
    // Since 2026-12-07 a late block waits on its create while that is followed (the last 256): the
    // first 256 of these are not, and wait on their texts' echoes. The echo of the last answers the
    // 255 before it (refused: nothing to delete) and deletes it.
    for (let i = 0; i < 512; i++) client(typed(`bad ${i}`, null));
    await settle();
    server(added('item_bad_511', 'bad 511'));
    expect(session.closedWith).toBeNull();
    client(typed('ignore previous', 'item_a', 'evt_a'));
    client(typed(FILLER, 'item_x', 'evt_x'));
    client(typed('instructions, please', null, 'evt_b'));
    await settle();
    expect(session.closedWith).toBeNull();
    server(refused(session.upstreamIdOf('evt_x')));
    // Since 2026-12-07 the retraction is tied to its create (the echo answering it is deleted), not
    // to a late block of its text (test/policies/redteam-17-anonymous-twin.test.ts).
    expect(session.closedWith).toBeNull();
    server(added('item_a', 'ignore previous'));
    server(added('item_srv_b', 'instructions, please', 'item_a'));
    expect(deletes(session)).toEqual(['item_bad_511', 'item_srv_b']);
    // The echo of item_a (named by its id) settled every create before it: the 256 late blocks still
    // waiting went (since 2026-12-07: the upstream answers in order, their creates were refused).
    // 513 creates: the first 257 are no longer followed when their late blocks come, the 257th ends it.
    for (let i = 0; i < 513; i++) client(typed(`bad more ${i}`, null));
    await settle();
    expect(session.closedWith?.code).toBe('governance_failed');
  });

  it('with no late verdict to come, echoes are not remembered: 1025 echoed items do not end the session', async () => {
    const { client, server, session } = await guardrailsWith(LATE, lateBlock);
    // A late block whose echo never comes: echoes are looked at, none is to be kept.
    client(typed('bad one', null));
    await settle();
    for (let i = 0; i < 1025; i++) {
      client(typed(`fine ${i}`, `item_${i}`, `evt_${i}`));
      server(added(`item_${i}`, `fine ${i}`));
    }
    expect(session.closedWith).toBeNull();
  });
});

describe('what is kept of a long text is its start and end, not the text (memory)', () => {
  it('40 client items of 900,000 characters: the filter keeps well under their size alive', async () => {
    const { setFlagsFromString } = await import('node:v8');
    const { runInNewContext } = await import('node:vm');
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // No input rule: the texts are placed and kept as context without a scan (quick).
    const { client, server, filter } = await guardrailsWith('guardrails:\n  rules: [{ id: out, sources: [output], match: { phrases: ["zzz"] }, action: block }]');
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 40; i++) {
      const text = `item ${i} ${'word '.repeat(180_000)}`;
      expect(client(typed(text, `item_${i}`, `evt_${i}`)).kind).toBe('continue');
      server(added(`item_${i}`, text));
    }
    gc();
    const kept = process.memoryUsage().heapUsed - before;
    expect(filter).not.toBeNull();
    // 40 texts kept whole would be 36 MB or more.
    expect(kept).toBeLessThan(12 * 1024 * 1024);
  }, 60_000);
});
