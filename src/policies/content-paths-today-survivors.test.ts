import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../pipeline/frame.js';
import { type ContentText, eventTexts, itemTexts, malformedError, sessionTextMembers } from './content-paths.js';

/**
 * Survivors of the 2026-12-06 mutation run of content-paths.ts's changed lines (908df96, 330b6a1,
 * 651da13: members of another shape refused, the transcription's texts, one SESSION_TEXT_MEMBERS
 * list, MCP server_label and allowed_tools names): what each refusal names (param, the shapes in
 * its message and details), and where an allowed tool name is written back.
 */

const refusal = (type: string, ev: JsonObject) => malformedError(eventTexts(type, ev), null);
const sessionRefusal = (session: JsonObject) => refusal('session.update', { type: 'session.update', session });
const texts = (type: string, ev: JsonObject) => eventTexts(type, ev).filter((t) => t.malformed === undefined && t.unknownContent === undefined);
const mcp = (allowed_tools: unknown) => ({ tools: [{ type: 'mcp', server_label: 'crm', server_url: 'https://mcp.example', allowed_tools }] });

describe('sessionTextMembers', () => {
  it('copies only the members the session.update row reads, and no container beyond the way to them', () => {
    const transcription = { model: 'm', prompt: 'p' };
    const cut = sessionTextMembers({ type: 'realtime', instructions: 'i', audio: { input: { transcription, turn_detection: { type: 'server_vad' } }, output: { voice: 'alloy' } } });
    expect(cut).toStrictEqual({ instructions: 'i', audio: { input: { transcription } } });
    expect(Object.keys(sessionTextMembers({ instructions: 'i' }))).toEqual(['instructions']);
  });
});

describe('what a refusal of another shape names', () => {
  it('the shape got, in the upstream\'s words (an integer, a decimal, a string, an array, an object, a boolean)', () => {
    const got = (v: unknown) => sessionRefusal({ instructions: v })?.message;
    expect(got(5)).toContain('but got an integer instead');
    expect(got(1.5)).toContain('but got a decimal instead');
    expect(got(['a'])).toContain('but got an array instead');
    expect(got({ a: 1 })).toContain('but got an object instead');
    expect(got(true)).toContain('but got a boolean instead');
    expect(sessionRefusal({ tools: 'x' })?.message).toContain("Invalid type for 'session.tools': expected an array, but got a string instead");
  });

  it('what was expected: an array, an object, an object or a string, an array or an object, a string or an object', () => {
    const expected = (session: JsonObject) => sessionRefusal(session)?.details?.['expected'];
    expect(expected({ tools: 'x' })).toBe('an array');
    expect(expected({ prompt: 'x' })).toBe('an object');
    expect(expected({ prompt: { id: 'p', variables: { v: 5 } } })).toBe('a string or an object');
    expect(expected(mcp(5))).toBe('an array or an object');
    const error = refusal('conversation.item.create', { type: 'conversation.item.create', item: { type: 'mcp_call', id: 'i', name: 'n', arguments: '{}', server_label: 's', error: 5 } });
    expect(error?.details?.['expected']).toBe('an object or a string');
    expect(error?.param).toBe('item.error');
  });

  it('the param of a server event\'s part, response, and a part\'s text', () => {
    expect(refusal('response.content_part.done', { type: 'response.content_part.done', item_id: 'i', part: 5 })?.param).toBe('part');
    expect(refusal('response.content_part.done', { type: 'response.content_part.done', item_id: 'i', part: { type: 'text', text: 5 } })?.param).toBe('part.text');
    expect(refusal('response.done', { type: 'response.done', response: 5 })?.param).toBe('response');
    expect(refusal('response.create', { type: 'response.create', response: 'x' })?.param).toBe('response');
  });

  it('the param of a prompt variable\'s image, an allowed-tools filter\'s tool_names and each name', () => {
    expect(sessionRefusal({ prompt: { id: 'p', variables: { v: { type: 'input_image', image_url: 5 } } } })?.param).toBe('session.prompt.variables.v.image_url');
    expect(sessionRefusal(mcp({ tool_names: 'x' }))?.param).toBe('session.tools[0].allowed_tools.tool_names');
    expect(sessionRefusal(mcp({ tool_names: ['a', 5] }))?.param).toBe('session.tools[0].allowed_tools.tool_names[1]');
    expect(sessionRefusal(mcp(['a', null, 5]))?.param).toBe('session.tools[0].allowed_tools[2]');
  });

  it("an mcp_list_tools item's tools of another shape is unknown content labelled by item type and shape", () => {
    const out = eventTexts('conversation.item.create', { type: 'conversation.item.create', item: { type: 'mcp_list_tools', id: 'l', server_label: 's', tools: 'x' } });
    expect(out.map((t) => t.unknownContent)).toContain('mcp_list_tools.tools:string');
    expect(malformedError(out, null)?.param).toBe('item.tools');
  });
});

describe('null members are nothing to read, not another shape', () => {
  it('a null keyword, a null allowed tool name', () => {
    expect(sessionRefusal({ audio: { input: { transcription: { model: 'm', keywords: [null, 'k'] } } } })).toBeNull();
    expect(sessionRefusal(mcp([null, 'a']))).toBeNull();
    expect(sessionRefusal(mcp({ read_only: true }))).toBeNull();
  });
});

describe('allowed tool names, read and written back where they are', () => {
  const put = (allowed: unknown) => {
    const ev = { type: 'session.update', session: mcp(allowed) };
    const read = texts('session.update', ev).filter((t) => t.text === 'lookup' || t.text === 'delete_all' || t.text === 'drop');
    const copy = structuredClone(ev) as JsonObject;
    for (const t of read) t.set(copy, `<${t.text}>`);
    return { read: read.map((t) => t.text), tool: ((copy['session'] as JsonObject)['tools'] as JsonObject[])[0]!['allowed_tools'] };
  };
  it('a list of names', () => {
    expect(put(['lookup', 5, 'delete_all'])).toEqual({ read: ['lookup', 'delete_all'], tool: ['<lookup>', 5, '<delete_all>'] });
  });
  it("a filter's tool_names", () => {
    expect(put({ tool_names: ['drop', 'lookup'], read_only: true })).toEqual({ read: ['drop', 'lookup'], tool: { tool_names: ['<drop>', '<lookup>'], read_only: true } });
  });
});

describe('itemTexts', () => {
  it('by default reads an item as the model made it (not client-written: no input copy)', () => {
    const out: ContentText[] = [];
    itemTexts({ type: 'message', role: 'assistant', id: 'a', content: [{ type: 'output_text', text: 'hi' }] }, (c) => c, out);
    expect(out.map((t) => t.source)).toEqual(['output']);
  });
});
