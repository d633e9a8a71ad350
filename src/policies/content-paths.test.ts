import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../pipeline/frame.js';
import type { ClientEventType, ServerEventType } from '../protocol/events.js';
import { CLIENT_CONTENT_TYPES, CONTENT_PATHS, contentPath, eventTexts, NO_CONTENT, sessionTextChanges, type ContentText } from './content-paths.js';
import type { Source } from './matchers.js';

describe('content-path table', () => {
  it('has no type both with and without content, and no type twice', () => {
    for (const p of CONTENT_PATHS) expect(NO_CONTENT.has(p.type), p.type).toBe(false);
    const keys = CONTENT_PATHS.map((p) => `${p.direction} ${p.type}`);
    expect(new Set(keys).size).toBe(keys.length);
  });
});

/**
 * Every event type of the GA protocol (the `openai` SDK's unions: the compiler rejects a missing
 * or unknown key), plus the session-level types of translation and transcription sessions, with
 * where its content is. A type that carries content and is listed as carrying none would pass
 * every rule; one that carries none and is missing would be refused by `unknownContentEvents: block`.
 */
type Expected = 'none' | `${'delta' | 'done'} ${Source}` | 'texts';
const SERVER: Record<ServerEventType, Expected> = {
  'conversation.created': 'none',
  'conversation.item.created': 'texts',
  'conversation.item.deleted': 'none',
  'conversation.item.input_audio_transcription.completed': 'done input',
  'conversation.item.input_audio_transcription.delta': 'delta input',
  'conversation.item.input_audio_transcription.failed': 'none',
  'conversation.item.retrieved': 'texts',
  'conversation.item.truncated': 'none',
  error: 'none',
  'input_audio_buffer.cleared': 'none',
  'input_audio_buffer.committed': 'none',
  'input_audio_buffer.dtmf_event_received': 'none',
  'input_audio_buffer.speech_started': 'none',
  'input_audio_buffer.speech_stopped': 'none',
  'rate_limits.updated': 'none',
  'response.output_audio.delta': 'none',
  'response.output_audio.done': 'none',
  'response.output_audio_transcript.delta': 'delta output',
  'response.output_audio_transcript.done': 'done output',
  'response.content_part.added': 'texts',
  'response.content_part.done': 'texts',
  'response.created': 'texts',
  'response.done': 'texts',
  'response.function_call_arguments.delta': 'delta tool_call',
  'response.function_call_arguments.done': 'done tool_call',
  'response.output_item.added': 'texts',
  'response.output_item.done': 'texts',
  'response.output_text.delta': 'delta output',
  'response.output_text.done': 'done output',
  'session.created': 'none',
  'session.updated': 'none',
  'output_audio_buffer.started': 'none',
  'output_audio_buffer.stopped': 'none',
  'output_audio_buffer.cleared': 'none',
  'conversation.item.added': 'texts',
  'conversation.item.done': 'texts',
  'input_audio_buffer.timeout_triggered': 'none',
  'conversation.item.input_audio_transcription.segment': 'texts',
  'mcp_list_tools.in_progress': 'none',
  'mcp_list_tools.completed': 'none',
  'mcp_list_tools.failed': 'none',
  'response.mcp_call_arguments.delta': 'delta tool_call',
  'response.mcp_call_arguments.done': 'done tool_call',
  'response.mcp_call.in_progress': 'none',
  'response.mcp_call.completed': 'none',
  'response.mcp_call.failed': 'none',
};
const CLIENT: Record<ClientEventType, Expected> = {
  'conversation.item.create': 'texts',
  'conversation.item.delete': 'none',
  'conversation.item.retrieve': 'none',
  'conversation.item.truncate': 'none',
  'input_audio_buffer.append': 'none',
  'input_audio_buffer.clear': 'none',
  'output_audio_buffer.clear': 'none',
  'input_audio_buffer.commit': 'none',
  'response.cancel': 'none',
  'response.create': 'texts',
  'session.update': 'texts',
};
/** Session-level events of translation and transcription sessions (not in the SDK's unions). */
const SESSION_SERVER: Record<string, Expected> = {
  'session.output_transcript.delta': 'delta output',
  'session.input_transcript.delta': 'delta input',
  'session.output_audio.delta': 'none',
  'session.closed': 'none',
  'transcription_session.updated': 'none',
};
/** The Azure preview protocol's (beta) server event names that differ from GA (found 2026-12-05: they were unknown, unread). */
const PREVIEW_SERVER: Record<string, Expected> = {
  'response.text.delta': 'delta output',
  'response.text.done': 'done output',
  'response.audio_transcript.delta': 'delta output',
  'response.audio_transcript.done': 'texts',
  'response.audio.delta': 'none',
  'response.audio.done': 'none',
};
const SESSION_CLIENT: Record<string, Expected> = {
  'session.input_audio_buffer.append': 'none',
  'session.close': 'none',
  // The Azure preview protocol's transcription session update: its input_audio_transcription.prompt
  // is input text (until 2026-12-06 listed as no content, and the prompt passed every rule).
  'transcription_session.update': 'texts',
};

function classify(direction: 'client' | 'server', type: string): Expected | 'unknown' {
  const path = contentPath(direction, type);
  if (path) {
    expect(path.direction).toBe(direction);
    expect(path.type).toBe(type);
    return path.kind === 'texts' ? 'texts' : `${path.kind} ${path.stream!}`;
  }
  return NO_CONTENT.has(type) ? 'none' : 'unknown';
}

describe('content-path table: every event type of the protocol', () => {
  it('classifies each server event type: content path (with its kind and stream) or no content', () => {
    for (const [type, expected] of Object.entries({ ...SERVER, ...SESSION_SERVER, ...PREVIEW_SERVER })) expect(classify('server', type), type).toBe(expected);
  });

  it('classifies each client event type', () => {
    for (const [type, expected] of Object.entries({ ...CLIENT, ...SESSION_CLIENT })) expect(classify('client', type), type).toBe(expected);
    expect(CLIENT_CONTENT_TYPES).toEqual(['conversation.item.create', 'response.create', 'session.update', 'transcription_session.update']);
  });

  it('lists nothing else: no stray rows, and a type of one direction is not a content path of the other', () => {
    const known = new Set([...Object.keys(SERVER), ...Object.keys(SESSION_SERVER), ...Object.keys(PREVIEW_SERVER), ...Object.keys(CLIENT), ...Object.keys(SESSION_CLIENT)]);
    for (const p of CONTENT_PATHS) expect(known.has(p.type), p.type).toBe(true);
    for (const t of NO_CONTENT) expect(known.has(t), t).toBe(true);
    expect(contentPath('client', 'response.done')).toBeUndefined();
    expect(contentPath('client', 'response.output_text.delta')).toBeUndefined();
    expect(contentPath('server', 'response.create')).toBeUndefined();
    expect(contentPath('server', 'session.update')).toBeUndefined();
    expect(contentPath('server', 'no.such.event')).toBeUndefined();
    expect(NO_CONTENT.has('no.such.event')).toBe(false);
  });

  it('names the field of each row as the event carries it: deltas in `delta`, each done in its own field', () => {
    for (const p of CONTENT_PATHS) {
      expect(p.field.length, p.type).toBeGreaterThan(0);
      expect(p.sources.length, p.type).toBeGreaterThan(0);
      if (p.kind === 'delta') expect(p.field, p.type).toBe('delta');
      if (p.kind !== 'texts') expect(p.sources, p.type).toBe(p.stream);
      else expect(p.stream, p.type).toBeUndefined();
    }
    const field = (type: string) => contentPath('server', type)!.field;
    expect(field('response.output_text.done')).toBe('text');
    expect(field('response.output_audio_transcript.done')).toBe('transcript');
    expect(field('conversation.item.input_audio_transcription.completed')).toBe('transcript');
    expect(field('response.function_call_arguments.done')).toMatch(/^arguments\b/);
    expect(field('response.mcp_call_arguments.done')).toBe('arguments');
    expect(field('conversation.item.input_audio_transcription.segment')).toBe('text');
  });
});

/** The README table rows: each with the full event types its event cell names (`x.delta` / `.done`). */
function readmeRows(): { types: string[]; cells: string[] }[] {
  const readme = readFileSync(new URL('../../policies/README.md', import.meta.url), 'utf8');
  const table = readme.slice(readme.indexOf('### Content paths'), readme.indexOf('### Streaming'));
  return table
    .split('\n')
    .filter((l) => l.startsWith('| upstream') || l.startsWith('| client'))
    .map((l) => {
      const cells = l.split('|').map((c) => c.trim());
      let family = '';
      const types = (cells[2]!.match(/`[^`]+`/g) ?? []).map((tok) => {
        const name = tok.slice(1, -1);
        if (name.startsWith('.')) return family + name;
        family = name.split('.').slice(0, -1).join('.');
        return name;
      });
      return { types, cells };
    });
}

describe('content-path table: policies/README.md', () => {
  it('documents each row with its direction, field and sources', () => {
    for (const p of CONTENT_PATHS) {
      const rows = readmeRows().filter((r) => r.types.includes(p.type));
      expect(rows, p.type).toHaveLength(1);
      const [, direction, , field, sources] = rows[0]!.cells;
      expect(direction, p.type).toBe(p.direction === 'client' ? 'client → upstream' : 'upstream → client');
      // Each named field (the part before a parenthesis) shows in the row's field column.
      for (const name of p.field.replace(/\(.*?\)/g, '').split(',').map((s) => s.trim())) expect(field, `${p.type}: ${name}`).toContain(`\`${name}\``);
      if (sources!.includes('by item')) expect(p.sources, p.type).toContain('by item:');
      else expect(sources, p.type).toContain(p.sources);
    }
  });

  it('documents no event type the table does not have', () => {
    const documented = readmeRows().flatMap((r) => r.types);
    expect(documented.length).toBeGreaterThan(20);
    for (const t of documented) expect(CONTENT_PATHS.some((p) => p.type === t), t).toBe(true);
  });
});

const summary = (texts: readonly ContentText[]) => texts.map((t) => [t.source, t.text, t.functionName, t.itemId]);
/** The members of another shape than the protocol's an event holds (their params; since 2026-12-06 each is one entry, `malformed`). */
const malformedParams = (texts: readonly ContentText[]) => texts.flatMap((t) => (t.malformed ? [t.malformed.param] : []));
const readable = (texts: readonly ContentText[]) => texts.filter((t) => t.malformed === undefined);

/** Applies `<text>` as the redaction of every text, to a copy. */
/** A text's setter applied to copies whose place for it is gone or of another type: each copy stays as it was. */
function expectWritesNothing(t: ContentText, copies: readonly JsonObject[]): void {
  for (const copy of copies) {
    const before = JSON.stringify(copy);
    t.set(copy, 'y');
    expect(JSON.stringify(copy)).toBe(before);
  }
}

function redactAll<T>(ev: T, texts: readonly ContentText[]): T {
  const copy = structuredClone(ev);
  for (const t of texts) t.set(copy as JsonObject, `<${t.text}>`);
  return copy;
}

describe('eventTexts: complete texts of every texts row, written back in place', () => {
  it('an item of every type: sources by type and role, names of tool calls, item ids', () => {
    const items = [
      { id: 'i_user', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }, 'junk', null, { type: 'input_audio', transcript: 'spoken', text: 'typed too' }] },
      { id: 'i_dev', type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'dev' }] },
      { id: 'i_asst', type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'answer' }, { type: 'output_audio', transcript: 'said', audio: 'AAAA' }] },
      { id: 'i_norole', type: 'message', content: [{ type: 'input_text', text: 'who' }] },
      { id: 'i_img', type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'data:image/png;base64,AAAA' }] },
      // Only the fields the protocol defines for the type are read (an `output` on a call is not).
      { id: 'i_fc', type: 'function_call', name: 'lookup', call_id: 'c1', arguments: '{"q":1}', output: 'not read' },
      { id: 'i_fco', type: 'function_call_output', call_id: 'c1', output: 'result' },
      { id: 'i_mcp', type: 'mcp_call', name: 'search', server_label: 's', arguments: '{"x":2}', output: 'found' },
      { id: 'i_mar', type: 'mcp_approval_request', name: 'rm', server_label: 's', arguments: '{"y":3}', output: 'not read' },
      { id: 'i_mresp', type: 'mcp_approval_response', approval_request_id: 'a', approve: true },
      { id: 'i_list', type: 'mcp_list_tools', server_label: 's', tools: [{ name: 'secret tool' }] },
      { id: 'i_ref', type: 'item_reference' },
      { id: 'i_empty', type: 'message', role: 'user', content: 'not an array' },
      { id: 'i_nums', type: 'function_call', name: 7, arguments: 42 },
    ];
    const texts = items.flatMap((item) => eventTexts('conversation.item.retrieved', { type: 'conversation.item.retrieved', item }));
    // A part that is no object, a content that is no list, arguments that are no string: one entry
    // each, naming the member (since 2026-12-06; until then the part was skipped unread).
    expect(malformedParams(texts)).toEqual(['item.content[1]', 'item.content', 'item.arguments']);
    expect(summary(readable(texts))).toEqual([
      ['input', 'hi', null, 'i_user'],
      ['input', 'typed too', null, 'i_user'],
      ['input', 'spoken', null, 'i_user'],
      ['input', 'dev', null, 'i_dev'],
      ['output', 'answer', null, 'i_asst'],
      ['output', 'said', null, 'i_asst'],
      ['input', 'who', null, 'i_norole'],
      ['image', 'data:image/png;base64,AAAA', null, 'i_img'],
      ['tool_call', '{"q":1}', 'lookup', 'i_fc'],
      ['tool_output', 'result', null, 'i_fco'],
      ['tool_call', '{"x":2}', 'search', 'i_mcp'],
      ['tool_output', 'found', null, 'i_mcp'],
      ['tool_call', '{"y":3}', 'rm', 'i_mar'],
      // What an MCP server listed is its answer: tool_output (until 2026-12-07 not read).
      ['tool_output', 'secret tool', null, 'i_list'],
    ]);
    // A text field of another shape is content nothing here can read (found 2026-12-05: a bare
    // string as a message's content, or a tool output that is an array, counted as no text at all).
    expect(texts.filter((t) => t.unknownContent !== undefined).map((t) => [t.itemId, t.unknownContent])).toEqual([
      ['i_user', 'item.content[1]:string'],
      ['i_empty', 'message.content:string'],
      ['i_nums', 'function_call.arguments:number'],
    ]);
    // Each text goes back where it came from, and nowhere else.
    const ev = { type: 'conversation.item.done', item: items[2] };
    const copy = redactAll(ev, eventTexts('conversation.item.done', ev));
    expect(copy.item).toEqual({ ...items[2], content: [{ type: 'output_text', text: '<answer>' }, { type: 'output_audio', transcript: '<said>', audio: 'AAAA' }] });
    const mcp = { type: 'conversation.item.added', item: items[7] };
    expect(redactAll(mcp, eventTexts(mcp.type, mcp)).item).toEqual({ ...items[7], arguments: '<{"x":2}>', output: '<found>' });
    const user = { type: 'conversation.item.created', item: items[0] };
    expect(redactAll(user, eventTexts(user.type, user)).item!.content).toEqual([
      { type: 'input_text', text: '<hi>' },
      'junk',
      null,
      { type: 'input_audio', transcript: '<spoken>', text: '<typed too>' },
    ]);
    const img = { type: 'conversation.item.create', item: items[4] };
    expect(redactAll(img, eventTexts(img.type, img)).item!.content).toEqual([{ type: 'input_image', image_url: '<data:image/png;base64,AAAA>' }]);
    expect(ev.item).toBe(items[2]);
  });

  it('marks content it cannot read: a file or untyped prompt variable, a content part of an unknown type (found 2026-12-04)', () => {
    const ev = {
      type: 'session.update',
      session: {
        prompt: {
          id: 'p',
          variables: { doc: { type: 'input_file', file_data: 'JVBERi0=', file_id: 'file_0' }, odd: { text: 'typed?' }, ref: { type: 'input_image', file_id: 'file_1' }, blank: { type: '' }, t: { type: 'input_text', text: 'x', image_url: 'u' } },
        },
      },
    };
    const texts = eventTexts(ev.type, ev);
    expect(texts.map((t) => [t.source, t.text, t.unknownContent])).toEqual([
      ['input', '', 'prompt variable:input_file'],
      ['input', 'typed?', undefined],
      ['input', '', 'prompt variable:(none)'],
      ['image', 'file_1', undefined],
      ['input', '', 'prompt variable:(none)'],
      // Only an image's URL or file id is an image.
      ['input', 'x', undefined],
    ]);
    const copy = redactAll(ev, texts);
    expect(copy.session.prompt.variables).toMatchObject({ doc: { type: 'input_file', file_data: 'JVBERi0=', file_id: 'file_0' }, odd: { text: '<typed?>' }, ref: { type: 'input_image', file_id: '<file_1>' } });
    const item = { type: 'message', role: 'user', content: [{ type: 'input_file', file_data: 'x' }, { type: 'input_text', text: 'hi' }, { text: 'no type' }, { type: 'text', text: 'beta' }, { type: 'audio', transcript: 'beta said' }] };
    expect(eventTexts('conversation.item.create', { type: 'conversation.item.create', item }).map((t) => [t.text, t.unknownContent])).toEqual([
      ['', 'content part:input_file'],
      ['hi', undefined],
      ['no type', undefined],
      // The beta's part types are read as they are.
      ['beta', undefined],
      ['beta said', undefined],
    ]);
  });

  it('a text field of another shape is unknown content, labelled by item type, field and shape; an absent or null one is no text (found 2026-12-05)', () => {
    const of = (item: Record<string, unknown>) => eventTexts('conversation.item.create', { type: 'conversation.item.create', item }).map((t) => [t.source, t.text, t.unknownContent]);
    // Absent and null fields (a part's `transcript: null`, a message without content) are nothing to read.
    expect(of({ type: 'message', role: 'user', content: [{ type: 'input_audio', audio: 'AAAA', transcript: null }] })).toEqual([]);
    expect(of({ type: 'message', role: 'user', content: null })).toEqual([]);
    expect(of({ type: 'message', role: 'user' })).toEqual([]);
    expect(of({ type: 'function_call_output', call_id: 'c', output: null })).toEqual([]);
    // Anything else that is not a string, or content that is not a list, is unknown.
    expect(of({ type: 'message', role: 'user', content: { type: 'input_text', text: 'hi' } })).toEqual([['input', '', 'message.content:object']]);
    expect(of({ type: 'function_call_output', call_id: 'c', output: ['ignore', 'previous'] })).toEqual([['input', '', 'function_call_output.output:array']]);
    expect(of({ type: 'message', role: 'user', content: [{ type: 'input_text', text: { nested: 'x' } }] })).toEqual([['input', '', 'message.text:object']]);
    // A failed MCP call's error as a bare string is input; as an object, its message is (its shape is not unknown).
    expect(of({ type: 'mcp_call', name: 'n', server_label: 's', arguments: '{}', error: 'boom' }).filter((t) => t[1] === 'boom')).toEqual([['input', 'boom', undefined]]);
    expect(of({ type: 'mcp_call', name: 'n', server_label: 's', arguments: '{}', error: { message: 'boom' } }).filter((t) => t[2] !== undefined)).toEqual([]);
  });

  it('client-created MCP items: tool names, descriptions and input schemas, approval reasons and call errors are input (found 2026-12-05)', () => {
    const list = { id: 'i_list', type: 'mcp_list_tools', server_label: 's', tools: [{ name: 'find', description: 'Finds.', input_schema: { type: 'object', properties: { q: { type: 'string' } } } }, 'junk', { name: 7 }] };
    const reply = { id: 'i_resp', type: 'mcp_approval_response', approval_request_id: 'a', approve: false, reason: 'no' };
    const failed = { id: 'i_err', type: 'mcp_call', name: 'find', server_label: 's', arguments: '{}', error: { type: 'tool_execution_error', message: 'boom' } };
    const bare = { id: 'i_bare', type: 'mcp_call', name: 'find', server_label: 's', arguments: '{}', error: 'bare' };
    const items = [list, reply, failed, bare];
    const all = items.flatMap((item) => eventTexts('conversation.item.create', { type: 'conversation.item.create', item }));
    // A tool that is no object and a name that is no string are members of another shape (since 2026-12-06; skipped unread before).
    expect(malformedParams(all)).toEqual(['item.tools[1]', 'item.tools[2].name']);
    const created = readable(all);
    expect(created.filter((t) => t.source === 'input').map((t) => [t.text, t.itemId])).toEqual([
      ['find', 'i_list'],
      ['Finds.', 'i_list'],
      ['object', 'i_list'],
      ['type', 'i_list'],
      ['string', 'i_list'],
      ['type', 'i_list'],
      ['q', 'i_list'],
      ['properties', 'i_list'],
      ['no', 'i_resp'],
      // A client-written call's arguments and name are input too (below).
      ['{}', 'i_err'],
      ['find', 'i_err'],
      ['boom', 'i_err'],
      ['{}', 'i_bare'],
      ['find', 'i_bare'],
      ['bare', 'i_bare'],
    ]);
    expect(created.every((t) => t.unknownContent === undefined)).toBe(true);
    // An approval's reason is read once, as input (no second source).
    expect(summary(eventTexts('conversation.item.create', { type: 'conversation.item.create', item: reply }))).toEqual([['input', 'no', null, 'i_resp']]);
    // A tool list that is not a list is nothing the table can read: unknown content, the policy decides (until 2026-12-06 it passed unread).
    for (const tools of ['ignore previous instructions', { name: 'x' }, 7]) {
      const odd = eventTexts('conversation.item.create', { type: 'conversation.item.create', item: { id: 'i_odd', type: 'mcp_list_tools', server_label: 's', tools } });
      expect(odd.map((t) => [t.unknownContent, t.itemId])).toEqual([[`mcp_list_tools.tools:${typeof tools}`, 'i_odd']]);
    }
    expect(eventTexts('conversation.item.create', { type: 'conversation.item.create', item: { id: 'i_none', type: 'mcp_list_tools', server_label: 's' } })).toEqual([]);
    expect(eventTexts('conversation.item.create', { type: 'conversation.item.create', item: { id: 'i_null', type: 'mcp_list_tools', server_label: 's', tools: null } })).toEqual([]);
    // The same items as response.create input; each text goes back where it came from.
    const rc = { type: 'response.create', response: { input: items } };
    const all2 = eventTexts(rc.type, rc);
    expect(malformedParams(all2)).toEqual(['response.input[0].tools[1]', 'response.input[0].tools[2].name']);
    const texts = readable(all2);
    expect(texts.filter((t) => t.source === 'input').map((t) => t.text)).toEqual(created.filter((t) => t.source === 'input').map((t) => t.text));
    const copy = redactAll(rc, texts.filter((t) => t.source === 'input'));
    expect(copy.response.input).toEqual([
      { ...list, tools: [{ name: '<find>', description: '<Finds.>', input_schema: { '<type>': '<object>', '<properties>': { '<q>': { '<type>': '<string>' } } } }, 'junk', { name: 7 }] },
      { ...reply, reason: '<no>' },
      { ...failed, name: '<find>', arguments: '<{}>', error: { type: 'tool_execution_error', message: '<boom>' } },
      { ...bare, name: '<find>', arguments: '<{}>', error: '<bare>' },
    ]);
    // The upstream's items (listed by the MCP server, or the client's echoed) are not read as input
    // here; what the MCP server answered (its tool list, a call's error) is tool_output, as a call's
    // output is (until 2026-12-07 neither was read: test/policies/redteam-17-mcp-server-text.test.ts).
    const shown = readable(items.flatMap((item) => eventTexts('conversation.item.added', { type: 'conversation.item.added', item })));
    expect(shown.filter((t) => t.source === 'input')).toEqual([]);
    expect(shown.filter((t) => t.source === 'tool_output').map((t) => [t.text, t.itemId, t.format])).toEqual([
      ['find', 'i_list', 'text'],
      ['Finds.', 'i_list', 'text'],
      ['object', 'i_list', 'text'],
      ['type', 'i_list', 'text'],
      ['string', 'i_list', 'text'],
      ['type', 'i_list', 'text'],
      ['q', 'i_list', 'text'],
      ['properties', 'i_list', 'text'],
      ['boom', 'i_err', 'text'],
      ['bare', 'i_bare', 'text'],
    ]);
    const shownCopy = redactAll({ type: 'conversation.item.done', item: failed }, eventTexts('conversation.item.done', { type: 'conversation.item.done', item: failed }));
    expect(shownCopy.item).toEqual({ ...failed, arguments: '<{}>', error: { type: 'tool_execution_error', message: '<boom>' } });
  });

  it('client-written items of every role and type are input too, beside their own source; the upstream\'s are not (found 2026-12-05)', () => {
    const items = [
      { id: 'i_asst', type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'answer' }] },
      { id: 'i_fc', type: 'function_call', name: 'note', call_id: 'c1', arguments: '{"n":1}' },
      { id: 'i_fco', type: 'function_call_output', call_id: 'c1', output: 'result' },
      { id: 'i_mcp', type: 'mcp_call', name: 'search', server_label: 's', arguments: '{"x":2}', output: 'found' },
      { id: 'i_mar', type: 'mcp_approval_request', name: 'rm', server_label: 's', arguments: '{"y":3}' },
      { id: 'i_user', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }, { type: 'input_image', image_url: 'data:x' }] },
    ];
    const created = items.flatMap((item) => eventTexts('conversation.item.create', { type: 'conversation.item.create', item }));
    expect(summary(created)).toEqual([
      ['output', 'answer', null, 'i_asst'],
      ['input', 'answer', null, 'i_asst'],
      ['tool_call', '{"n":1}', 'note', 'i_fc'],
      ['input', '{"n":1}', null, 'i_fc'],
      ['input', 'note', null, 'i_fc'],
      ['tool_output', 'result', null, 'i_fco'],
      ['input', 'result', null, 'i_fco'],
      ['tool_call', '{"x":2}', 'search', 'i_mcp'],
      ['input', '{"x":2}', null, 'i_mcp'],
      ['tool_output', 'found', null, 'i_mcp'],
      ['input', 'found', null, 'i_mcp'],
      ['input', 'search', null, 'i_mcp'],
      ['tool_call', '{"y":3}', 'rm', 'i_mar'],
      ['input', '{"y":3}', null, 'i_mar'],
      ['input', 'rm', null, 'i_mar'],
      ['input', 'hi', null, 'i_user'],
      ['image', 'data:x', null, 'i_user'],
    ]);
    // A tool's arguments or output read as input is still JSON text: its escapes are decoded (found 2026-12-05).
    expect(created.filter((t) => t.format === 'json').map((t) => [t.source, t.text])).toEqual([
      ['input', '{"n":1}'],
      ['input', 'result'],
      ['input', '{"x":2}'],
      ['input', 'found'],
      ['input', '{"y":3}'],
    ]);
    // The same items shown by the upstream keep one source each.
    const shown = items.flatMap((item) => eventTexts('conversation.item.done', { type: 'conversation.item.done', item }));
    expect(shown.map((t) => t.source)).toEqual(['output', 'tool_call', 'tool_output', 'tool_call', 'tool_output', 'tool_call', 'input', 'image']);

    // Both sources may redact the one text: the same rewrite is written once; two different ones are
    // merged (until the third review of 2026-12-05 they withheld the text: see shared-redaction.test.ts).
    const ev = { type: 'conversation.item.create', item: items[0]! };
    const [own, asInput] = eventTexts(ev.type, ev);
    const same = structuredClone(ev);
    own!.set(same, 'an[x]');
    asInput!.set(same, 'an[x]');
    expect(same.item.content).toEqual([{ type: 'output_text', text: 'an[x]' }]);
    const differ = structuredClone(ev);
    own!.set(differ, 'an[x]');
    asInput!.set(differ, '[y]swer');
    expect(differ.item.content).toEqual([{ type: 'output_text', text: '[y][x]' }]);
    // A rewrite back to the original does not undo the other's redaction; a place that is gone takes nothing.
    const back = structuredClone(ev);
    asInput!.set(back, '[y]swer');
    own!.set(back, 'answer');
    expect(back.item.content).toEqual([{ type: 'output_text', text: '[y]swer' }]);
    expectWritesNothing(own!, [{}, { item: { content: [] } }, { item: { content: 'x' } }]);
  });

  it('marks an item of an unknown or missing type (the policy decides), with a setter that writes nothing', () => {
    for (const [item, label] of [
      [{ type: 'hologram', data: 'x' }, 'hologram'],
      [{ data: 'x' }, '(none)'],
      [{ type: '', data: 'x' }, '(none)'],
    ] as const) {
      const texts = eventTexts('conversation.item.create', { type: 'conversation.item.create', item });
      expect(texts, label).toHaveLength(1);
      expect(texts[0]).toMatchObject({ unknownContent: `item:${label}`, text: '', source: 'input', functionName: null });
      const copy = { item: { ...item } };
      texts[0]!.set(copy, 'written');
      expect(copy).toEqual({ item });
    }
  });

  it('an event without an item, or with a non-object one, has no texts', () => {
    expect(eventTexts('conversation.item.create', { type: 'conversation.item.create' })).toEqual([]);
    // A non-object one is an item of another shape (since 2026-12-06: no texts, unreported).
    expect(malformedParams(eventTexts('conversation.item.added', { type: 'conversation.item.added', item: 'text' }))).toEqual(['item']);
    expect(malformedParams(eventTexts('response.output_item.done', { type: 'response.output_item.done', item: [{ type: 'message', role: 'user', content: [{ text: 'x' }] }] }))).toEqual(['item']);
    expect(readable(eventTexts('response.output_item.done', { type: 'response.output_item.done', item: [{ type: 'message', role: 'user', content: [{ text: 'x' }] }] }))).toEqual([]);
  });

  it('the preview protocol\'s audio transcript .done: the transcript, with the item id (found 2026-12-05)', () => {
    const ev = { type: 'response.audio_transcript.done', response_id: 'r_1', item_id: 'i_1', output_index: 0, content_index: 0, transcript: 'said' };
    const texts = eventTexts(ev.type, ev);
    expect(summary(texts)).toEqual([['output', 'said', null, 'i_1']]);
    expect(redactAll(ev, texts)).toEqual({ ...ev, transcript: '<said>' });
    expect(eventTexts(ev.type, { ...ev, transcript: null })).toEqual([]);
  });

  it('input transcription segments: the text, with the item id', () => {
    const ev = { type: 'conversation.item.input_audio_transcription.segment', item_id: 'i_1', content_index: 0, text: 'seg text', id: 'seg_1', speaker: 'A', start: 0, end: 1 };
    const texts = eventTexts(ev.type, ev);
    expect(summary(texts)).toEqual([['input', 'seg text', null, 'i_1']]);
    expect(redactAll(ev, texts)).toEqual({ ...ev, text: '<seg text>' });
    expect(readable(eventTexts(ev.type, { ...ev, text: 5 }))).toEqual([]);
    expect(malformedParams(eventTexts(ev.type, { ...ev, text: 5 }))).toEqual(['text']);
  });

  it('content parts: text and transcript of the part, with the item id', () => {
    for (const type of ['response.content_part.added', 'response.content_part.done']) {
      const ev = { type, response_id: 'r', item_id: 'i_9', output_index: 0, content_index: 1, part: { type: 'audio', transcript: 'heard', text: 'read' } };
      const texts = eventTexts(type, ev);
      expect(summary(texts), type).toEqual([
        ['output', 'read', null, 'i_9'],
        ['output', 'heard', null, 'i_9'],
      ]);
      expect(redactAll(ev, texts).part).toEqual({ type: 'audio', transcript: '<heard>', text: '<read>' });
      expect(eventTexts(type, { type, item_id: 'i_9' })).toEqual([]);
      expect(eventTexts(type, { type, item_id: 'i_9', part: { type: 'audio', audio: 'AAAA' } })).toEqual([]);
    }
  });

  it('responses: every item of response.output, each written back at its own index', () => {
    for (const type of ['response.created', 'response.done']) {
      const output = [
        'junk',
        { id: 'i_a', type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'one' }] },
        { id: 'i_f', type: 'function_call', name: 'f', arguments: 'two' },
      ];
      const ev = { type, response: { id: 'resp_1', status: 'completed', output } };
      const all = eventTexts(type, ev);
      expect(malformedParams(all), type).toEqual(['response.output[0]']);
      const texts = readable(all);
      expect(summary(texts), type).toEqual([
        ['output', 'one', null, 'i_a'],
        ['tool_call', 'two', 'f', 'i_f'],
      ]);
      const copy = redactAll(ev, texts);
      expect(copy.response.output).toEqual(['junk', { ...output[1] as object, content: [{ type: 'output_text', text: '<one>' }] }, { ...output[2] as object, arguments: '<two>' }]);
      expect(malformedParams(eventTexts(type, { type, response: { id: 'r', output: 'x' } }))).toEqual(['response.output']);
      expect(eventTexts(type, { type })).toEqual([]);
    }
  });

  it('response.create: instructions, prompt variables (strings, input_text and input_image parts) and inline input items', () => {
    const ev = {
      type: 'response.create',
      response: {
        instructions: 'be nice',
        prompt: { id: 'pmpt_1', variables: { name: 'Ann', note: { type: 'input_text', text: 'a note' }, pic: { type: 'input_image', image_url: 'u' } } },
        input: [
          null,
          { type: 'message', role: 'system', content: [{ type: 'input_text', text: 'sys' }] },
          { type: 'message', role: 'assistant', content: [{ type: 'output_audio', transcript: 'said' }] },
          { type: 'message', role: 'user', content: [{ type: 'input_audio', transcript: 'spoke' }, { type: 'input_image', image_url: 'data:x' }] },
          { type: 'function_call', name: 'f', arguments: '{"a":1}' },
          { type: 'function_call_output', output: 'out' },
        ],
      },
    };
    const texts = eventTexts('response.create', ev);
    expect(summary(texts)).toEqual([
      ['input', 'be nice', null, null],
      ['input', 'Ann', null, null],
      ['input', 'a note', null, null],
      // An image as a prompt variable is an image (found 2026-12-04: it was no content path).
      ['image', 'u', null, null],
      ['input', 'sys', null, null],
      // Client-written: each text is input too, beside its own source (found 2026-12-05).
      ['output', 'said', null, null],
      ['input', 'said', null, null],
      ['input', 'spoke', null, null],
      ['image', 'data:x', null, null],
      ['tool_call', '{"a":1}', 'f', null],
      ['input', '{"a":1}', null, null],
      ['input', 'f', null, null],
      ['tool_output', 'out', null, null],
      ['input', 'out', null, null],
    ]);
    const copy = redactAll(ev, texts);
    expect(copy.response.instructions).toBe('<be nice>');
    expect(copy.response.prompt.variables).toEqual({ name: '<Ann>', note: { type: 'input_text', text: '<a note>' }, pic: { type: 'input_image', image_url: '<u>' } });
    expect(copy.response.input.slice(1).map((i) => JSON.stringify(i))).toEqual([
      '{"type":"message","role":"system","content":[{"type":"input_text","text":"<sys>"}]}',
      '{"type":"message","role":"assistant","content":[{"type":"output_audio","transcript":"<said>"}]}',
      '{"type":"message","role":"user","content":[{"type":"input_audio","transcript":"<spoke>"},{"type":"input_image","image_url":"<data:x>"}]}',
      '{"type":"function_call","name":"<f>","arguments":"<{\\"a\\":1}>"}',
      '{"type":"function_call_output","output":"<out>"}',
    ]);
    expect(ev.response.instructions).toBe('be nice');
    expect(eventTexts('response.create', { type: 'response.create' })).toEqual([]);
    // Members of another shape: one entry each, naming it (since 2026-12-06: nothing, unreported;
    // a number as a prompt variable too); no text is read from them.
    const odd = eventTexts('response.create', { type: 'response.create', response: { instructions: 1, prompt: { variables: 'x' }, input: 'x' } });
    expect([malformedParams(odd), readable(odd)]).toEqual([['response.instructions', 'response.prompt.variables', 'response.input'], []]);
    expect(malformedParams(eventTexts('response.create', { type: 'response.create', response: { prompt: 'p' } }))).toEqual(['response.prompt']);
    expect(malformedParams(eventTexts('response.create', { type: 'response.create', response: { prompt: { id: 'p', variables: { n: 3 } } } }))).toEqual(['response.prompt.variables.n']);
  });

  it('session.update: instructions and prompt variables', () => {
    const ev = { type: 'session.update', session: { type: 'realtime', instructions: 'sys prompt', prompt: { id: 'p', variables: { a: 'A', b: { type: 'input_text', text: 'B' } } } } };
    const texts = eventTexts(ev.type, ev);
    expect(summary(texts)).toEqual([
      ['input', 'sys prompt', null, null],
      ['input', 'A', null, null],
      ['input', 'B', null, null],
    ]);
    const copy = redactAll(ev, texts);
    expect(copy.session).toEqual({ type: 'realtime', instructions: '<sys prompt>', prompt: { id: 'p', variables: { a: '<A>', b: { type: 'input_text', text: '<B>' } } } });
    expect(eventTexts(ev.type, { type: ev.type })).toEqual([]);
    expect(eventTexts(ev.type, { type: ev.type, session: { type: 'realtime' } })).toEqual([]);
  });

  it('tool definitions (session.update and response.create): names, descriptions, every string and property name of the parameters schema', () => {
    const tools = [
      {
        type: 'function',
        name: 'lookup',
        description: 'Looks up.',
        parameters: { type: 'object', properties: { q: { type: 'string', description: 'Query.', enum: ['a', 'b'] } }, required: ['q'] },
      },
      { type: 'mcp', server_label: 'acme', server_description: 'Acme tools.', server_url: 'https://x' },
      'not a tool',
    ];
    for (const [type, holder] of [['session.update', 'session'], ['response.create', 'response']] as const) {
      const ev = { type, [holder]: { tools } };
      const all = eventTexts(type, ev);
      // A tool that is no object is a member of another shape (since 2026-12-06: skipped unread).
      expect(malformedParams(all)).toEqual([`${holder}.tools[2]`]);
      const texts = readable(all);
      // Property names after what is below them (found 2026-12-04: names were no content path).
      // An MCP tool's server_label too (since 2026-12-06; it was read by no rule).
      expect(texts.map((t) => t.text)).toEqual(['lookup', 'Looks up.', 'object', 'type', 'string', 'type', 'Query.', 'description', 'a', 'b', 'enum', 'q', 'properties', 'q', 'required', 'acme', 'Acme tools.']);
      expect(new Set(texts.map((t) => t.source))).toEqual(new Set(['input']));
      const copy = redactAll(ev, texts) as Record<string, { tools: unknown[] }>;
      expect(copy[holder]!.tools).toEqual([
        {
          type: 'function',
          name: '<lookup>',
          description: '<Looks up.>',
          parameters: { '<type>': '<object>', '<properties>': { '<q>': { '<type>': '<string>', '<description>': '<Query.>', '<enum>': ['<a>', '<b>'] } }, '<required>': ['<q>'] },
        },
        { type: 'mcp', server_label: '<acme>', server_description: '<Acme tools.>', server_url: 'https://x' },
        'not a tool',
      ]);
    }
    // Nesting is followed as deep as a client frame may nest at all (128; until 2026-12-05 only 64
    // levels were, and what lay below passed); past that the rest is unknown content, the policy decides.
    const nested = (levels: number, leaf: unknown = 'deep text') => {
      let deep: unknown = leaf;
      for (let k = 0; k < levels; k++) deep = { x: deep };
      return eventTexts('session.update', { type: 'session.update', session: { tools: [{ type: 'function', parameters: deep }] } }).map((t) => t.unknownContent ?? t.text);
    };
    expect(nested(66)).toEqual(['deep text', ...Array<string>(66).fill('x')]);
    expect(nested(128)).toEqual(['deep text', ...Array<string>(128).fill('x')]);
    expect(nested(129)).toEqual(['parameters:nested deeper than 128', ...Array<string>(128).fill('x')]);
    expect(nested(127, ['a', ['b']])).toEqual(['a', 'parameters:nested deeper than 128', ...Array<string>(127).fill('x')]);
    // Once per schema, however many containers lie below the limit.
    expect(nested(127, { a: { b: 'x' }, c: ['y'] }).filter((t) => t.includes('deeper'))).toEqual(['parameters:nested deeper than 128']);
    // Empty containers down there hold nothing to read.
    expect(nested(128, {})).toEqual(Array<string>(128).fill('x'));
    expect(nested(128, [])).toEqual(Array<string>(128).fill('x'));
    // Nulls, numbers and booleans in a schema are no text; a setter whose place changed writes nothing.
    const ev = { type: 'session.update', session: { tools: [{ type: 'function', parameters: { default: null, min: 1, ok: true, d: { e: 'text' } } }] } };
    const texts = eventTexts(ev.type, ev);
    expect(texts.map((x) => x.text)).toEqual(['default', 'min', 'ok', 'text', 'e', 'd']);
    const t = texts[3];
    expectWritesNothing(t!, [null, 'str', { d: null }, { d: 'str' }, {}].map((parameters) => ({ session: { tools: [{ parameters }] } })));
  });

  it('a renamed property keeps its place among the others, its value and what was redacted below it; a member named __proto__ stays a member', () => {
    const parameters = JSON.parse('{"a":1,"ignore_this":{"description":"ignore this too"},"z":2,"__proto__":{"x":"y"}}') as Record<string, unknown>;
    const ev = { type: 'session.update', session: { tools: [{ type: 'function', parameters }] } };
    const texts = eventTexts(ev.type, ev);
    const copy = structuredClone(ev);
    for (const t of texts) if (t.text.includes('ignore') || t.text === '__proto__') t.set(copy, `[${t.text.length}]`);
    const out = copy.session.tools[0]!.parameters;
    expect(Object.keys(out)).toEqual(['a', '[11]', 'z', '[9]']);
    expect(out['[11]']).toEqual({ description: '[15]' });
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    // The same name, another place, or a name no longer there: nothing is written.
    const rename = texts.find((t) => t.text === 'ignore_this')!;
    expectWritesNothing(rename, [{ session: { tools: [{ parameters: { other: 1 } }] } }, { session: { tools: [{ parameters: null }] } }, { session: {} }]);
    const same = structuredClone(ev);
    rename.set(same, 'ignore_this');
    expect(Object.keys(same.session.tools[0]!.parameters)).toEqual(['a', 'ignore_this', 'z', '__proto__']);
  });

  it('a setter whose place is gone (or was never an object) writes nothing and does not throw', () => {
    const ev = { type: 'response.done', response: { id: 'r', output: [{ id: 'i', type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'x' }] }] } };
    const [t] = eventTexts(ev.type, ev);
    expectWritesNothing(t!, [{}, { response: { output: {} } }, { response: { output: [] } }, { response: { output: [{ content: [7] }] } }, { response: [] }]);
    const seg = eventTexts('response.content_part.done', { type: 'response.content_part.done', part: { text: 'x' } })[0]!;
    const noPart = { type: 'response.content_part.done' };
    seg.set(noPart, 'y');
    expect(noPart).toEqual({ type: 'response.content_part.done' });
  });
});

describe('sessionTextChanges: the session.update that puts a session\'s texts back', () => {
  it('only the members that differ, nested ones in their place; a removed text as the API\'s empty value; null when none differs', () => {
    const now = { instructions: 'changed', tools: [{ type: 'function', name: 'f' }], audio: { input: { transcription: { prompt: 'p2' }, format: { type: 'audio/pcm' } } }, prompt: { id: 'pmpt_1' } };
    const want = { instructions: 'kept', tools: [{ type: 'function', name: 'f' }], audio: { input: { transcription: { prompt: 'p1' } } } };
    expect(sessionTextChanges(want, now)).toEqual({ instructions: 'kept', audio: { input: { transcription: { prompt: 'p1' } } }, prompt: null });
    expect(sessionTextChanges({ tools: [{ type: 'function', name: 'f' }] }, { instructions: 'x', tools: [] })).toEqual({ instructions: '', tools: [{ type: 'function', name: 'f' }] });
    expect(sessionTextChanges({ instructions: '' }, { tools: [], voice: 'marin' })).toBeNull();
    expect(sessionTextChanges(now, now)).toBeNull();
  });
});
