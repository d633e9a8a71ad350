import { describe, expect, it } from 'vitest';
import { AUDIO_PART_OVERHEAD, ConversationEstimate, IMAGE_TOKENS, ITEM_OVERHEAD, audioTokensOfBase64, itemEstimate, promptEstimate } from './context.js';
import { PriceBook, worstCaseOf } from './pricing.js';

const text = (s: string, id?: string) => ({ ...(id ? { id } : {}), type: 'message', role: 'user', content: [{ type: 'input_text', text: s }] });

describe('conversation estimate (upper bounds of what a response reads)', () => {
  it('text counts one token per UTF-8 byte, never fewer than the model would count', () => {
    expect(itemEstimate(text('hello'), 48)).toEqual({ text: ITEM_OVERHEAD + 5, audio: 0, image: 0 });
    // Multi-byte text: bytes, not characters.
    expect(itemEstimate(text('żółw'), 48).text).toBe(ITEM_OVERHEAD + Buffer.byteLength('żółw'));
    expect(itemEstimate({ type: 'function_call_output', call_id: 'c', output: '{"ok":true}' }, 48).text).toBe(ITEM_OVERHEAD + 11);
  });

  it('audio: 10 tokens per second from the base64 length (PCM16 48 bytes/ms, G.711 8 bytes/ms); images a fixed bound', () => {
    // 1 s of PCM16 at 24 kHz = 48,000 bytes = 64,000 base64 characters.
    expect(audioTokensOfBase64(64_000, 48)).toBe(10);
    expect(audioTokensOfBase64(64_000 / 6, 8)).toBe(10);
    const item = { type: 'message', role: 'user', content: [{ type: 'input_audio', audio: 'A'.repeat(64_000) }, { type: 'input_image', image_url: 'data:…' }] };
    expect(itemEstimate(item, 48)).toEqual({ text: ITEM_OVERHEAD, audio: 10 + AUDIO_PART_OVERHEAD, image: IMAGE_TOKENS });
  });

  it('appended audio becomes an item at commit; a clear forgets it', () => {
    const c = new ConversationEstimate();
    // Until the upstream reports the input format, the densest (G.711) is assumed: never low.
    // The readings are the relay's running count of append bytes forwarded upstream.
    c.onCommitted('item_early', 64_000);
    expect(c.total().audio).toBe(60 + AUDIO_PART_OVERHEAD);
    const early = c.total();
    c.bytesPerMs = 48; // session.created: audio/pcm
    c.onBufferCleared(64_000 * 4); // three more seconds appended, then cleared
    c.onCommitted('item_a', 64_000 * 6); // two seconds after the clear
    expect(c.total()).toEqual({ text: early.text + ITEM_OVERHEAD, audio: early.audio + 20 + AUDIO_PART_OVERHEAD, image: 0 });
    // An out-of-band response referencing it reads that item only.
    expect(c.responseInput({ conversation: 'none', input: [{ type: 'item_reference', id: 'item_a' }] })).toEqual({ text: ITEM_OVERHEAD, audio: 20 + AUDIO_PART_OVERHEAD, image: 0 });
  });

  it('the upstream count after a conversation response replaces everything before it; later items stay on top', () => {
    const c = new ConversationEstimate();
    c.onItemCreate(text('x'.repeat(4000)));
    const mark = c.addedMark(); // the response starts here
    c.onItemCreate(text('y'.repeat(100))); // sent while it runs
    c.calibrate(mark, { text: 1000, audio: 5, image: 0 }, { text: 20, audio: 300 });
    expect(c.total()).toEqual({ text: 1020 + ITEM_OVERHEAD + 100, audio: 305, image: 0 });
  });

  it('out-of-band input: known references and inline items only; an unknown reference counts the whole conversation', () => {
    const c = new ConversationEstimate();
    c.onItemCreate(text('a'.repeat(10_000), 'item_big'));
    c.onItemCreate(text('b'.repeat(10), 'item_small'));
    const small = c.responseInput({ conversation: 'none', input: [{ type: 'item_reference', id: 'item_small' }] });
    expect(small.text).toBe(ITEM_OVERHEAD + 10);
    const inline = c.responseInput({ conversation: 'none', input: [text('zz')] });
    expect(inline.text).toBe(ITEM_OVERHEAD + 2);
    const unknown = c.responseInput({ conversation: 'none', input: [{ type: 'item_reference', id: 'item_server_made' }] });
    expect(unknown.text).toBeGreaterThanOrEqual(c.total().text);
    // No input list, or the default conversation: the whole conversation.
    expect(c.responseInput({ conversation: 'none' })).toEqual(c.total());
    expect(c.responseInput(null)).toEqual(c.total());
  });

  it('instructions and tools count as prompt text', () => {
    expect(promptEstimate('be brief', [{ type: 'function', name: 'f' }])).toBe(ITEM_OVERHEAD + 8 + JSON.stringify([{ type: 'function', name: 'f' }]).length);
  });

  it('worst case fills the context window with the dearest modality first, output at the text rate when text only', () => {
    const p = new PriceBook().own('gpt-realtime')!;
    // 40,000 text tokens do not fit a 32,768 window: the upstream truncates, it never bills more.
    expect(worstCaseOf(p, { text: 40_000, audio: 0, image: 0 }, 0, 1, true)).toEqual({ nanos: 32_768 * 4_000 + 16_000, tokens: 32_769 });
    // Audio is dearer than text: it takes the window first.
    const mixed = worstCaseOf(p, { text: 40_000, audio: 2_768, image: 0 }, 0, 10, false);
    expect(mixed.nanos).toBe(2_768 * 32_000 + 30_000 * 4_000 + 10 * 64_000);
  });
});
