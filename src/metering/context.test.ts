import { describe, expect, it } from 'vitest';
import { AUDIO_PART_OVERHEAD, ConversationEstimate, IMAGE_TOKENS, ITEM_OVERHEAD, NO_TOKENS, UNKNOWN_SIZE, add, audioMsOfBase64, audioTokensOfBase64, itemEstimate, most, promptEstimate, promptVariablesEstimate, sum } from './context.js';
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
    c.setFormat(48, 0, true); // session.created: audio/pcm
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

describe('context estimates: every rule errs high, every branch observable', () => {
  const tok = (textT: number, audio = 0, image = 0) => ({ text: textT, audio, image });

  it('NO_TOKENS is zero and frozen; add sums in place, sum totals the modalities', () => {
    expect(NO_TOKENS).toEqual(tok(0));
    expect(Object.isFrozen(NO_TOKENS)).toBe(true);
    const a = tok(1, 2, 3);
    const r = add(a, tok(10, 20, 30));
    expect(r).toBe(a);
    expect(a).toEqual(tok(11, 22, 33));
    expect(sum(tok(1, 20, 300))).toBe(321);
  });

  it('audio milliseconds and tokens round up, never down', () => {
    // 4 base64 chars = 3 bytes; at 8 bytes/ms that is 0.375 ms: 1 ms.
    expect(audioMsOfBase64(4, 8)).toBe(1);
    expect(audioMsOfBase64(0, 8)).toBe(0);
    // 64,000 chars = 48,000 bytes: 1,000 ms of PCM16, 6,000 ms of G.711.
    expect(audioMsOfBase64(64_000, 48)).toBe(1_000);
    expect(audioMsOfBase64(64_000, 8)).toBe(6_000);
    expect(audioMsOfBase64(64_001, 48)).toBe(1_001);
    // 1 ms of audio is 0.01 token: 1 token.
    expect(audioTokensOfBase64(4, 8)).toBe(1);
    expect(audioTokensOfBase64(0, 8)).toBe(0);
    // 1,001 ms: 10.01 tokens: 11.
    expect(audioTokensOfBase64(64_001, 48)).toBe(11);
  });

  it('itemEstimate: each part adds its audio, image and text; non-object parts and non-string fields count nothing', () => {
    const item = {
      type: 'message',
      role: 'user',
      content: [
        null,
        'stray',
        7,
        [1, 2],
        { type: 'input_audio', audio: 'A'.repeat(64_000), transcript: 'héllo' },
        { type: 'input_image', image_url: 'data:image/png;base64,AAAA' },
        { type: 'other', image_url: null }, // image_url present (even null): an image
        { type: 'input_image' }, // the type alone: an image
        { type: 'input_text', text: 'abc', audio: 42, transcript: 9 },
        { type: 'input_audio', audio: '' }, // an empty audio string still carries a part's overhead
      ],
    };
    expect(itemEstimate(item, 48)).toEqual({
      text: ITEM_OVERHEAD + Buffer.byteLength('héllo') + 3,
      audio: 10 + AUDIO_PART_OVERHEAD + AUDIO_PART_OVERHEAD,
      image: 3 * IMAGE_TOKENS,
    });
  });

  it('itemEstimate: a part without image type or image_url is no image; a content that is not a list counts only the overhead', () => {
    expect(itemEstimate({ type: 'message', content: [{ type: 'input_text', text: 'x' }] }, 48)).toEqual(tok(ITEM_OVERHEAD + 1));
    expect(itemEstimate({ type: 'message', content: 'not a list' }, 48)).toEqual(tok(ITEM_OVERHEAD));
    expect(itemEstimate({ type: 'message', content: { text: 'obj' } }, 48)).toEqual(tok(ITEM_OVERHEAD));
    expect(itemEstimate({}, 48)).toEqual(tok(ITEM_OVERHEAD));
  });

  it('itemEstimate: a function call counts its name and arguments, an output its output; non-strings nothing', () => {
    expect(itemEstimate({ type: 'function_call', name: 'lookup', arguments: '{"q":"żółw"}' }, 48).text).toBe(ITEM_OVERHEAD + 6 + Buffer.byteLength('{"q":"żółw"}'));
    expect(itemEstimate({ type: 'function_call_output', output: 'ok', name: 5, arguments: { a: 1 } }, 48).text).toBe(ITEM_OVERHEAD + 2);
  });

  it('itemEstimate: the audio rate follows the format (G.711 gives six times the tokens of PCM16)', () => {
    const item = { type: 'message', role: 'user', content: [{ type: 'input_audio', audio: 'A'.repeat(64_000) }] };
    expect(itemEstimate(item, 8).audio).toBe(60 + AUDIO_PART_OVERHEAD);
    expect(itemEstimate(item, 48).audio).toBe(10 + AUDIO_PART_OVERHEAD);
  });

  it('promptEstimate: instructions bytes plus the tools JSON; no tools, an empty list or a non-list count nothing', () => {
    expect(promptEstimate(null, null)).toBe(ITEM_OVERHEAD);
    expect(promptEstimate('żółw', undefined)).toBe(ITEM_OVERHEAD + Buffer.byteLength('żółw'));
    expect(promptEstimate(42, [])).toBe(ITEM_OVERHEAD);
    expect(promptEstimate('', { type: 'function', name: 'f' })).toBe(ITEM_OVERHEAD);
    const tools = [{ type: 'function', name: 'ż', description: 'éé' }];
    expect(promptEstimate('ab', tools)).toBe(ITEM_OVERHEAD + 2 + Buffer.byteLength(JSON.stringify(tools), 'utf8'));
  });

  it('a new estimate is empty; total and addedMark are copies a caller cannot change', () => {
    const c = new ConversationEstimate();
    expect(c.bytesPerMs).toBe(8);
    expect(c.total()).toEqual(tok(0));
    expect(c.addedMark()).toEqual(tok(0));
    c.addItem('a', tok(5, 6, 7));
    const t = c.total();
    t.text = 0;
    const m = c.addedMark();
    m.audio = 0;
    expect(c.total()).toEqual(tok(5, 6, 7));
    expect(c.addedMark()).toEqual(tok(5, 6, 7));
  });

  it('onItemCreate: estimated at the current format; a string id is remembered for references, another id is not', () => {
    const c = new ConversationEstimate();
    const audio = (id: unknown) => ({ id, type: 'message', role: 'user', content: [{ type: 'input_audio', audio: 'A'.repeat(64_000) }] });
    c.onItemCreate(audio('g711'));
    c.setFormat(48, 0, true);
    c.onItemCreate(audio('pcm'));
    c.onItemCreate(audio(17));
    expect(c.total()).toEqual(tok(3 * ITEM_OVERHEAD, 60 + 10 + 10 + 3 * AUDIO_PART_OVERHEAD));
    const oob = (id: unknown) => c.responseInput({ conversation: 'none', input: [{ type: 'item_reference', id }] });
    expect(oob('g711')).toEqual(tok(ITEM_OVERHEAD, 60 + AUDIO_PART_OVERHEAD));
    expect(oob('pcm')).toEqual(tok(ITEM_OVERHEAD, 10 + AUDIO_PART_OVERHEAD));
    // A non-string id (here 17, or "17") was not remembered: the whole conversation.
    expect(oob('17')).toEqual(c.total());
    expect(oob(17)).toEqual(c.total());
  });

  it('onCommitted: the bound since the last commit or clear, returned in ms; a counter below the start counts nothing', () => {
    const c = new ConversationEstimate();
    c.setFormat(48, 0, true);
    expect(c.onCommitted('i1', 64_000)).toBe(1_000);
    expect(c.onCommitted('i2', 64_000 * 3)).toBe(2_000);
    expect(c.total()).toEqual(tok(2 * ITEM_OVERHEAD, 10 + 20 + 2 * AUDIO_PART_OVERHEAD));
    c.onBufferCleared(64_000 * 10);
    // A reading below the start (no append since): no audio, only the part overhead.
    expect(c.onCommitted(null, 64_000 * 5)).toBe(0);
    expect(c.total()).toEqual(tok(3 * ITEM_OVERHEAD, 30 + 3 * AUDIO_PART_OVERHEAD));
    // The start moved to that reading: the next commit counts from it.
    expect(c.onCommitted('i4', 64_000 * 6)).toBe(1_000);
    const oob = (id: string) => c.responseInput({ conversation: 'none', input: [{ type: 'item_reference', id }] });
    expect(oob('i2')).toEqual(tok(ITEM_OVERHEAD, 20 + AUDIO_PART_OVERHEAD));
    expect(oob('i4')).toEqual(tok(ITEM_OVERHEAD, 10 + AUDIO_PART_OVERHEAD));
  });

  it('onClientCommit: the buffer counts when the commit leaves; its committed adds only what was appended since, the item covers both', () => {
    const c = new ConversationEstimate();
    c.setFormat(48, 0, true);
    c.onClientCommit(64_000);
    // Counted before the upstream's committed: a create sent right behind the commit reads it.
    expect(c.total()).toEqual(tok(ITEM_OVERHEAD, 10 + AUDIO_PART_OVERHEAD));
    // One more second appended before the committed came back: counted once, in this item (as before).
    expect(c.onCommitted('i1', 64_000 * 2)).toBe(2_000);
    expect(c.total()).toEqual(tok(ITEM_OVERHEAD, 20 + AUDIO_PART_OVERHEAD));
    const oob = (id: string) => c.responseInput({ conversation: 'none', input: [{ type: 'item_reference', id }] });
    expect(oob('i1')).toEqual(tok(ITEM_OVERHEAD, 20 + AUDIO_PART_OVERHEAD));
    // No client commit waiting: a server (VAD) commit counts as before.
    expect(c.onCommitted('i2', 64_000 * 3)).toBe(1_000);
    expect(c.total()).toEqual(tok(2 * ITEM_OVERHEAD, 30 + 2 * AUDIO_PART_OVERHEAD));
  });

  it('onClientCommit: a commit the upstream refused keeps its count; the next committed item takes it, every byte counted once', () => {
    const c = new ConversationEstimate();
    c.setFormat(48, 0, true);
    c.onClientCommit(64_000); // refused upstream (e.g. too short): no committed comes for it
    c.onClientCommit(64_000 * 3);
    expect(c.total()).toEqual(tok(2 * ITEM_OVERHEAD, 30 + 2 * AUDIO_PART_OVERHEAD));
    // The upstream buffer held all three seconds: one item.
    expect(c.onCommitted('i1', 64_000 * 3)).toBe(1_000);
    expect(c.total()).toEqual(tok(2 * ITEM_OVERHEAD, 30 + 2 * AUDIO_PART_OVERHEAD));
    expect(c.onCommitted('i2', 64_000 * 3)).toBe(2_000);
    expect(c.total()).toEqual(tok(2 * ITEM_OVERHEAD, 30 + 2 * AUDIO_PART_OVERHEAD));
    const oob = (id: string) => c.responseInput({ conversation: 'none', input: [{ type: 'item_reference', id }] });
    expect(sum(oob('i1')) + sum(oob('i2'))).toBe(2 * ITEM_OVERHEAD + 30 + 2 * AUDIO_PART_OVERHEAD);
    // Beyond 64 commits waiting, the oldest are merged: nothing is dropped from the estimate.
    const d = new ConversationEstimate();
    d.setFormat(48, 0, true);
    for (let i = 1; i <= 100; i++) d.onClientCommit(64_000 * i);
    expect(d.total()).toEqual(tok(100 * ITEM_OVERHEAD, 100 * (10 + AUDIO_PART_OVERHEAD)));
    let ms = 0;
    for (let i = 0; i < 100; i++) ms += d.onCommitted(`j${i}`, 64_000 * 100);
    expect(ms).toBe(100_000);
    // The committed events past the 64 held each add their framing (as a server commit does): never less.
    expect(d.total()).toEqual(tok(136 * ITEM_OVERHEAD, 100 * 10 + 136 * AUDIO_PART_OVERHEAD));
  });

  it('promptVariablesEstimate: text and input_text one token per byte (names too), images IMAGE_TOKENS, files beyond any window, else JSON bytes', () => {
    expect(promptVariablesEstimate(null)).toBeNull();
    expect(promptVariablesEstimate('pmpt_1')).toBeNull();
    expect(promptVariablesEstimate({ id: 'pmpt_1' })).toEqual(tok(ITEM_OVERHEAD, 0));
    expect(promptVariablesEstimate({ id: 'pmpt_1', variables: { ab: 'héllo' } })).toEqual(tok(ITEM_OVERHEAD + 2 + 6, 0));
    expect(promptVariablesEstimate({ id: 'p', variables: { a: { type: 'input_text', text: 'xyz' } } })).toEqual(tok(ITEM_OVERHEAD + 1 + 3, 0));
    expect(promptVariablesEstimate({ id: 'p', variables: { a: { type: 'input_image', image_url: 'https://x' } } })).toEqual(tok(ITEM_OVERHEAD + 1, 0, IMAGE_TOKENS));
    expect(promptVariablesEstimate({ id: 'p', variables: { a: { type: 'input_file', file_id: 'file_1' } } })).toEqual(tok(ITEM_OVERHEAD + 1 + UNKNOWN_SIZE, 0, UNKNOWN_SIZE));
    expect(promptVariablesEstimate({ id: 'p', variables: { a: 12345, b: null } })).toEqual(tok(ITEM_OVERHEAD + 2 + 5 + 4, 0));
    expect(most(tok(1, 5, 0), tok(3, 2, 1))).toEqual(tok(3, 5, 1));
  });

  it('calibrate: base is input plus output (output images none); what was added before the mark goes, after it stays', () => {
    const c = new ConversationEstimate();
    c.addItem('a', tok(100, 50, 1600));
    const mark = c.addedMark();
    c.addItem('b', tok(7, 3, 2));
    c.calibrate(mark, tok(40, 30, 20), { text: 5, audio: 6 });
    expect(c.total()).toEqual(tok(45 + 7, 36 + 3, 20 + 2));
    expect(c.addedMark()).toEqual(tok(7, 3, 2));
    // A second calibration replaces the base, it does not add to it.
    const mark2 = c.addedMark();
    c.calibrate(mark2, tok(1, 2, 3), { text: 4, audio: 5 });
    expect(c.total()).toEqual(tok(5, 7, 3));
    expect(c.addedMark()).toEqual(tok(0));
  });

  it('calibrate never leaves a negative addition (a mark above what is added)', () => {
    const c = new ConversationEstimate();
    c.addItem(null, tok(10, 10, 10));
    c.calibrate(tok(20, 30, 40), tok(1, 1, 1), { text: 0, audio: 0 });
    expect(c.addedMark()).toEqual(tok(0));
    expect(c.total()).toEqual(tok(1, 1, 1));
  });

  it('responseInput: no input list reads the conversation; a default-conversation input adds inline items and skips references', () => {
    const c = new ConversationEstimate();
    c.onItemCreate(text('a'.repeat(100), 'known'));
    const all = c.total();
    expect(c.responseInput({})).toEqual(all);
    expect(c.responseInput({ input: 'not a list' })).toEqual(all);
    expect(c.responseInput({ conversation: 'none', input: { type: 'item_reference', id: 'known' } })).toEqual(all);
    // Default conversation: the whole conversation already counts every reference.
    expect(c.responseInput({ input: [{ type: 'item_reference', id: 'known' }, { type: 'item_reference', id: 'unknown' }] })).toEqual(all);
    expect(c.responseInput({ conversation: 'auto', input: [text('zz'), null, 3] })).toEqual(tok(all.text + ITEM_OVERHEAD + 2));
    // An empty list in the default conversation: still the conversation (errs high).
    expect(c.responseInput({ input: [] })).toEqual(all);
  });

  it('responseInput out of band: an empty list reads nothing; non-objects skipped; after an unknown reference, known ones are not counted again', () => {
    const c = new ConversationEstimate();
    c.onItemCreate(text('a'.repeat(100), 'k1'));
    c.onItemCreate(text('b'.repeat(10), 'k2'));
    const all = c.total();
    expect(c.responseInput({ conversation: 'none', input: [] })).toEqual(tok(0));
    expect(c.responseInput({ conversation: 'none', input: [null, 'x', 1] })).toEqual(tok(0));
    const refs = (...ids: unknown[]) => ids.map((id) => ({ type: 'item_reference', id }));
    expect(c.responseInput({ conversation: 'none', input: refs('k1', 'k2') })).toEqual(tok(2 * ITEM_OVERHEAD + 110));
    // Unknown first: the conversation once, known references after it already inside it.
    expect(c.responseInput({ conversation: 'none', input: refs('zz', 'k1', 'yy') })).toEqual(all);
    // Known first, then unknown: the known one plus the conversation (errs high).
    expect(c.responseInput({ conversation: 'none', input: refs('k2', 'zz') })).toEqual(tok(ITEM_OVERHEAD + 10 + all.text));
    // A reference without a string id is unknown.
    expect(c.responseInput({ conversation: 'none', input: [{ type: 'item_reference' }] })).toEqual(all);
    // Inline items after an unknown reference still add.
    expect(c.responseInput({ conversation: 'none', input: [...refs('zz'), text('q')] })).toEqual(tok(all.text + ITEM_OVERHEAD + 1));
  });

  it('remembers at most 10,000 item estimates; a reference beyond counts the whole conversation', () => {
    const c = new ConversationEstimate();
    for (let i = 0; i < 9_999; i++) c.addItem(`i${i}`, tok(1));
    // Items without a (string) id are not remembered and take no slot.
    c.addItem(null, tok(1));
    c.onItemCreate({ type: 'function_call_output', output: '' });
    c.onItemCreate({ id: 12, type: 'function_call_output', output: '' });
    c.addItem('last', tok(2));
    c.addItem('over', tok(3));
    const oob = (id: string) => c.responseInput({ conversation: 'none', input: [{ type: 'item_reference', id }] });
    expect(oob('i0')).toEqual(tok(1));
    expect(oob('last')).toEqual(tok(2));
    expect(oob('over')).toEqual(c.total());
    expect(c.total()).toEqual(tok(9_999 + 1 + 2 * ITEM_OVERHEAD + 2 + 3));
  });

  it('a client create reusing a known item id (refused upstream as a duplicate) never lowers that item\'s estimate (red-team review 2026-12-05)', () => {
    const c = new ConversationEstimate();
    c.onItemCreate(text('x'.repeat(20_000), 'item_big'));
    c.onItemCreate(text('x', 'item_big'));
    const ref = c.responseInput({ conversation: 'none', input: [{ type: 'item_reference', id: 'item_big' }] });
    expect(ref.text).toBe(20_000 + ITEM_OVERHEAD);
  });

  it('responseInput: a reference the caller knows to be an item of a response still streaming adds what it may hold, in and out of band; the string id only', () => {
    const c = new ConversationEstimate();
    c.onItemCreate(text('a'.repeat(100), 'known'));
    const all = c.total();
    const asked: unknown[] = [];
    const streaming = (id: string) => {
      asked.push(id);
      return id === 'live' ? tok(0, 500) : null;
    };
    const refs = (...ids: unknown[]) => ids.map((id) => ({ type: 'item_reference', id }));
    // Out of band: the streaming bound, plus the conversation for an id the estimate does not know.
    expect(c.responseInput({ conversation: 'none', input: refs('live') }, streaming)).toEqual({ text: all.text, audio: 500, image: 0 });
    expect(c.responseInput({ conversation: 'none', input: refs('known', 'live') }, streaming)).toEqual({ text: 2 * all.text, audio: 500, image: 0 });
    // Default conversation: the conversation counts every reference, but not output still streaming.
    expect(c.responseInput({ input: refs('live') }, streaming)).toEqual({ text: all.text, audio: 500, image: 0 });
    // Known, or not streaming: as without a lookup.
    expect(c.responseInput({ conversation: 'none', input: refs('known') }, streaming)).toEqual(all);
    asked.length = 0;
    expect(c.responseInput({ conversation: 'none', input: [{ type: 'item_reference', id: 7 }] }, streaming)).toEqual(all);
    expect(asked).toEqual([]);
    // No input list: never asked (the caller counts the conversation's own responses in flight).
    expect(c.responseInput({}, streaming)).toEqual(all);
    expect(asked).toEqual([]);
  });

  it('uncommittedMs: the audio appended since the last commit or clear, none when empty', () => {
    const c = new ConversationEstimate();
    c.setFormat(48, 0, true);
    expect(c.uncommittedMs(0)).toBe(0);
    expect(c.uncommittedMs(64_000)).toBe(1000);
    c.onClientCommit(64_000);
    expect(c.uncommittedMs(64_000)).toBe(0);
    expect(c.uncommittedMs(64_000 + 640)).toBe(10);
    c.onBufferCleared(70_000);
    expect(c.uncommittedMs(64_000)).toBe(0);
    c.onCommitted('item_a', 70_000 + 6_400);
    expect(c.uncommittedMs(70_000 + 6_400)).toBe(0);
  });
});
