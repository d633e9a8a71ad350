import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONTENT_PATHS, eventTexts, NO_CONTENT } from './content-paths.js';

describe('content-path table', () => {
  it('is documented in policies/README.md, row by row', () => {
    const readme = readFileSync(new URL('../../policies/README.md', import.meta.url), 'utf8');
    const table = readme.slice(readme.indexOf('### Content paths'), readme.indexOf('### Streaming'));
    for (const p of CONTENT_PATHS) {
      const short = p.type.split('.').slice(-1)[0]!;
      const documented = table.includes(`\`${p.type}\``) || (table.includes(`\`.${short}\``) && table.includes(p.type.split('.').slice(0, -1).join('.')));
      expect(documented, p.type).toBe(true);
    }
  });

  it('has no type both with and without content', () => {
    for (const p of CONTENT_PATHS) expect(NO_CONTENT.has(p.type), p.type).toBe(false);
  });

  it('finds every text of an item of each type and role, and writes redactions back in place', () => {
    const ev = {
      type: 'response.create',
      response: {
        instructions: 'be nice',
        prompt: { id: 'pmpt_1', variables: { name: 'Ann', note: { type: 'input_text', text: 'a note' } } },
        input: [
          { type: 'message', role: 'system', content: [{ type: 'input_text', text: 'sys' }] },
          { type: 'message', role: 'assistant', content: [{ type: 'output_audio', transcript: 'said' }] },
          { type: 'message', role: 'user', content: [{ type: 'input_audio', transcript: 'spoke' }, { type: 'input_image', image_url: 'data:x' }] },
          { type: 'function_call', name: 'f', arguments: '{"a":1}' },
          { type: 'function_call_output', output: 'out' },
          { type: 'mcp_call', name: 'm', arguments: '{}', output: 'mcp out' },
          { type: 'mcp_approval_request', name: 'm', arguments: '{"b":2}' },
        ],
      },
    };
    const texts = eventTexts('response.create', ev);
    expect(texts.map((t) => [t.source, t.text])).toEqual([
      ['input', 'be nice'],
      ['input', 'Ann'],
      ['input', 'a note'],
      ['input', 'sys'],
      ['output', 'said'],
      ['input', 'spoke'],
      ['image', 'data:x'],
      ['tool_call', '{"a":1}'],
      ['tool_output', 'out'],
      ['tool_call', '{}'],
      ['tool_output', 'mcp out'],
      ['tool_call', '{"b":2}'],
    ]);
    const copy = structuredClone(ev);
    for (const t of texts) t.set(copy, `<${t.text}>`);
    expect(JSON.stringify(copy)).toContain('"transcript":"<spoke>"');
    expect(copy.response.prompt.variables.note.text).toBe('<a note>');
    expect(copy.response.input[5]).toMatchObject({ arguments: '<{}>', output: '<mcp out>' });
    expect(ev.response.instructions).toBe('be nice');
  });

  it('marks items of an unknown type so the policy decides', () => {
    const texts = eventTexts('conversation.item.create', { type: 'conversation.item.create', item: { type: 'hologram', data: 'x' } });
    expect(texts).toHaveLength(1);
    expect(texts[0]!.unknownItemType).toBe('hologram');
  });
});
