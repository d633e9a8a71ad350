import { describe, expect, it } from 'vitest';
import { DEFAULT_PRICES } from './default-prices.js';
import { formatUsd } from './money.js';
import { PriceBook, PriceConfigError, readResponseUsage, responseCost, transcriptionCost, worstCaseCost, worstCaseOf, type ModelPrice } from './pricing.js';

// Built inside the tests, never at import: a mutant that breaks the price book must fail tests,
// not the collection of this file (Stryker counts a file that does not load as no failing test).
let shared: PriceBook | null = null;
const book = (): PriceBook => (shared ??= new PriceBook());

function price(model: string): ModelPrice {
  const p = book().own(model);
  if (!p) throw new Error(`no price for ${model}`);
  return p;
}

/** A GA usage object satisfying the §3.10 invariants. */
function usage(u: { text?: number; audio?: number; image?: number; cText?: number; cAudio?: number; cImage?: number; outText?: number; outAudio?: number }) {
  const [text, audio, image] = [u.text ?? 0, u.audio ?? 0, u.image ?? 0];
  const [cText, cAudio, cImage] = [u.cText ?? 0, u.cAudio ?? 0, u.cImage ?? 0];
  const [outText, outAudio] = [u.outText ?? 0, u.outAudio ?? 0];
  const input = text + audio + image;
  const output = outText + outAudio;
  return {
    total_tokens: input + output,
    input_tokens: input,
    output_tokens: output,
    input_token_details: {
      text_tokens: text,
      audio_tokens: audio,
      image_tokens: image,
      cached_tokens: cText + cAudio + cImage,
      cached_tokens_details: { text_tokens: cText, audio_tokens: cAudio, image_tokens: cImage },
    },
    output_token_details: { text_tokens: outText, audio_tokens: outAudio },
  };
}

const SHAPES = {
  textOnly: usage({ text: 1000, outText: 500 }),
  audioOnly: usage({ audio: 2000, outAudio: 1000 }),
  cachedAudio: usage({ text: 300, cText: 256, audio: 2000, cAudio: 1500, outText: 100, outAudio: 800 }),
  images: usage({ text: 100, image: 765, cImage: 255, outText: 50 }),
};

/*
 * Hand calculations, in micro-dollars (USD per 1M tokens = µ$ per token):
 *   textOnly    = 1000·textIn + 500·textOut
 *   audioOnly   = 2000·audioIn + 1000·audioOut
 *   cachedAudio = 44·textIn + 256·cachedTextIn + 500·audioIn + 1500·cachedAudioIn + 100·textOut + 800·audioOut
 *   images      = 100·textIn + 510·imageIn + 255·cachedImageIn + 50·textOut
 */
const EXPECTED: Record<string, Record<keyof typeof SHAPES, string>> = {
  // 4000 + 8000; 64000 + 64000; 176 + 102.4 + 16000 + 600 + 1600 + 51200; 400 + 2550 + 127.5 + 800
  'gpt-realtime': { textOnly: '0.012', audioOnly: '0.128', cachedAudio: '0.0696784', images: '0.0038775' },
  // 600 + 1200; 20000 + 20000; 26.4 + 15.36 + 5000 + 450 + 240 + 16000; 60 + 408 + 20.4 + 120
  'gpt-realtime-mini': { textOnly: '0.0018', audioOnly: '0.04', cachedAudio: '0.02173176', images: '0.0006084' },
  'gpt-realtime-1.5': { textOnly: '0.012', audioOnly: '0.128', cachedAudio: '0.0696784', images: '0.0038775' },
  // text out 24: 4000 + 12000; 128000; 176 + 102.4 + 16000 + 600 + 2400 + 51200; 400 + 2550 + 127.5 + 1200
  'gpt-realtime-2': { textOnly: '0.016', audioOnly: '0.128', cachedAudio: '0.0704784', images: '0.0042775' },
  'gpt-realtime-2.1': { textOnly: '0.016', audioOnly: '0.128', cachedAudio: '0.0704784', images: '0.0042775' },
  'gpt-realtime-2.1-mini': { textOnly: '0.0018', audioOnly: '0.04', cachedAudio: '0.02173176', images: '0.0006084' },
};

const usd = (s: string) => formatUsd(Math.round(Number(s) * 1e9));

describe('pricing: response usage', () => {
  it('ships a price for every realtime model and covers each in the hand calculations', () => {
    const realtime = Object.entries(DEFAULT_PRICES).filter(([, p]) => p.kind === 'realtime').map(([id]) => id);
    expect(realtime.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [model, shapes] of Object.entries(EXPECTED)) {
    for (const [shape, expected] of Object.entries(shapes)) {
      it(`${model}: ${shape} costs $${expected}`, () => {
        const nanos = responseCost(price(model), readResponseUsage(SHAPES[shape as keyof typeof SHAPES]));
        expect(Number.isInteger(nanos)).toBe(true);
        expect(formatUsd(nanos)).toBe(usd(expected));
      });
    }
  }

  it('prices dated snapshots like their model', () => {
    expect(book().lookup('gpt-realtime-2025-08-28')?.price.id).toBe('gpt-realtime');
    expect(book().lookup('gpt-realtime-mini-2025-12-15')?.price.id).toBe('gpt-realtime-mini');
    expect(book().lookup('gpt-realtime-9')).toBeNull();
  });

  it('sums 10,000 responses exactly (no float drift)', () => {
    const p = price('gpt-realtime-mini');
    const one = responseCost(p, readResponseUsage(usage({ text: 7, cText: 3, outText: 1 })));
    // 4·0.6 + 3·0.06 + 1·2.4 = 4.98 µ$ = 4980 n$
    expect(one).toBe(4980);
    let total = 0;
    for (let i = 0; i < 10_000; i++) total += one;
    expect(formatUsd(total)).toBe('0.0498');
  });

  it('treats missing fields as 0 and never prices undetailed tokens low', () => {
    expect(responseCost(price('gpt-realtime'), readResponseUsage({}))).toBe(0);
    expect(responseCost(price('gpt-realtime'), readResponseUsage(null))).toBe(0);
    // 100 input and 10 output tokens without details: dearest rates (audio in 32, audio out 64).
    const t = readResponseUsage({ input_tokens: 100, output_tokens: 10, total_tokens: 110 });
    expect(formatUsd(responseCost(price('gpt-realtime'), t))).toBe(usd('0.00384'));
  });

  it('without cached details, attributes the cache to the smallest discount first', () => {
    // Beta-like shape: cached 64 of 100 text + 50 audio → all 64 on text (0.4 instead of 4).
    const t = readResponseUsage({
      input_tokens: 150,
      output_tokens: 0,
      input_token_details: { text_tokens: 100, audio_tokens: 50, cached_tokens: 64 },
    });
    expect(t.cached).toEqual({ text: 64, audio: 0, image: 0 });
    // 36·4 + 64·0.4 + 50·32 = 144 + 25.6 + 1600 = 1769.6 µ$
    expect(formatUsd(responseCost(price('gpt-realtime'), t))).toBe(usd('0.0017696'));
  });

  it('worst case = context at the dearest input rate + output limit at the dearest output rate', () => {
    const p = price('gpt-realtime');
    // 1000·32 + 4096·64 = 32000 + 262144 µ$
    expect(worstCaseCost(p, 1000, 10_000)).toEqual({ nanos: 294_144_000, tokens: 5096 });
    expect(worstCaseCost(p, 1_000_000, 10).tokens).toBe(32_768 + 10);
  });
});

describe('pricing: transcription usage', () => {
  it('gpt-4o-transcribe tokens: 20·2.5 + 160·6 + 40·10 = 1410 µ$', () => {
    const u = { type: 'tokens', input_tokens: 180, output_tokens: 40, total_tokens: 220, input_token_details: { text_tokens: 20, audio_tokens: 160 } };
    const c = transcriptionCost(price('gpt-4o-transcribe'), u)!;
    expect(formatUsd(c.nanos)).toBe(usd('0.00141'));
    expect(c).toMatchObject({ inputTokens: 180, outputTokens: 40, totalTokens: 220, estimated: false });
  });

  it('gpt-4o-mini-transcribe tokens: 20·1.25 + 160·3 + 40·5 = 705 µ$', () => {
    const u = { type: 'tokens', input_tokens: 180, output_tokens: 40, total_tokens: 220, input_token_details: { text_tokens: 20, audio_tokens: 160 } };
    expect(formatUsd(transcriptionCost(price('gpt-4o-mini-transcribe'), u)!.nanos)).toBe(usd('0.000705'));
  });

  it('duration usage: 12.5 s at $0.006/min = $0.00125, at $0.0045/min = $0.0009375', () => {
    const u = { type: 'duration', seconds: 12.5 };
    expect(formatUsd(transcriptionCost(price('whisper-1'), u)!.nanos)).toBe(usd('0.00125'));
    expect(formatUsd(transcriptionCost(price('gpt-4o-transcribe'), u)!.nanos)).toBe(usd('0.00125'));
    expect(formatUsd(transcriptionCost(price('gpt-transcribe'), u)!.nanos)).toBe(usd('0.0009375'));
    expect(transcriptionCost(price('whisper-1'), u)!.estimated).toBe(false);
  });

  it('converts a shape the model is not priced in at 10 audio tokens per second (marked estimated)', () => {
    // whisper-1 reporting 160 audio tokens → 16 s → 16/60 · 0.006 = $0.0016
    const c = transcriptionCost(price('whisper-1'), { type: 'tokens', input_tokens: 160, output_tokens: 12, total_tokens: 172, input_token_details: { audio_tokens: 160 } })!;
    expect(formatUsd(c.nanos)).toBe(usd('0.0016'));
    expect(c.estimated).toBe(true);
  });

  it('returns null when there is no usage to price', () => {
    expect(transcriptionCost(price('gpt-4o-transcribe'), undefined)).toBeNull();
  });
});

describe('pricing: configuration', () => {
  it('overrides a shipped model field by field and adds models via extends', () => {
    const b = new PriceBook({
      prices: { 'gpt-realtime': { textIn: '3.50' }, 'my-deployment': { extends: 'gpt-realtime-mini', audioOut: 25 } },
    });
    expect(b.own('gpt-realtime')!.tokens!.textIn).toBe(3500);
    expect(b.own('gpt-realtime')!.tokens!.audioOut).toBe(64_000);
    expect(b.own('my-deployment')!.tokens!.audioOut).toBe(25_000);
    expect(b.own('my-deployment')!.tokens!.textIn).toBe(600);
  });

  it('maps aliases and applies the fallback only to unknown models', () => {
    const b = new PriceBook({ aliases: { 'azure-rt': 'gpt-realtime-mini' }, fallbackPrice: 'gpt-realtime' });
    expect(b.lookup('azure-rt')).toMatchObject({ fallback: false, price: { id: 'gpt-realtime-mini' } });
    expect(b.lookup('brand-new-model')).toMatchObject({ fallback: true, price: { id: 'gpt-realtime' } });
  });

  it('refuses prices that cannot be exact, incomplete realtime prices and unknown references', () => {
    expect(() => new PriceBook({ prices: { x: { extends: 'gpt-realtime', textIn: '0.0001' } } })).toThrow(PriceConfigError);
    expect(() => new PriceBook({ prices: { x: { kind: 'realtime', textIn: 1 } } })).toThrow(/needs/);
    expect(() => new PriceBook({ prices: { x: { extends: 'nope' } } })).toThrow(/unknown/);
    expect(() => new PriceBook({ fallbackPrice: 'nope' })).toThrow(/fallbackPrice/);
    expect(() => new PriceBook({ aliases: { a: 'nope' } })).toThrow(/aliases/);
  });
});

describe('pricing: issue 11 additions', () => {
  it('per-minute realtime transcription and translation models (reference §6)', () => {
    const minute = { type: 'duration', seconds: 60 };
    expect(transcriptionCost(book().own('gpt-realtime-whisper')!, minute)?.nanos).toBe(17_000_000);
    expect(transcriptionCost(book().own('gpt-live-transcribe')!, minute)?.nanos).toBe(17_000_000);
    expect(transcriptionCost(book().own('gpt-realtime-translate')!, minute)?.nanos).toBe(34_000_000);
  });

  it('knows the shut-down preview models and their successors, unless the config prices the id itself', () => {
    expect(new PriceBook().retired('gpt-4o-realtime-preview')).toBe('gpt-realtime-2.1');
    expect(new PriceBook().retired('gpt-4o-realtime-preview-2024-12-17')).toBe('gpt-realtime-2.1');
    expect(new PriceBook().retired('gpt-4o-mini-realtime-preview-2024-12-17')).toBe('gpt-realtime-2.1-mini');
    expect(new PriceBook().retired('gpt-realtime')).toBeNull();
    expect(new PriceBook({ aliases: { 'gpt-4o-realtime-preview': 'gpt-realtime' } }).retired('gpt-4o-realtime-preview')).toBeNull();
  });

  it('output without a modality split: text rate when the response is text only, dearest rate otherwise', () => {
    const p = new PriceBook().own('gpt-realtime')!;
    const t = readResponseUsage({ input_tokens: 0, output_tokens: 10, total_tokens: 10 });
    expect(responseCost(p, t, true)).toBe(10 * 16_000);
    expect(responseCost(p, t)).toBe(10 * 64_000);
  });
});

describe('pricing: configuration an operator writes (issue 16)', () => {
  const configError = (f: () => unknown): PriceConfigError => {
    try {
      f();
    } catch (err) {
      expect(err).toBeInstanceOf(PriceConfigError);
      expect((err as Error).name).toBe('PriceConfigError');
      return err as PriceConfigError;
    }
    throw new Error('no PriceConfigError');
  };
  const ALL = { textIn: '1', cachedTextIn: '0.1', textOut: '2', audioIn: '3', cachedAudioIn: '0.3', audioOut: '4', imageIn: '5', cachedImageIn: '0.5' };

  it('a new realtime model with every token rate: realtime, 128k context and 4,096 output tokens unless set; worst-case rates are the dearest', () => {
    const p = new PriceBook({ prices: { 'new-rt': ALL } }).own('new-rt')!;
    expect(p).toEqual({
      id: 'new-rt',
      kind: 'realtime',
      tokens: { textIn: 1000, cachedTextIn: 100, textOut: 2000, audioIn: 3000, cachedAudioIn: 300, audioOut: 4000, imageIn: 5000, cachedImageIn: 500 },
      perMinuteNanos: null,
      contextWindow: 128_000,
      maxOutputTokens: 4096,
      maxInRate: 5000,
      maxOutRate: 4000,
    });
    const withPerMinute = new PriceBook({ prices: { m: { ...ALL, perMinute: '0.01' } } }).own('m')!;
    expect([withPerMinute.kind, withPerMinute.perMinuteNanos]).toEqual(['realtime', 10_000_000]);
  });

  it('without a kind, a model is realtime unless it has a per-minute price and no audio output rate', () => {
    expect(configError(() => new PriceBook({ prices: { x: { textIn: '1', audioIn: '1', textOut: '1' } } })).message).toMatch(/^metering\.prices\.x: a realtime price needs/);
    expect(new PriceBook({ prices: { x: { textIn: '1', audioIn: '1', textOut: '1', perMinute: '0.01' } } }).own('x')!.kind).toBe('transcription');
  });

  it('a model with only a per-minute price is a transcription model (2,000 output tokens), and needs no token rates', () => {
    const p = new PriceBook({ prices: { stt: { perMinute: '0.01' } } }).own('stt')!;
    expect(p).toMatchObject({ kind: 'transcription', tokens: null, perMinuteNanos: 10_000_000, maxOutputTokens: 2000, contextWindow: 128_000, maxInRate: 0, maxOutRate: 0 });
    const sized = new PriceBook({ prices: { stt: { perMinute: '0.01', maxOutputTokens: 77, contextWindow: 99 } } }).own('stt')!;
    expect([sized.maxOutputTokens, sized.contextWindow]).toEqual([77, 99]);
  });

  it('a per-token transcription model: uncached rates stand for cached ones, text out for audio out, the dearer input for images', () => {
    const p = new PriceBook({ prices: { stt: { textIn: '1', audioIn: '3', textOut: '2', perMinute: '0.01' } } }).own('stt')!;
    expect(p.kind).toBe('transcription');
    expect(p.tokens).toEqual({ textIn: 1000, cachedTextIn: 1000, textOut: 2000, audioIn: 3000, cachedAudioIn: 3000, audioOut: 2000, imageIn: 3000, cachedImageIn: 3000 });
    const dearText = new PriceBook({ prices: { stt: { kind: 'transcription', textIn: '4', audioIn: '3', textOut: '2' } } }).own('stt')!;
    expect([dearText.tokens!.imageIn, dearText.tokens!.cachedImageIn]).toEqual([4000, 4000]);
    const explicit = new PriceBook({ prices: { stt: { kind: 'transcription', ...ALL } } }).own('stt')!;
    expect(explicit.tokens).toEqual({ textIn: 1000, cachedTextIn: 100, textOut: 2000, audioIn: 3000, cachedAudioIn: 300, audioOut: 4000, imageIn: 5000, cachedImageIn: 500 });
  });

  it('an incomplete price says which fields are missing', () => {
    expect(configError(() => new PriceBook({ prices: { x: { kind: 'realtime', textIn: 1 } } })).message).toBe(
      'metering.prices.x: a realtime price needs cachedTextIn, textOut, audioIn, cachedAudioIn, audioOut, imageIn, cachedImageIn',
    );
    expect(configError(() => new PriceBook({ prices: { x: { textIn: 1, audioOut: 1 } } })).message).toMatch(/^metering\.prices\.x: a realtime price needs cachedTextIn, textOut, audioIn/);
    for (const missing of ['textIn', 'audioIn', 'textOut'] as const) {
      const c: Record<string, string> = { textIn: '1', audioIn: '1', textOut: '1', cachedTextIn: '1' };
      delete c[missing];
      expect(configError(() => new PriceBook({ prices: { x: { kind: 'transcription', ...c } } })).message).toBe('metering.prices.x: a per-token transcription price needs textIn, audioIn and textOut');
    }
    expect(configError(() => new PriceBook({ prices: { x: { kind: 'transcription' } } })).message).toBe('metering.prices.x: no token prices and no perMinute price');
  });

  it('a rate that is not exact names the model and the field', () => {
    for (const field of Object.keys(ALL)) {
      for (const kind of ['realtime', 'transcription'] as const) {
        const e = configError(() => new PriceBook({ prices: { x: { kind, ...ALL, [field]: '0.0001' } } }));
        expect(e.message).toBe(`metering.prices.x.${field}: 0.0001 is not a non-negative multiple of 0.001 USD per 1M tokens`);
      }
    }
    expect(configError(() => new PriceBook({ prices: { x: { perMinute: '0.0000000001' } } })).message).toBe('metering.prices.x.perMinute: 0.0000000001 is not a USD amount with at most 9 decimals');
  });

  it('extends: itself (a shipped model), a chain, a cycle, an unknown model', () => {
    const self = new PriceBook({ prices: { 'gpt-realtime': { extends: 'gpt-realtime', textIn: '3.5' } } }).own('gpt-realtime')!;
    expect(self.tokens).toMatchObject({ textIn: 3500, audioOut: 64_000 });
    const chain = new PriceBook({ prices: { a: { extends: 'b', textIn: '9' }, b: { extends: 'gpt-realtime-mini', audioOut: '7' } } });
    expect(chain.own('a')!.tokens).toMatchObject({ textIn: 9000, audioOut: 7000, textOut: 2400 });
    expect(chain.own('b')!.tokens).toMatchObject({ textIn: 600, audioOut: 7000 });
    expect(configError(() => new PriceBook({ prices: { a: { extends: 'b' }, b: { extends: 'a' } } })).message).toBe('metering.prices.a: extends forms a cycle');
    expect(configError(() => new PriceBook({ prices: { x: { extends: 'nope', ...ALL } } })).message).toBe('metering.prices.x: extends unknown model "nope"');
    expect(configError(() => new PriceBook({ prices: { x: { extends: 'x', ...ALL } } })).message).toBe('metering.prices.x: extends unknown model "x"');
  });

  it('aliases and fallback errors name the entry', () => {
    expect(configError(() => new PriceBook({ aliases: { a: 'nope' } })).message).toBe('metering.aliases.a: "nope" has no price');
    expect(configError(() => new PriceBook({ fallbackPrice: 'nope' })).message).toBe('metering.fallbackPrice: "nope" has no price');
    expect(new PriceBook({ fallbackPrice: 'gpt-realtime' }).lookup('gpt-realtime-mini')).toMatchObject({ fallback: false, price: { id: 'gpt-realtime-mini' } });
    expect(new PriceBook().lookup('unknown')).toBeNull();
  });

  it('a snapshot suffix is a date at the end of the id, nothing else', () => {
    expect(book().own('gpt-realtime-2025-08-28x')).toBeNull();
    expect(book().own('gpt-realtime-25-08-28')).toBeNull();
    expect(new PriceBook({ aliases: { dep: 'gpt-realtime-mini' } }).own('dep-2025-01-01')).toBeNull();
    expect(book().models.map((m) => m.id)).toEqual(Object.keys(DEFAULT_PRICES));
  });
});

describe('pricing: usage shapes an upstream may send (issue 16)', () => {
  const stt = () => new PriceBook({ prices: { stt: { kind: 'transcription', textIn: '1', audioIn: '3', textOut: '2' } } }).own('stt')!;

  it('a duration-priced model has no token rates: a response usage costs nothing there (never throws)', () => {
    expect(responseCost(price('whisper-1'), readResponseUsage(usage({ text: 10, outText: 5 })))).toBe(0);
  });

  it('duration usage on a token-only model: 10 audio tokens per second, marked estimated', () => {
    expect(transcriptionCost(stt(), { type: 'duration', seconds: 12.5 })).toEqual({ nanos: 125 * 3000, inputTokens: 125, outputTokens: 0, totalTokens: 125, seconds: 12.5, estimated: true });
    expect(transcriptionCost(stt(), { type: 'duration', seconds: 0.01 })).toMatchObject({ inputTokens: 1, nanos: 3000 });
  });

  it('duration usage with a missing, negative or non-numeric length costs nothing', () => {
    for (const seconds of [undefined, -5, 'a lot', Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(transcriptionCost(price('whisper-1'), { type: 'duration', seconds })).toMatchObject({ nanos: 0, seconds: 0 });
    }
  });

  it('token usage: needs type "tokens" or input_tokens; anything else is no usage', () => {
    expect(transcriptionCost(stt(), { type: 'tokens' })).toEqual({ nanos: 0, inputTokens: 0, outputTokens: 0, totalTokens: 0, seconds: null, estimated: false });
    expect(transcriptionCost(stt(), { input_tokens: 5 })).toMatchObject({ nanos: 5 * 3000, inputTokens: 5 });
    expect(transcriptionCost(stt(), { type: 'other', output_tokens: 9 })).toBeNull();
    expect(transcriptionCost(stt(), {})).toBeNull();
    expect(transcriptionCost(stt(), 'tokens')).toBeNull();
  });

  it('token usage: undetailed input at the dearer input rate; totals never below their parts', () => {
    // 10 text + 20 audio detailed of 40 input: 10 undetailed at max(1, 3) µ$.
    const c = transcriptionCost(stt(), { type: 'tokens', input_tokens: 40, output_tokens: 5, total_tokens: 1, input_token_details: { text_tokens: 10, audio_tokens: 20 } })!;
    expect(c).toEqual({ nanos: 10 * 1000 + 20 * 3000 + 10 * 3000 + 5 * 2000, inputTokens: 40, outputTokens: 5, totalTokens: 45, seconds: null, estimated: false });
    expect(transcriptionCost(stt(), { type: 'tokens', input_tokens: 1, input_token_details: { text_tokens: 10, audio_tokens: 20 } })).toMatchObject({ inputTokens: 30, totalTokens: 30 });
    expect(transcriptionCost(stt(), { type: 'tokens', input_tokens: 10, output_tokens: 5, total_tokens: 20 })).toMatchObject({ inputTokens: 10, outputTokens: 5, totalTokens: 20 });
  });

  it('tokens on a duration-priced model: the audio tokens give the length, else all input tokens', () => {
    // 160 audio tokens = 16 s at $0.006/min; the 20 text tokens are not audio.
    const detailed = transcriptionCost(price('whisper-1'), { type: 'tokens', input_tokens: 180, output_tokens: 0, input_token_details: { text_tokens: 20, audio_tokens: 160 } })!;
    expect([detailed.nanos, detailed.seconds, detailed.estimated]).toEqual([1_600_000, 16, true]);
    const undetailed = transcriptionCost(price('whisper-1'), { type: 'tokens', input_tokens: 150 })!;
    expect([undetailed.nanos, undetailed.seconds]).toEqual([1_500_000, 15]);
  });

  it('worst case from a modality split: prompt counts as text; tokens are what fits the window plus output', () => {
    const p = price('gpt-realtime');
    expect(worstCaseOf(p, { text: 100, audio: 10, image: 1 }, 50, 20, false)).toEqual({ nanos: 150 * 4000 + 10 * 32_000 + 5000 + 20 * 64_000, tokens: 181 });
    expect(worstCaseOf(p, { text: -5, audio: 0, image: 0 }, 0, -1, true)).toEqual({ nanos: 0, tokens: 0 });
    expect(worstCaseOf(p, { text: 0, audio: 0, image: 0 }, 0, 10_000, true)).toEqual({ nanos: 4096 * 16_000, tokens: 4096 });
    expect(worstCaseOf(price('whisper-1'), { text: 100, audio: 0, image: 0 }, 0, 10, false)).toEqual({ nanos: 0, tokens: 0 });
  });

  it('an estimate that is not a number reserves the dearest possible response, never NaN (a NaN in a ledger total admits everything after it)', () => {
    const p = price('gpt-realtime');
    const dearest = { nanos: p.contextWindow * 32_000 + p.maxOutputTokens * p.maxOutRate, tokens: p.contextWindow + p.maxOutputTokens };
    expect(worstCaseOf(p, { text: Number.NaN, audio: 0, image: 0 }, 0, 10, false)).toEqual(dearest);
    expect(worstCaseOf(p, { text: 0, audio: 0, image: 0 }, Number.NaN, 10, true)).toEqual(dearest);
    expect(worstCaseOf(p, { text: 0, audio: 0, image: 0 }, 0, Number.NaN, false)).toEqual(dearest);
    expect(worstCaseOf(p, { text: 0, audio: Number.POSITIVE_INFINITY, image: 0 }, 0, 1, false).nanos).toBeLessThanOrEqual(dearest.nanos);
  });

  it('worst case from a context estimate: never negative, capped at the window and the output maximum', () => {
    const p = price('gpt-realtime');
    expect(worstCaseCost(p, -10, -10)).toEqual({ nanos: 0, tokens: 0 });
    expect(worstCaseCost(p, 100, 1)).toEqual({ nanos: 100 * 32_000 + 64_000, tokens: 101 });
  });
});
