import { describe, expect, it } from 'vitest';
import { parseUsage, readResponseUsage, tokenCount, usageProblem } from './usage.js';

// The one reading of `response.usage`: every cost the proxy bills starts here.

describe('tokenCount', () => {
  it('a finite positive number, floored; anything else is 0', () => {
    expect(tokenCount(12)).toBe(12);
    expect(tokenCount(12.9)).toBe(12);
    expect(tokenCount(0.5)).toBe(0);
    for (const v of [0, -3, Number.NaN, Number.POSITIVE_INFINITY, '12', null, undefined, {}, [7]]) expect(tokenCount(v), String(v)).toBe(0);
  });
});

describe('readResponseUsage', () => {
  it('reads the GA shape: totals, per-modality input and output, cached split per modality', () => {
    const u = readResponseUsage({
      total_tokens: 430,
      input_tokens: 300,
      output_tokens: 130,
      input_token_details: { text_tokens: 100, audio_tokens: 180, image_tokens: 20, cached_tokens: 90, cached_tokens_details: { text_tokens: 60, audio_tokens: 25, image_tokens: 5 } },
      output_token_details: { text_tokens: 30, audio_tokens: 100 },
    });
    expect(u).toEqual({
      input: { text: 100, audio: 180, image: 20 },
      cached: { text: 60, audio: 25, image: 5 },
      output: { text: 30, audio: 100 },
      inputTokens: 300,
      outputTokens: 130,
      cachedTokens: 90,
      totalTokens: 430,
    });
  });

  it('never under-counts: totals are at least the sum of their details, and total at least input + output', () => {
    const u = readResponseUsage({ total_tokens: 5, input_tokens: 10, output_tokens: 1, input_token_details: { text_tokens: 40, audio_tokens: 2, image_tokens: 3 }, output_token_details: { text_tokens: 6, audio_tokens: 7 } });
    expect(u.inputTokens).toBe(45);
    expect(u.outputTokens).toBe(13);
    expect(u.totalTokens).toBe(58);
    // Totals above their details stand (a modality the details do not name).
    const v = readResponseUsage({ total_tokens: 100, input_tokens: 50, output_tokens: 20, input_token_details: { text_tokens: 1 }, output_token_details: { audio_tokens: 2 } });
    expect([v.inputTokens, v.outputTokens, v.totalTokens]).toEqual([50, 20, 100]);
  });

  it('without a per-modality cached split: the cache is taken from text, then image, then audio (the order that never under-prices)', () => {
    const details = (cached: number) => readResponseUsage({ input_tokens: 60, input_token_details: { text_tokens: 10, audio_tokens: 30, image_tokens: 20, cached_tokens: cached } }).cached;
    expect(details(5)).toEqual({ text: 5, image: 0, audio: 0 });
    expect(details(10)).toEqual({ text: 10, image: 0, audio: 0 });
    expect(details(25)).toEqual({ text: 10, image: 15, audio: 0 });
    expect(details(45)).toEqual({ text: 10, image: 20, audio: 15 });
    // More cached than input: capped at each modality's input.
    expect(details(500)).toEqual({ text: 10, image: 20, audio: 30 });
    expect(readResponseUsage({ input_token_details: { text_tokens: 10, audio_tokens: 30, image_tokens: 20, cached_tokens: 500 } }).cachedTokens).toBe(60);
    // A null split is no split.
    expect(readResponseUsage({ input_token_details: { text_tokens: 10, cached_tokens: 4, cached_tokens_details: null } }).cached).toEqual({ text: 4, image: 0, audio: 0 });
  });

  it('a cached split beyond a modality\'s input is not a discount: capped per modality', () => {
    const u = readResponseUsage({ input_token_details: { text_tokens: 10, audio_tokens: 5, image_tokens: 0, cached_tokens: 100, cached_tokens_details: { text_tokens: 50, audio_tokens: 50, image_tokens: 50 } } });
    expect(u.cached).toEqual({ text: 10, audio: 5, image: 0 });
    expect(u.cachedTokens).toBe(15);
  });

  it('hostile or partial shapes read as zeros, never as negative or fractional tokens', () => {
    const zero = { input: { text: 0, audio: 0, image: 0 }, cached: { text: 0, audio: 0, image: 0 }, output: { text: 0, audio: 0 }, inputTokens: 0, outputTokens: 0, cachedTokens: 0, totalTokens: 0 };
    for (const usage of [{}, null, 'x', 7, [], { input_tokens: -5, output_tokens: '9', total_tokens: Number.NaN, input_token_details: 'x', output_token_details: [1] }]) expect(readResponseUsage(usage), JSON.stringify(usage)).toEqual(zero);
  });
});

describe('parseUsage', () => {
  it('null when the response reported none; otherwise the reading', () => {
    expect(parseUsage(null)).toBeNull();
    expect(parseUsage(undefined)).toBeNull();
    expect(parseUsage({ input_tokens: 3 })?.inputTokens).toBe(3);
    expect(parseUsage({})?.totalTokens).toBe(0);
  });
});

describe('usageProblem', () => {
  const ok = { total_tokens: 15, input_tokens: 10, output_tokens: 5, input_token_details: { text_tokens: 10, audio_tokens: 0, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } }, output_token_details: { text_tokens: 5, audio_tokens: 0 } };

  it('a usage with counts (zeros included, details absent or null) can be priced', () => {
    expect(usageProblem(ok)).toBeNull();
    expect(usageProblem({ input_tokens: 0, output_tokens: 0 })).toBeNull();
    expect(usageProblem({ ...ok, input_token_details: { text_tokens: 10, image_tokens: null } })).toBeNull();
  });

  it('no object, no input/output counts, or a count that is not a finite non-negative number cannot', () => {
    for (const u of [null, undefined, 'x', 3, [ok], {}]) expect(usageProblem(u), JSON.stringify(u)).not.toBeNull();
    expect(usageProblem({ ...ok, input_tokens: '10' })).not.toBeNull();
    expect(usageProblem({ ...ok, output_tokens: -1 })).not.toBeNull();
    expect(usageProblem({ ...ok, total_tokens: Number.NaN })).not.toBeNull();
    expect(usageProblem({ ...ok, output_token_details: { audio_tokens: '200' } })).not.toBeNull();
    expect(usageProblem({ ...ok, input_token_details: { cached_tokens_details: { audio_tokens: {} } } })).not.toBeNull();
  });
});
