/**
 * InputTranscriptions on its own (until now it was tested only through the metering filter): the
 * model and prompt a commit is transcribed under, the commits and items awaiting their
 * transcription, their bounds, and what a transcription bills. Written against the mutation run of
 * the eighteenth session (test/mutation/open-survivors.md).
 *
 * Prices (src/metering/default-prices.ts): gpt-4o-transcribe $2.50/M text in (2,500 nanos a token),
 * $0.006 a minute (100 nanos a millisecond); gpt-4o-mini-transcribe half of both; whisper-1 $0.006
 * a minute, no tokens.
 */
import pino, { type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { PriceBook, transcriptionCost, type TranscriptionCost } from './pricing.js';
import { byAudioLength, InputTranscriptions, LAST_RESORT_TRANSCRIPTION, transcriptionPromptTokens, type PendingTranscription } from './transcriptions.js';

const prices = new PriceBook();

/** A logger whose lines land in `lines` (the warnings are part of what the module reports). */
function capturingLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}

/** A session whose count of answered session.updates the test moves by hand. */
function transcriptions(book: PriceBook = prices) {
  const answered = { n: 0 };
  const { log, lines } = capturingLog();
  return { tx: new InputTranscriptions(book, log, () => answered.n), answered, lines };
}

const pending = (ms: number, reservations: string[] = [], model: string | null = 'gpt-4o-transcribe', promptTokens = 0): PendingTranscription => ({ ms, model, promptTokens, reservations });
const priceOf = (model: string) => prices.own(model)!;
const bySeconds = (model: string, seconds: number): TranscriptionCost => transcriptionCost(priceOf(model), { type: 'duration', seconds })!;

describe('byAudioLength', () => {
  it('a per-minute model (no token prices) is billed its minutes only: no tokens, no prompt', () => {
    const cost = bySeconds('whisper-1', 2);
    expect(byAudioLength(priceOf('whisper-1'), cost, 1_000)).toBe(cost);
  });

  it('a token-priced model billed by the minute counts 10 audio tokens a second, rounded up', () => {
    const out = byAudioLength(priceOf('gpt-4o-transcribe'), bySeconds('gpt-4o-transcribe', 1.05), 0);
    expect(out).toEqual({ nanos: 105_000, inputTokens: 11, outputTokens: 0, totalTokens: 11, seconds: 1.05, estimated: false });
  });

  it('adds the prompt as text input: its nanos and its tokens', () => {
    const out = byAudioLength(priceOf('gpt-4o-transcribe'), bySeconds('gpt-4o-transcribe', 1), 40);
    expect(out).toEqual({ nanos: 100_000 + 40 * 2_500, inputTokens: 50, outputTokens: 0, totalTokens: 50, seconds: 1, estimated: false });
  });

  it('a cost that counts tokens already, or has no audio length, gets no audio tokens added', () => {
    const price = priceOf('gpt-4o-transcribe');
    const withTokens: TranscriptionCost = { nanos: 7, inputTokens: 3, outputTokens: 2, totalTokens: 5, seconds: 4, estimated: false };
    expect(byAudioLength(price, withTokens, 0)).toBe(withTokens);
    const noSeconds: TranscriptionCost = { nanos: 7, inputTokens: 0, outputTokens: 0, totalTokens: 0, seconds: null, estimated: false };
    expect(byAudioLength(price, noSeconds, 0)).toBe(noSeconds);
    const zeroSeconds: TranscriptionCost = { ...noSeconds, seconds: 0 };
    expect(byAudioLength(price, zeroSeconds, 0)).toBe(zeroSeconds);
    // A prompt still counts on a cost whose tokens are kept.
    expect(byAudioLength(price, withTokens, 4)).toEqual({ ...withTokens, nanos: 7 + 4 * 2_500, inputTokens: 7, totalTokens: 9 });
  });
});

describe('transcriptionPromptTokens', () => {
  it('one token per UTF-8 byte of a string prompt; nothing otherwise', () => {
    expect(transcriptionPromptTokens({ prompt: 'aé' })).toBe(3);
    expect(transcriptionPromptTokens({ prompt: 12 })).toBe(0);
    expect(transcriptionPromptTokens({ model: 'whisper-1' })).toBe(0);
    expect(transcriptionPromptTokens(null)).toBe(0);
  });
});

describe('InputTranscriptions: the model and prompt a commit is transcribed under', () => {
  it('as reported; a setting without a model or prompt reports none', () => {
    const { tx } = transcriptions();
    expect(tx.model).toBeNull();
    expect(tx.now()).toEqual({ model: null, promptTokens: 0 });
    tx.reported({ model: 'whisper-1', prompt: 'abc' });
    expect(tx.model).toBe('whisper-1');
    expect(tx.now()).toEqual({ model: 'whisper-1', promptTokens: 3 });
    tx.reported(null);
    expect(tx.now()).toEqual({ model: null, promptTokens: 0 });
  });

  it('a session.update in flight counts until as many updates as its place are answered', () => {
    const { tx, answered } = transcriptions();
    tx.sessionUpdateSent({ model: 'gpt-4o-mini-transcribe', prompt: 'abcd' }, 2);
    expect(tx.now()).toEqual({ model: 'gpt-4o-mini-transcribe', promptTokens: 4 });
    answered.n = 1;
    expect(tx.now()).toEqual({ model: 'gpt-4o-mini-transcribe', promptTokens: 4 });
    answered.n = 2;
    expect(tx.now()).toEqual({ model: null, promptTokens: 0 });
  });

  it('an update naming no model asks the dearest shipped one; an update turning transcription off asks nothing', () => {
    const { tx } = transcriptions();
    tx.sessionUpdateSent(null, 1);
    expect(tx.now()).toEqual({ model: null, promptTokens: 0 });
    tx.sessionUpdateSent({ prompt: 'ab' }, 1);
    expect(tx.now()).toEqual({ model: LAST_RESORT_TRANSCRIPTION, promptTokens: 2 });
  });

  it('the larger of the asked and the reported prompt; of the reported and the asked model the dearer for the audio (a switch may be refused)', () => {
    const { tx } = transcriptions();
    tx.reported({ model: 'gpt-4o-transcribe', prompt: 'abcdef' });
    tx.sessionUpdateSent({ model: 'gpt-4o-mini-transcribe', prompt: 'ab' }, 1);
    expect(tx.now()).toEqual({ model: 'gpt-4o-transcribe', promptTokens: 6 });
    tx.sessionUpdateSent({ model: 'gpt-4o-mini-transcribe', prompt: 'abcdefgh' }, 1);
    expect(tx.now()).toEqual({ model: 'gpt-4o-transcribe', promptTokens: 8 });
    // Until 2026-12-07 the reported model alone (test/metering/redteam-19m-transcription-switch.test.ts).
    tx.reported({ model: 'gpt-4o-mini-transcribe', prompt: 'abcdef' });
    expect(tx.now()).toEqual({ model: 'gpt-4o-mini-transcribe', promptTokens: 8 });
    tx.sessionUpdateSent({ model: 'gpt-4o-transcribe', prompt: 'ab' }, 2);
    expect(tx.now()).toEqual({ model: 'gpt-4o-transcribe', promptTokens: 6 });
  });

  it('a transcription_session.update in flight counts until answered; its prompt only grows while in flight', () => {
    const { tx } = transcriptions();
    tx.transcriptionSessionUpdateSent('u1', { model: 'gpt-4o-mini-transcribe', prompt: 'abcde' });
    tx.transcriptionSessionUpdateSent('u2', { prompt: 'ab' });
    // The second names no model: the dearest; the prompt stays the first's, larger.
    expect(tx.now()).toEqual({ model: LAST_RESORT_TRANSCRIPTION, promptTokens: 5 });
    // One without a transcription changes nothing asked, but takes its place.
    tx.transcriptionSessionUpdateSent('u3', null);
    tx.transcriptionSessionUpdateAnswered(null);
    expect(tx.now()).toEqual({ model: LAST_RESORT_TRANSCRIPTION, promptTokens: 5 });
    tx.transcriptionSessionUpdateAnswered(null);
    expect(tx.now()).toEqual({ model: null, promptTokens: 0 });
  });

  it('an error naming an update answers it and those before it; an id not in flight answers nothing', () => {
    const { tx } = transcriptions();
    tx.transcriptionSessionUpdateSent('u1', { model: 'whisper-1' });
    tx.transcriptionSessionUpdateSent('u2', null);
    tx.transcriptionSessionUpdateAnswered('other');
    expect(tx.now().model).toBe('whisper-1');
    tx.transcriptionSessionUpdateAnswered('u2');
    expect(tx.now().model).toBeNull();
    // The next update is the third: answered once the count of answered ones reaches it, not before.
    tx.transcriptionSessionUpdateSent('u3', { model: 'whisper-1' });
    tx.transcriptionSessionUpdateAnswered('u1');
    expect(tx.now().model).toBe('whisper-1');
    tx.transcriptionSessionUpdateAnswered('u3');
    expect(tx.now().model).toBeNull();
  });

  it('an answer with nothing in flight does not count ahead for the next update', () => {
    const { tx } = transcriptions();
    tx.transcriptionSessionUpdateAnswered(null);
    tx.transcriptionSessionUpdateAnswered(null);
    tx.transcriptionSessionUpdateSent('u1', { model: 'whisper-1' });
    expect(tx.now().model).toBe('whisper-1');
  });

  it('only the last 64 update ids are kept: an error naming an older one answers nothing', () => {
    const { tx } = transcriptions();
    tx.transcriptionSessionUpdateSent('u1', { model: 'whisper-1' });
    for (let i = 2; i <= 65; i++) tx.transcriptionSessionUpdateSent(`u${i}`, null);
    tx.transcriptionSessionUpdateAnswered('u1');
    expect(tx.now().model).toBe('whisper-1');
    tx.transcriptionSessionUpdateAnswered('u2');
    expect(tx.now().model).toBeNull();
  });

  it('answers still count once more than 64 updates were in flight (their ids forgotten): the last one is answered by the 65th', () => {
    const { tx } = transcriptions();
    for (let i = 1; i <= 64; i++) tx.transcriptionSessionUpdateSent(`u${i}`, null);
    tx.transcriptionSessionUpdateSent('u65', { model: 'whisper-1', prompt: 'abc' });
    for (let i = 1; i <= 64; i++) tx.transcriptionSessionUpdateAnswered(null);
    expect(tx.now().model).toBe('whisper-1');
    tx.transcriptionSessionUpdateAnswered(null);
    expect(tx.now()).toEqual({ model: null, promptTokens: 0 });
    // Answers beyond those sent count for nothing: the next update is in flight until its own.
    tx.transcriptionSessionUpdateAnswered(null);
    tx.transcriptionSessionUpdateSent('u66', { model: 'whisper-1' });
    expect(tx.now().model).toBe('whisper-1');
  });

  it('an error naming an update answered already answers nothing', () => {
    const { tx } = transcriptions();
    tx.transcriptionSessionUpdateSent('u1', { model: 'whisper-1' });
    tx.transcriptionSessionUpdateAnswered(null);
    tx.transcriptionSessionUpdateSent('u2', { model: 'gpt-4o-mini-transcribe' });
    tx.transcriptionSessionUpdateAnswered('u1');
    expect(tx.now().model).toBe('gpt-4o-mini-transcribe');
  });

  it('a session.update turning transcription off in flight does not hide a transcription_session.update\'s model', () => {
    const { tx } = transcriptions();
    tx.sessionUpdateSent(null, 1);
    tx.transcriptionSessionUpdateSent('u1', { model: 'whisper-1', prompt: 'ab' });
    expect(tx.now()).toEqual({ model: 'whisper-1', promptTokens: 2 });
  });

  it('both kinds in flight: the session.update\'s model, the larger prompt of both', () => {
    const { tx } = transcriptions();
    tx.sessionUpdateSent({ model: 'gpt-4o-mini-transcribe', prompt: 'ab' }, 1);
    tx.transcriptionSessionUpdateSent('u1', { model: 'whisper-1', prompt: 'abcdefg' });
    expect(tx.now()).toEqual({ model: 'gpt-4o-mini-transcribe', promptTokens: 7 });
    tx.sessionUpdateSent({ model: 'gpt-4o-mini-transcribe', prompt: 'abcdefghij' }, 1);
    expect(tx.now()).toEqual({ model: 'gpt-4o-mini-transcribe', promptTokens: 10 });
  });
});

describe('InputTranscriptions.estimate', () => {
  it('the model\'s price of the audio length, its audio tokens and the prompt', () => {
    const { tx } = transcriptions();
    expect(tx.estimate('gpt-4o-mini-transcribe', 2_000, 10)).toEqual({ nanos: 2_000 * 50 + 10 * 1_250, tokens: 30 });
    expect(tx.estimate('whisper-1', 1_500, 10)).toEqual({ nanos: 150_000, tokens: 0 });
  });

  it('no model, or one without a price: the configured fallback price, as a response of an unpriced model is priced; without one, the dearest shipped transcription', () => {
    // Until 2026-12-07 no model (null) was priced at the last resort even with a fallback configured,
    // and an empty model name at the fallback by the estimate but at the last resort by the charge.
    const { tx } = transcriptions(new PriceBook({ fallbackPrice: 'gpt-4o-mini-transcribe' }));
    expect(tx.estimate(null, 1_000, 0)).toEqual({ nanos: 50_000, tokens: 10 });
    expect(tx.estimate('', 1_000, 0)).toEqual({ nanos: 50_000, tokens: 10 });
    expect(tx.estimate('no-such-model', 1_000, 0)).toEqual({ nanos: 50_000, tokens: 10 });
    const { tx: plain } = transcriptions();
    expect(plain.estimate(null, 1_000, 0)).toEqual({ nanos: 100_000, tokens: 10 });
    expect(plain.estimate('no-such-model', 1_000, 0)).toEqual({ nanos: 100_000, tokens: 10 });
  });
});

describe('one price choice: a transcription\'s estimate (its reservation) is what the same audio is charged', () => {
  // A fallback cheaper than the last resort (mini), one dearer (a per-minute model at $0.06 a minute), none.
  const books: [string, PriceBook][] = [
    ['cheaper fallback', new PriceBook({ fallbackPrice: 'gpt-4o-mini-transcribe' })],
    ['dearer fallback', new PriceBook({ prices: { 'dear-transcribe': { kind: 'transcription', perMinute: '0.06' } }, fallbackPrice: 'dear-transcribe' })],
    ['no fallback', new PriceBook()],
  ];
  for (const [name, book] of books) {
    for (const model of [null, '', 'no-such-model', 'gpt-4o-mini-transcribe', 'whisper-1']) {
      it(`${name}, model ${JSON.stringify(model)}`, () => {
        const { tx } = transcriptions(book);
        const estimate = tx.estimate(model, 1_500, 40);
        // Billed by its audio length (the completed event never came): the record the reservation settles into.
        const charged = tx.price('item_1', model, { type: 'duration', seconds: 1.5 }, 'session_end_estimate', undefined, 40)!;
        expect(estimate).toEqual({ nanos: charged.cost.nanos, tokens: charged.cost.totalTokens });
        // A completed event of that audio's duration (a per-minute model's usage) is charged the same price.
        const completed = tx.price('item_1', model, { type: 'duration', seconds: 1.5 }, 'transcription.completed', pending(1_500, [], model, 40))!;
        expect(completed.fallback).toBe(charged.fallback);
        expect(completed.model).toBe(charged.model);
      });
    }
  }
});

describe('InputTranscriptions: commits on their way upstream', () => {
  it('named by their stamps in order; a refused one gives its reservations back; the committed event takes the oldest', () => {
    const { tx } = transcriptions();
    tx.commitLeft(pending(100, ['r1']));
    tx.commitLeft(pending(200, ['r2']));
    tx.commitLeft(pending(300, ['r3']));
    tx.commitStamped('e1');
    tx.commitStamped('e2');
    expect(tx.commitRefused('nope')).toEqual([]);
    expect(tx.commitRefused('e2')).toEqual(['r2']);
    expect(tx.commitRefused('e2')).toEqual([]);
    expect(tx.takeCommitAhead()).toMatchObject({ ms: 100, reservations: ['r1'] });
    tx.commitStamped('e3');
    expect(tx.takeAllUnreported()).toEqual([['commit:e3', { ...pending(300, ['r3']), eventId: 'e3' }]]);
    expect(tx.takeCommitAhead()).toBeUndefined();
  });

  it('the oldest commit in flight refused gives its reservations back; a stamp with no commit in flight names none', () => {
    const { tx } = transcriptions();
    tx.commitStamped('e0');
    tx.commitLeft(pending(100, ['r1']));
    tx.commitLeft(pending(200, ['r2']));
    tx.commitStamped('e1');
    expect(tx.commitRefused('e1')).toEqual(['r1']);
    expect(tx.takeAllUnreported()).toEqual([['commit:0', { ...pending(200, ['r2']), eventId: null }]]);
  });

  it('beyond 256 in flight the oldest two fold into one: no audio, prompt nor reservation lost', () => {
    const { tx } = transcriptions();
    for (let i = 0; i < 256; i++) tx.commitLeft(pending(i + 1, [`r${i}`], i === 1 ? 'whisper-1' : 'gpt-4o-transcribe', i));
    tx.commitStamped('e0');
    tx.commitStamped('e1');
    tx.commitLeft(pending(1_000, ['last']));
    expect(tx.takeCommitAhead()).toEqual({ ms: 3, model: 'whisper-1', promptTokens: 1, reservations: ['r0', 'r1'], eventId: 'e1' });
    expect(tx.takeCommitAhead()).toMatchObject({ ms: 3, reservations: ['r2'], eventId: null });
    const rest = tx.takeAllUnreported();
    expect(rest).toHaveLength(254);
    expect(rest.at(-1)).toEqual(['commit:253', { ...pending(1_000, ['last']), eventId: null }]);
  });

  it('at the close: items first, then the commits with audio (an unstamped one by its place); all forgotten', () => {
    const { tx } = transcriptions();
    tx.reported({ model: 'gpt-4o-transcribe' });
    const item = tx.itemCommitted('item_a', 500, undefined).pending;
    tx.commitLeft(pending(0, []));
    tx.commitLeft(pending(700, ['r']));
    expect(tx.takeAllUnreported()).toEqual([
      ['item_a', item],
      ['commit:1', { ...pending(700, ['r']), eventId: null }],
    ]);
    expect(tx.takeAllUnreported()).toEqual([]);
  });
});

describe('InputTranscriptions: committed items', () => {
  it('an item takes its commit\'s reservations and the model and prompt reported now', () => {
    const { tx } = transcriptions();
    tx.reported({ model: 'gpt-4o-mini-transcribe', prompt: 'abc' });
    const { pending: p, freed, dropped } = tx.itemCommitted('item_a', 900, pending(900, ['r1', 'r2'], 'whisper-1', 50));
    expect(p).toEqual({ ms: 900, model: 'gpt-4o-mini-transcribe', promptTokens: 3, reservations: ['r1', 'r2'] });
    expect(freed).toEqual([]);
    expect(dropped).toBeNull();
    expect(tx.awaits('item_a', p)).toBe(true);
    expect(tx.awaits('item_a', { ...p })).toBe(false);
  });

  it('an item committed again under the same id frees the reservations of the one it replaces', () => {
    const { tx } = transcriptions();
    tx.reported({ model: 'gpt-4o-transcribe' });
    const first = tx.itemCommitted('item_a', 100, pending(100, ['r1'])).pending;
    const second = tx.itemCommitted('item_a', 200, undefined);
    expect(second.freed).toEqual(['r1']);
    expect(second.pending.reservations).toEqual([]);
    expect(tx.awaits('item_a', first)).toBe(false);
    expect(tx.take('item_a')).toBe(second.pending);
    expect(tx.take('item_a')).toBeUndefined();
  });

  it('beyond 256 awaited the oldest is dropped (billed once: its late completed event is known); 256 dropped ids are kept', () => {
    const { tx } = transcriptions();
    tx.reported({ model: 'gpt-4o-transcribe' });
    for (let i = 0; i < 256; i++) expect(tx.itemCommitted(`item_${i}`, 10, undefined).dropped).toBeNull();
    const first = tx.itemCommitted('item_256', 10, undefined);
    expect(first.dropped?.[0]).toBe('item_0');
    expect(tx.take('item_0')).toBeUndefined();
    for (let i = 257; i <= 512; i++) expect(tx.itemCommitted(`item_${i}`, 10, undefined).dropped?.[0]).toBe(`item_${i - 256}`);
    // item_0 to item_256 were dropped, 257 ids: the oldest was forgotten.
    expect(tx.takeDropped('item_0')).toBe(false);
    expect(tx.takeDropped('item_1')).toBe(true);
    expect(tx.takeDropped('item_1')).toBe(false);
    expect(tx.takeDropped('item_256')).toBe(true);
    expect(tx.takeDropped('item_257')).toBe(false);
  });
});

describe('InputTranscriptions.price', () => {
  const completedUsage = { type: 'tokens', input_tokens: 110, output_tokens: 2, total_tokens: 112, input_token_details: { text_tokens: 100, audio_tokens: 10 } };

  it('a completed event\'s usage at the model\'s price, as reported (no prompt added)', () => {
    const { tx, lines } = transcriptions();
    const priced = tx.price('item_a', 'gpt-4o-transcribe', completedUsage, 'transcription.completed', undefined, 1_000);
    expect(priced).toEqual({ model: 'gpt-4o-transcribe', cost: { nanos: 100 * 2_500 + 10 * 6_000 + 2 * 10_000, inputTokens: 110, outputTokens: 2, totalTokens: 112, seconds: null, estimated: false }, fallback: false, settledBy: 'transcription.completed' });
    expect(lines).toEqual([]);
  });

  it('a model without a price: billed at the dearest shipped one under its own name, with a warning', () => {
    const { tx, lines } = transcriptions();
    const priced = tx.price('item_a', 'no-such-model', { type: 'duration', seconds: 1 }, 'transcription.completed');
    expect(priced).toMatchObject({ model: 'no-such-model', fallback: true, cost: { nanos: 100_000 } });
    expect(lines.map((l) => [l['level'], l['model'], l['msg']])).toEqual([[40, 'no-such-model', `metering: transcription with an unknown model billed at ${LAST_RESORT_TRANSCRIPTION} prices`]]);
    const { tx: other } = transcriptions();
    expect(other.price('item_a', null, { type: 'duration', seconds: 1 }, 'transcription.completed')).toMatchObject({ model: LAST_RESORT_TRANSCRIPTION, fallback: true });
  });

  it('a configured fallback price bills under the model\'s name', () => {
    const { tx, lines } = transcriptions(new PriceBook({ fallbackPrice: 'gpt-4o-mini-transcribe' }));
    expect(tx.price('item_a', 'no-such-model', { type: 'duration', seconds: 1 }, 'transcription.completed')).toMatchObject({ model: 'no-such-model', fallback: true, cost: { nanos: 50_000 } });
    expect(lines).toEqual([]);
  });

  it('no model: billed at the fallback price under its name when one is configured (as its estimate is), else at the dearest shipped one', () => {
    const { tx } = transcriptions(new PriceBook({ fallbackPrice: 'gpt-4o-mini-transcribe' }));
    expect(tx.price('item_a', null, { type: 'duration', seconds: 1 }, 'transcription.completed')).toMatchObject({ model: 'gpt-4o-mini-transcribe', fallback: true, cost: { nanos: 50_000 } });
    const { tx: plain } = transcriptions();
    expect(plain.price('item_a', null, { type: 'duration', seconds: 1 }, 'transcription.completed')).toMatchObject({ model: LAST_RESORT_TRANSCRIPTION, fallback: true, cost: { nanos: 100_000 } });
  });

  it('a dated snapshot of a priced model bills under the name it was asked by', () => {
    const { tx } = transcriptions();
    expect(tx.price('item_a', 'whisper-1-2025-01-01', { type: 'duration', seconds: 1 }, 'transcription.completed')).toMatchObject({ model: 'whisper-1-2025-01-01', fallback: false, cost: { nanos: 100_000 } });
  });

  it('a usage that prices at nothing, with committed audio: billed by that audio\'s length under its model and prompt', () => {
    const { tx, lines } = transcriptions();
    const committed = pending(2_000, ['r'], 'gpt-4o-mini-transcribe', 8);
    const expected = { model: 'gpt-4o-mini-transcribe', cost: { nanos: 100_000 + 8 * 1_250, inputTokens: 28, outputTokens: 0, totalTokens: 28, seconds: 2, estimated: false }, fallback: false, settledBy: 'unreadable_usage_estimate' };
    expect(tx.price('item_a', 'whisper-1', null, 'transcription.completed', committed)).toEqual(expected);
    expect(tx.price('item_a', 'whisper-1', { type: 'duration', seconds: 0 }, 'transcription.completed', committed)).toEqual(expected);
    expect(lines.map((l) => [l['level'], l['itemId'], l['model'], l['msg']])).toEqual([
      [40, 'item_a', 'whisper-1', 'metering: input transcription completed with a usage that cannot be priced; billed by its audio length'],
      [40, 'item_a', 'whisper-1', 'metering: input transcription completed with a usage that cannot be priced; billed by its audio length'],
    ]);
  });

  it('a usage that prices, with committed audio, is billed as reported', () => {
    const { tx } = transcriptions();
    expect(tx.price('item_a', 'whisper-1', { type: 'duration', seconds: 3 }, 'transcription.completed', pending(1_000))).toMatchObject({ model: 'whisper-1', cost: { nanos: 300_000 }, settledBy: 'transcription.completed' });
  });

  it('no usage and no committed audio (or an empty one): not billed, with a warning', () => {
    const { tx, lines } = transcriptions();
    expect(tx.price('item_a', 'whisper-1', undefined, 'transcription.completed')).toBeNull();
    expect(tx.price('item_a', 'whisper-1', undefined, 'transcription.completed', pending(0))).toBeNull();
    expect(lines.map((l) => [l['level'], l['itemId'], l['model'], l['msg']])).toEqual([
      [40, 'item_a', 'whisper-1', 'metering: input transcription completed without usage; not billed'],
      [40, 'item_a', 'whisper-1', 'metering: input transcription completed without usage; not billed'],
    ]);
  });

  it('billed by its length (no completed event): audio tokens and the prompt count; as a completed event, they do not', () => {
    const { tx } = transcriptions();
    const usage = { type: 'duration', seconds: 1 };
    expect(tx.price('item_a', 'gpt-4o-transcribe', usage, 'client_gone_estimate', undefined, 4)?.cost).toMatchObject({ nanos: 100_000 + 4 * 2_500, totalTokens: 14 });
    expect(tx.price('item_a', 'gpt-4o-transcribe', usage, 'transcription.completed', undefined, 4)?.cost).toMatchObject({ nanos: 100_000, totalTokens: 0 });
  });
});
