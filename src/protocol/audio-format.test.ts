import { describe, expect, it } from 'vitest';
import { audioFormatOf, budgetedInputBytesPerMs, G711_BYTES_PER_MS, PCM16_BYTES_PER_MS, PartedAudioBuffer, statedAudioFormat } from './audio-format.js';

/**
 * The one reading of a session's audio format: telemetry times audio by it, metering and
 * truncation count audio tokens by it. A format read wrong sizes audio 6× off (PCM16 carries 48
 * bytes a millisecond, G.711 8).
 */

describe('audioFormatOf', () => {
  it("GA's formats (objects)", () => {
    expect(audioFormatOf({ type: 'audio/pcm', rate: 24_000 })).toEqual({ name: 'pcm16', bytesPerMs: 48 });
    expect(audioFormatOf({ type: 'audio/pcmu' })).toEqual({ name: 'g711_ulaw', bytesPerMs: 8 });
    expect(audioFormatOf({ type: 'audio/pcma' })).toEqual({ name: 'g711_alaw', bytesPerMs: 8 });
  });

  it("beta's formats (strings)", () => {
    expect(audioFormatOf('pcm16')).toEqual({ name: 'pcm16', bytesPerMs: 48 });
    expect(audioFormatOf('g711_ulaw')).toEqual({ name: 'g711_ulaw', bytesPerMs: 8 });
    expect(audioFormatOf('g711_alaw')).toEqual({ name: 'g711_alaw', bytesPerMs: 8 });
  });

  it('a PCM rate within 8–48 kHz is believed (two bytes a sample)', () => {
    expect(audioFormatOf({ type: 'audio/pcm', rate: 8_000 })?.bytesPerMs).toBe(16);
    expect(audioFormatOf({ type: 'audio/pcm', rate: 16_000 })?.bytesPerMs).toBe(32);
    expect(audioFormatOf({ type: 'audio/pcm', rate: 48_000 })?.bytesPerMs).toBe(96);
  });

  it('a PCM rate missing or outside 8–48 kHz is read as 24 kHz (no division by 0, no negative time)', () => {
    for (const rate of [undefined, null, 0, -24_000, 7_999, 48_001, 1e12, '24000']) {
      expect(audioFormatOf({ type: 'audio/pcm', rate })).toEqual({ name: 'pcm16', bytesPerMs: PCM16_BYTES_PER_MS });
    }
  });

  it('anything else is unknown: null', () => {
    // One protocol's name in the other's shape is neither's format.
    for (const format of ['audio/pcm', 'audio/pcmu', 'pcm', 'opus', 'PCM16', { type: 'pcm16' }, { type: 'g711_ulaw' }, { type: 'audio/opus' }, {}, { type: 5 }, [], ['pcm16'], 5, true, null, undefined]) {
      expect(audioFormatOf(format)).toBeNull();
    }
  });

  it("inherited names are no formats ('constructor', '__proto__')", () => {
    expect(audioFormatOf('constructor')).toBeNull();
    expect(audioFormatOf({ type: 'constructor' })).toBeNull();
    expect(audioFormatOf('__proto__')).toBeNull();
  });
});

describe('statedAudioFormat', () => {
  it("GA's audio.<direction>.format", () => {
    const session = { audio: { input: { format: { type: 'audio/pcmu' } }, output: { format: { type: 'audio/pcma' } } } };
    expect(statedAudioFormat(session, 'input')).toEqual({ type: 'audio/pcmu' });
    expect(statedAudioFormat(session, 'output')).toEqual({ type: 'audio/pcma' });
  });

  it("beta's <direction>_audio_format", () => {
    const session = { input_audio_format: 'g711_ulaw', output_audio_format: 'pcm16' };
    expect(statedAudioFormat(session, 'input')).toBe('g711_ulaw');
    expect(statedAudioFormat(session, 'output')).toBe('pcm16');
  });

  it("GA's wins where both are stated; beta's where GA's audio states none", () => {
    expect(statedAudioFormat({ audio: { input: { format: { type: 'audio/pcm' } } }, input_audio_format: 'g711_ulaw' }, 'input')).toEqual({ type: 'audio/pcm' });
    expect(statedAudioFormat({ audio: { input: { turn_detection: null } }, input_audio_format: 'g711_ulaw' }, 'input')).toBe('g711_ulaw');
    expect(statedAudioFormat({ audio: { input: { format: null } }, input_audio_format: 'g711_alaw' }, 'input')).toBe('g711_alaw');
  });

  it('none stated: undefined (null is none)', () => {
    expect(statedAudioFormat({}, 'input')).toBeUndefined();
    expect(statedAudioFormat({ audio: { output: { format: { type: 'audio/pcmu' } } } }, 'input')).toBeUndefined();
    expect(statedAudioFormat({ input_audio_format: null }, 'input')).toBeUndefined();
    expect(statedAudioFormat({ audio: 'x' }, 'input')).toBeUndefined();
  });

  it('an unknown format stated is returned as stated (the reader decides)', () => {
    expect(statedAudioFormat({ audio: { input: { format: { type: 'audio/opus' } } } }, 'input')).toEqual({ type: 'audio/opus' });
    expect(statedAudioFormat({ input_audio_format: 5 }, 'input')).toBe(5);
  });
});

describe('budgetedInputBytesPerMs', () => {
  it('each known format, GA and beta', () => {
    expect(budgetedInputBytesPerMs({ audio: { input: { format: { type: 'audio/pcm', rate: 24_000 } } } })).toBe(48);
    expect(budgetedInputBytesPerMs({ audio: { input: { format: { type: 'audio/pcmu' } } } })).toBe(8);
    expect(budgetedInputBytesPerMs({ audio: { input: { format: { type: 'audio/pcma' } } } })).toBe(8);
    expect(budgetedInputBytesPerMs({ input_audio_format: 'pcm16' })).toBe(48);
    expect(budgetedInputBytesPerMs({ input_audio_format: 'g711_ulaw' })).toBe(8);
    expect(budgetedInputBytesPerMs({ input_audio_format: 'g711_alaw' })).toBe(8);
  });

  it('a format stated but unknown counts as the densest, G.711 (never short)', () => {
    expect(budgetedInputBytesPerMs({ audio: { input: { format: { type: 'audio/opus' } } } })).toBe(G711_BYTES_PER_MS);
    expect(budgetedInputBytesPerMs({ input_audio_format: 'opus' })).toBe(G711_BYTES_PER_MS);
    expect(budgetedInputBytesPerMs({ input_audio_format: 5 })).toBe(G711_BYTES_PER_MS);
  });

  it('a PCM rate above 24 kHz counts as 24 kHz (an echoed rate is not what the API plays); below, as stated', () => {
    expect(budgetedInputBytesPerMs({ audio: { input: { format: { type: 'audio/pcm', rate: 48_000 } } } })).toBe(PCM16_BYTES_PER_MS);
    expect(budgetedInputBytesPerMs({ audio: { input: { format: { type: 'audio/pcm', rate: 16_000 } } } })).toBe(32);
  });

  it("both protocols' members stated: the denser (a preview upstream reads beta's, GA's leaves it aside)", () => {
    expect(budgetedInputBytesPerMs({ audio: { input: { format: { type: 'audio/pcm', rate: 24_000 } } }, input_audio_format: 'g711_ulaw' })).toBe(8);
    expect(budgetedInputBytesPerMs({ audio: { input: { format: { type: 'audio/pcmu' } } }, input_audio_format: 'pcm16' })).toBe(8);
    expect(budgetedInputBytesPerMs({ audio: { input: { format: { type: 'audio/pcm', rate: 16_000 } } }, input_audio_format: 'pcm16' })).toBe(32);
  });

  it('no input format stated: null (the output format is not the input)', () => {
    expect(budgetedInputBytesPerMs({})).toBeNull();
    expect(budgetedInputBytesPerMs({ audio: { output: { format: { type: 'audio/pcmu' } } }, output_audio_format: 'g711_ulaw' })).toBeNull();
    expect(budgetedInputBytesPerMs({ input_audio_format: null })).toBeNull();
  });
});

describe('PartedAudioBuffer: each part of the buffer at the format it was appended in', () => {
  const plain = (units: number, bytesPerMs: number) => units / bytesPerMs;
  it('a switch closes the part before it at the old rate; a restart empties the buffer', () => {
    const b = new PartedAudioBuffer(8, plain);
    expect(b.ms(800)).toBe(100);
    b.switchAt(48, 800);
    expect(b.bytesPerMs).toBe(48);
    expect(b.ms(800 + 4_800)).toBe(200);
    b.switchAt(48, 9_999); // the same rate: nothing closes
    expect(b.ms(800 + 4_800)).toBe(200);
    b.restart(5_600);
    expect(b.ms(5_600)).toBe(0);
    expect(b.ms(5_600 + 480)).toBe(10);
  });

  it('a retune reads the part in force in the new rate (nothing known before it)', () => {
    const b = new PartedAudioBuffer(8, plain);
    b.retune(48);
    expect(b.ms(4_800)).toBe(100);
  });
});
