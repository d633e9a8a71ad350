import { describe, expect, it } from 'vitest';
import {
  alawToLinear,
  concatPcm,
  decodeAudio,
  encodeAudio,
  linearToAlaw,
  linearToUlaw,
  rms,
  silence,
  speechDurationMs,
  synthesizeSpeech,
  ulawToLinear,
} from './audio.js';
import { chunkBase64, MODEL_MAX_OUTPUT_TOKENS, planSpeech, planSpeechSliced, SPEECH_CACHE_BYTES, speechCacheBytes, splitWords, withinModelMax } from './output.js';
import { defaultServerVad } from './session.js';
import { Vad, rmsThreshold } from './vad.js';

describe('G.711', () => {
  it('encodes the reference code words for zero and full scale', () => {
    expect(linearToUlaw(0)).toBe(0xff);
    expect(linearToUlaw(32767)).toBe(0x80);
    expect(linearToUlaw(-32768)).toBe(0x00);
    expect(linearToAlaw(0)).toBe(0xd5);
    expect(linearToAlaw(32767)).toBe(0xaa);
    expect(linearToAlaw(-32768)).toBe(0x2a);
  });

  it('round-trips every 16-bit sample within the codec step size', () => {
    for (let s = -32768; s <= 32767; s += 7) {
      const mag = Math.abs(s);
      // Both laws keep ~4 significant bits per segment: error under ~1/16 of the value (+ small floor).
      const tolerance = Math.max(16, mag / 16);
      expect(Math.abs(ulawToLinear(linearToUlaw(s)) - Math.max(-32124, Math.min(32124, s)))).toBeLessThanOrEqual(tolerance + 132);
      expect(Math.abs(alawToLinear(linearToAlaw(s)) - s)).toBeLessThanOrEqual(tolerance);
    }
  });

  it('decodes back every code word to a value that re-encodes to the same code word', () => {
    for (let b = 0; b < 256; b++) {
      expect(linearToUlaw(ulawToLinear(b)) === b || (b === 0x7f && linearToUlaw(ulawToLinear(b)) === 0xff)).toBe(true);
      expect(linearToAlaw(alawToLinear(b))).toBe(b);
    }
  });

  it('encodes 24 kHz speech to 8 kHz bytes that decode to similar energy', () => {
    const pcm = synthesizeSpeech('telephone speech sample');
    for (const kind of ['pcmu', 'pcma'] as const) {
      const bytes = encodeAudio(pcm, kind);
      expect(bytes.length).toBe(Math.floor(pcm.length / 3));
      const back = decodeAudio(bytes, kind);
      const a = rms(pcm, 0, pcm.length);
      const b = rms(back, 0, back.length);
      expect(b).toBeGreaterThan(a * 0.8);
      expect(b).toBeLessThan(a * 1.2);
    }
  });
});

describe('speech synthesis', () => {
  it('lasts 65 ms per character (300 ms minimum) and is speech-like', () => {
    expect(speechDurationMs('hi')).toBe(300);
    const text = 'A sentence of some length, spoken aloud.';
    const pcm = synthesizeSpeech(text);
    expect(pcm.length).toBe(Math.round(text.length * 65 * 24));
    const level = rms(pcm, 0, pcm.length);
    expect(level).toBeGreaterThan(0.05);
    // A syllable envelope: 20 ms frame energies vary a lot across the utterance.
    const frames: number[] = [];
    for (let i = 0; i + 480 <= pcm.length; i += 480) frames.push(rms(pcm, i, i + 480));
    expect(Math.max(...frames) / Math.min(...frames)).toBeGreaterThan(5);
    expect(synthesizeSpeech(text)).toEqual(pcm);
  });

  it('plans 50–200 ms chunks that are clean slices of one base64 string', () => {
    const plan = planSpeech('Chunk me into several differently sized pieces please.', 'pcm', 'marin', 1);
    let start = 0;
    const sizes: number[] = [];
    for (const end of plan.chunkEnds) {
      const b64 = chunkBase64(plan, start, end);
      expect(Buffer.from(b64, 'base64').equals(plan.bytes.subarray(start, end))).toBe(true);
      sizes.push(end - start);
      start = end;
    }
    expect(start).toBe(plan.bytes.length);
    for (const s of sizes.slice(0, -1)) {
      expect(s).toBeGreaterThanOrEqual(2400);
      expect(s).toBeLessThanOrEqual(9600);
    }
    expect(new Set(sizes).size).toBeGreaterThan(3);
  });

  it('cuts an answer at the model maximum (4,096 output tokens) before any of it is synthesized', () => {
    const tokens = (chars: number, speed: number | null) => Math.ceil(chars / 4) + (speed === null ? 0 : Math.ceil(speechDurationMs('x'.repeat(chars), { speed }) / 50));
    for (const speed of [0.25, 1, 1.5, null]) {
      const long = 'word '.repeat(20_000);
      const cut = withinModelMax(long, speed);
      expect(cut.cut).toBe(true);
      expect(long.startsWith(cut.text)).toBe(true);
      // The longest start that fits: one character more would not.
      expect(tokens(cut.text.length, speed)).toBeLessThanOrEqual(MODEL_MAX_OUTPUT_TOKENS);
      expect(tokens(cut.text.length + 1, speed)).toBeGreaterThan(MODEL_MAX_OUTPUT_TOKENS);
      // An answer that fits is left whole, to its last character.
      const fits = long.slice(0, cut.text.length);
      expect(withinModelMax(fits, speed)).toEqual({ text: fits, cut: false });
    }
  });

  it('keeps speech plans within a byte budget, however long their texts', () => {
    // Four plans of the model maximum's audio (~205 s: ~23 MB of PCM and base64 each) and small ones after.
    const longest = withinModelMax('many words spoken '.repeat(1000), 1).text;
    for (let i = 0; i < 4; i++) planSpeech(`${i} ${longest}`.slice(0, longest.length), 'pcm', 'marin', 1);
    expect(speechCacheBytes()).toBeGreaterThan(0);
    expect(speechCacheBytes()).toBeLessThanOrEqual(SPEECH_CACHE_BYTES);
    for (let i = 0; i < 60; i++) planSpeech(`short answer ${i}`, 'pcm', 'marin', 1);
    expect(speechCacheBytes()).toBeLessThanOrEqual(SPEECH_CACHE_BYTES);
    // A plan still served from the cache is the same plan.
    expect(planSpeech('short answer 59', 'pcm', 'marin', 1)).toBe(planSpeech('short answer 59', 'pcm', 'marin', 1));
  });

  it('synthesizes a long answer in slices, the event loop running between them; the speech is the same', async () => {
    // 312 characters: ~20 s of audio, four slices of 5 s.
    const text = 'a long answer in slices '.repeat(13);
    let turns = 0;
    let planned = false;
    const turn = () => {
      if (planned) return;
      turns++;
      setImmediate(turn);
    };
    setImmediate(turn);
    const plan = await planSpeechSliced(text, 'pcm', 'cedar', 1);
    planned = true;
    expect(turns).toBeGreaterThanOrEqual(3);
    expect(plan.bytes.equals(Buffer.from(encodeAudio(synthesizeSpeech(text, { voice: 'cedar', speed: 1 }), 'pcm')))).toBe(true);
  });

  it('splits text into word deltas that rebuild it exactly', () => {
    for (const t of ['Hello from the simulator.', '  leading space', 'trailing  ', '', 'one']) expect(splitWords(t).join('')).toBe(t);
    expect(splitWords('Hello there you')).toEqual(['Hello', ' there', ' you']);
  });
});

describe('VAD', () => {
  const run = (pcm: Int16Array, rate = 24000, chunk = 2400) => {
    const vad = new Vad(defaultServerVad(), rate, 0);
    const events = [];
    for (let i = 0; i < pcm.length; i += chunk) events.push(...vad.push(pcm.subarray(i, i + chunk)));
    return events;
  };

  it('finds speech between silences with 20 ms precision', () => {
    const text = 'a spoken phrase in the middle';
    const events = run(concatPcm([silence(1000), synthesizeSpeech(text), silence(1000)]));
    expect(events).toHaveLength(2);
    expect(events[0]!.type).toBe('started');
    expect(events[0]!.ms).toBeGreaterThanOrEqual(1000);
    expect(events[0]!.ms).toBeLessThanOrEqual(1040);
    const stopped = events[1]!;
    if (stopped.type !== 'stopped') throw new Error(`expected stopped, got ${stopped.type}`);
    expect(stopped.speechEndMs).toBeGreaterThan(1000 + text.length * 65 - 60);
    expect(stopped.speechEndMs).toBeLessThanOrEqual(1000 + text.length * 65 + 20);
    // The reported end includes the silence window (silence_duration_ms 200), as OpenAI's audio_end_ms does.
    expect(stopped.ms).toBe(stopped.speechEndMs + 200);
  });

  it('ignores noise and a single click, and keeps word gaps inside one turn', () => {
    const click = new Int16Array(480).fill(20000);
    expect(run(concatPcm([silence(500), click, silence(500)]))).toEqual([]);
    const twoWords = concatPcm([synthesizeSpeech('first words'), silence(120), synthesizeSpeech('second words'), silence(400)]);
    expect(run(twoWords).map((e) => e.type)).toEqual(['started', 'stopped']);
  });

  it('works on 8 kHz G.711 input, with odd chunk sizes', () => {
    const pcm = concatPcm([silence(300), synthesizeSpeech('telephone caller speaking'), silence(600)]);
    const narrow = decodeAudio(encodeAudio(pcm, 'pcmu'), 'pcmu');
    expect(run(narrow, 8000, 77).map((e) => e.type)).toEqual(['started', 'stopped']);
  });

  it('maps threshold 0..1 onto -60..-5 dBFS', () => {
    expect(20 * Math.log10(rmsThreshold(0))).toBeCloseTo(-60);
    expect(20 * Math.log10(rmsThreshold(1))).toBeCloseTo(-5);
  });
});
