import { beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_KEPT_ID_CHARS } from '../protocol/json.js';
import { sniffStringSpan } from '../protocol/sniff.js';
import { AudioClock, AudioMeter, Base64Member } from './audio-meter.js';
import { Frame } from './frame.js';
import type { Report } from './reports.js';

/**
 * The relay's own audio accounting: decoded bytes of each audio frame as it leaves (read in O(1)
 * once a sender's layout is learned), the input-audio clock, per-response output records and the
 * two reports the telemetry filter learns its moments from.
 *
 * The sniffer is wrapped so the tests can see when a frame's layout is (re)learned: the module's
 * cost guarantee is that frames of a known layout are read without it.
 */
vi.mock('../protocol/sniff.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../protocol/sniff.js')>();
  return { ...real, sniffStringSpan: vi.fn(real.sniffStringSpan) };
});

const sniffs = () => vi.mocked(sniffStringSpan).mock.calls.length;

beforeEach(() => {
  vi.mocked(sniffStringSpan).mockClear();
});

/** Base64 of `n` bytes (n % 3 decides the padding: 0 none, 1 two `=`, 2 one `=`). */
const b64 = (n: number) => Buffer.alloc(n, 0xa5).toString('base64');
const buf = (text: string) => Buffer.from(text, 'latin1');
const append = (n: number) => buf(JSON.stringify({ type: 'input_audio_buffer.append', audio: b64(n) }));
/** An output audio delta as the Realtime API serialises it (the audio last). */
const delta = (responseId: string, n: number) =>
  buf(JSON.stringify({ type: 'response.output_audio.delta', event_id: 'event_0001', response_id: responseId, item_id: 'item_1', output_index: 0, content_index: 0, delta: b64(n) }));
/** What a frame counts when its member cannot be located: three quarters of its size. */
const whole = (b: Buffer) => Math.floor((b.length * 3) / 4);

describe('Base64Member: decoded bytes of the audio member', () => {
  it('counts decoded bytes exactly, padding included, learning the layout once', () => {
    const m = new Base64Member('audio');
    const sizes = [300, 0, 1, 2, 3, 4, 5, 959, 960, 961, 4800];
    for (const n of sizes) expect(m.bytes(append(n))).toBe(n);
    expect(sniffs()).toBe(1);
  });

  it('counts what Node decodes for any text, never below zero (a value of "=" read −1 until 2026-12-07)', () => {
    const m = new Base64Member('audio');
    for (const text of ['', '=', '==', 'A=', 'A==', 'AA=', 'AAA', 'AAAAA', 'AAAAA=', 'AAAA====']) {
      const frame = Buffer.from(`{"type":"input_audio_buffer.append","audio":"${text}"}`);
      expect(m.bytes(frame), text).toBe(Buffer.byteLength(text, 'base64'));
    }
  });

  it('reads a Frame as well as its bytes', () => {
    const m = new Base64Member('audio');
    expect(m.bytes(new Frame('input_audio_buffer.append', append(10)))).toBe(10);
    expect(m.bytes(new Frame('input_audio_buffer.append', append(11)))).toBe(11);
    expect(m.bytes(append(12))).toBe(12);
    expect(sniffs()).toBe(1);
  });

  it('the member name is the one given: a delta member is read by its own meter only', () => {
    const m = new Base64Member('delta');
    const d = delta('resp_1', 100);
    expect(m.bytes(d)).toBe(100);
    expect(new Base64Member('audio').bytes(d)).toBe(whole(d));
  });

  it.each<[string, (a: string) => string]>([
    ['an event id first', (a) => `{"type":"input_audio_buffer.append","event_id":"evt_1","audio":"${a}"}`],
    ['spaces around the colon', (a) => `{"type": "input_audio_buffer.append", "audio" : "${a}"}`],
    ['every kind of whitespace around the colon', (a) => `{"type":"input_audio_buffer.append","audio" \t\r\n: \t\r\n"${a}"}`],
    ['every kind of whitespace before the brace', (a) => `{"type":"input_audio_buffer.append","audio":"${a}" \t\r\n}`],
    ['whitespace after the brace', (a) => `{"type":"input_audio_buffer.append","audio":"${a}"}\r\n\t `],
    ['a member after the audio', (a) => `{"type":"input_audio_buffer.append","audio":"${a}","event_id":"evt_22"}`],
    ['the audio the only member', (a) => `{"audio":"${a}"}`],
  ])('a layout (%s) is learned from its first frame, the next ones are read without the sniffer', (_, layout) => {
    const m = new Base64Member('audio');
    expect(m.bytes(buf(layout(b64(300))))).toBe(300);
    expect(sniffs()).toBe(1);
    for (const n of [0, 1, 2, 3, 4801, 299]) expect(m.bytes(buf(layout(b64(n))))).toBe(n);
    expect(sniffs()).toBe(1);
  });

  it('a layout change is relearned once, then read without the sniffer again', () => {
    const m = new Base64Member('audio');
    const layouts = [
      (a: string) => `{"type":"input_audio_buffer.append","audio":"${a}"}`,
      (a: string) => `{"type":"input_audio_buffer.append","event_id":"evt_1","audio":"${a}"}`,
      (a: string) => `{"type": "input_audio_buffer.append", "audio": "${a}"}`,
      (a: string) => `{"type":"input_audio_buffer.append","audio":"${a}","event_id":"evt_22"}`,
      (a: string) => `{"type":"input_audio_buffer.append","audio":"${a}","event_id":"evt_333"}`,
      (a: string) => `{"type":"input_audio_buffer.append","audio":"${a}"}\n`,
    ];
    layouts.forEach((layout, i) => {
      expect(m.bytes(buf(layout(b64(30 + i))))).toBe(30 + i);
      expect(sniffs()).toBe(i + 1);
      expect(m.bytes(buf(layout(b64(31 + i))))).toBe(31 + i);
      expect(sniffs()).toBe(i + 1);
    });
  });

  it('a frame without the member, with a non-string one or unreadable counts three quarters of its size', () => {
    const m = new Base64Member('audio');
    for (const text of ['{"type":"input_audio_buffer.append"}', '{"type":"input_audio_buffer.append","audio":12345678}', 'not json at all', '{"audio":"AA\\/A"}', '{"audio":"AAAA","audio":"BBBB"}']) {
      expect(m.bytes(buf(text))).toBe(whole(buf(text)));
    }
    // Nothing learned from them: the next frame is read right.
    expect(m.bytes(append(90))).toBe(90);
  });

  // After a layout is learned, a frame that only looks like it at a few offsets must be read by
  // the sniffer: each case breaks one of the checks the fast path relies on.
  it.each<[string, string, string]>([
    ['more members after the learned end', '{"audio":"AAAA" }', '{"audio":"AAAAAAAA","b":["x"]}'],
    ['more whitespace before the brace', '{"audio":"AAAA"}', '{"audio":"AAAA"       }'],
    ['no opening quote at the learned start', '{"audio":"AAAA"}', '{"audio":1,"b":"AAAAAAAAAAAA"}'],
    ['no colon before the learned start', '{"audio":"AAAA"}', '{"audio","AAAAAAAA"}'],
    ['no closing quote after the key', '{"audio":"AAAA"}', '{"audiox:"AAAAAAAA"}'],
    ['another last character of the key', '{"audio":"AAAA"}', '{"audiX":"AAAAAAAA"}'],
    ['another first character of the key', '{"audio":"AAAA"}', '{"Xudio":"AAAAAAAA"}'],
    ['no opening quote before the key', '{"audio":"AAAA"}', '{ audio":"AAAAAAAA"}'],
    ['a string ending before the learned start', '{"audio":"AAAA"}', '{"audio":"}'],
    ['a longer key ending in the name', '{"type":"xy","audio":"AAAA"}', '{"type":"x","xaudio":"AAAAAAAA"}'],
    ['the member starting later', '{"type":"x","audio":"AAAA"}', '{"type":"xy","audio":"AAAAAAAA"}'],
    ['the member starting earlier', '{"type":"xy","audio":"AAAA"}', '{"type":"x","audio":"AAAAAAAA"}'],
  ])('a frame with %s is not read with the learned layout', (_, learned, next) => {
    const m = new Base64Member('audio');
    const first = m.bytes(buf(learned));
    expect(first).toBe(3);
    const expected = new Base64Member('audio').bytes(buf(next));
    expect(m.bytes(buf(next))).toBe(expected);
    expect(sniffs()).toBe(3);
  });

  it('the fast-path answers for the cases above are what a fresh reader gives', () => {
    // Pins the fresh answers the previous test compares with (a malformed frame: three quarters of its size).
    expect(new Base64Member('audio').bytes(buf('{"audio":"AAAAAAAA","b":["x"]}'))).toBe(6);
    expect(new Base64Member('audio').bytes(buf('{"audio":"AAAA"       }'))).toBe(3);
    expect(new Base64Member('audio').bytes(buf('{"audio":1,"b":"AAAAAAAAAAAA"}'))).toBe(whole(buf('{"audio":1,"b":"AAAAAAAAAAAA"}')));
    expect(new Base64Member('audio').bytes(buf('{"audio":"}'))).toBe(8);
    expect(new Base64Member('audio').bytes(buf('{"type":"xy","audio":"AAAAAAAA"}'))).toBe(6);
  });
});

describe('AudioClock: where appended audio was forwarded', () => {
  it('knows nothing before the first append', () => {
    const c = new AudioClock(4);
    expect(c.totalMs).toBe(0);
    expect(c.timeOf(0)).toBeNull();
    expect(c.timeOf(1)).toBeNull();
  });

  it('maps a position to the forward time of its chunk, less the audio after it in the chunk', () => {
    const c = new AudioClock(4);
    c.push(100, 1000); // [0,100] at 1000
    c.push(50, 1300); // (100,150] at 1300
    c.push(200, 1400); // (150,350] at 1400
    expect(c.totalMs).toBe(350);
    expect(c.timeOf(0)).toBe(900);
    expect(c.timeOf(40)).toBe(940);
    expect(c.timeOf(100)).toBe(1000);
    expect(c.timeOf(101)).toBe(1251);
    expect(c.timeOf(150)).toBe(1300);
    expect(c.timeOf(151)).toBe(1201);
    expect(c.timeOf(350)).toBe(1400);
    expect(c.timeOf(351)).toBeNull();
    expect(c.timeOf(-1)).toBeNull();
  });

  it('converts the audio after the position with unitsPerMs', () => {
    const c = new AudioClock(4);
    c.push(96, 1000);
    c.push(480, 2000);
    expect(c.timeOf(48, 48)).toBe(999);
    expect(c.timeOf(96, 48)).toBe(1000);
    expect(c.timeOf(96 + 240, 48)).toBe(1995);
    expect(c.timeOf(0, 48)).toBe(998);
  });

  it('keeps the most recent chunks; older positions are extrapolated from the oldest kept one', () => {
    const c = new AudioClock(4);
    const times = [1000, 1500, 1600, 2500, 2550, 4000];
    for (const t of times) c.push(100, t);
    // Kept: (200,300] at 1600, (300,400] at 2500, (400,500] at 2550, (500,600] at 4000.
    expect(c.totalMs).toBe(600);
    expect(c.timeOf(600)).toBe(4000);
    expect(c.timeOf(450)).toBe(2500);
    expect(c.timeOf(350)).toBe(2450);
    expect(c.timeOf(250)).toBe(1550);
    expect(c.timeOf(201)).toBe(1501);
    expect(c.timeOf(50)).toBe(1350);
    expect(c.timeOf(0)).toBe(1300);
    // Once chunks were dropped there is no known start: even a position before 0 is extrapolated.
    expect(c.timeOf(-100)).toBe(1200);
    expect(c.timeOf(601)).toBeNull();
    // Wrapping again keeps the newest four.
    c.push(100, 5000);
    c.push(100, 5100);
    c.push(100, 5150);
    expect(c.timeOf(900)).toBe(5150);
    expect(c.timeOf(850)).toBe(5100);
    expect(c.timeOf(750)).toBe(5050);
    expect(c.timeOf(650)).toBe(4950);
    expect(c.timeOf(550)).toBe(3950);
    expect(c.timeOf(450)).toBe(3850);
  });

  it('a ring of one holds the newest chunk only', () => {
    const c = new AudioClock(1);
    c.push(10, 100);
    expect(c.timeOf(0)).toBe(90);
    c.push(10, 300);
    expect(c.timeOf(15)).toBe(295);
    expect(c.timeOf(5)).toBe(285);
  });

  it('a zero-length chunk maps its position to its own forward time', () => {
    const c = new AudioClock(4);
    c.push(0, 500);
    c.push(100, 800);
    expect(c.timeOf(0)).toBe(700);
    expect(c.timeOf(1)).toBe(701);
  });
});

describe('AudioMeter: input audio', () => {
  it('starts at zero, with no clock and no reports', () => {
    const reports: Report[] = [];
    const m = new AudioMeter((r) => reports.push(r));
    expect([m.inputBytes, m.inputFrames, m.inputWireBytes, m.outputBytes, m.outputFrames, m.outputWireBytes]).toEqual([0, 0, 0, 0, 0, 0]);
    expect(m.inputTimeOf(0, 48)).toBeNull();
    expect(m.response('resp_1')).toBeUndefined();
    expect(reports).toEqual([]);
  });

  it('counts decoded bytes, frames and wire bytes of each append, and nothing of the output', () => {
    const reports: Report[] = [];
    const m = new AudioMeter((r) => reports.push(r));
    const a = append(4800);
    const b = append(2401);
    m.input(a, 1000);
    m.input(b, 1100);
    expect(m.inputBytes).toBe(7201);
    expect(m.inputFrames).toBe(2);
    expect(m.inputWireBytes).toBe(a.length + b.length);
    expect([m.outputBytes, m.outputFrames, m.outputWireBytes]).toEqual([0, 0, 0]);
    expect(reports).toEqual([]);
  });

  it('maps decoded input positions back to forward times (bytes per ms)', () => {
    const m = new AudioMeter(() => undefined);
    m.input(append(4800), 1000); // 100 ms at 48 bytes/ms
    m.input(append(2400), 1300); // 50 ms
    expect(m.inputTimeOf(0, 48)).toBe(900);
    expect(m.inputTimeOf(2400, 48)).toBe(950);
    expect(m.inputTimeOf(4800, 48)).toBe(1000);
    expect(m.inputTimeOf(4800 + 1200, 48)).toBe(1275);
    expect(m.inputTimeOf(7200, 48)).toBe(1300);
    expect(m.inputTimeOf(7201, 48)).toBeNull();
  });

  it('its clock keeps the last 128 appends', () => {
    const m = new AudioMeter(() => undefined);
    // Append k (0-based) forwarded at 1000 + 10k, except the first two (long gaps before the third).
    for (let k = 0; k < 130; k++) m.input(append(48), k < 2 ? k : 1000 + 10 * k);
    // Appends 0 and 1 are gone: their positions are extrapolated from append 2 (ends at 144, at 1020).
    expect(m.inputTimeOf(144, 48)).toBe(1020);
    expect(m.inputTimeOf(48, 48)).toBe(1018);
    expect(m.inputTimeOf(0, 48)).toBe(1017);
    const k2 = new AudioMeter(() => undefined);
    for (let k = 0; k < 129; k++) k2.input(append(48), k < 1 ? 0 : 1000 + 10 * k);
    // 129 appends: only append 0 gone.
    expect(k2.inputTimeOf(48, 48)).toBe(1009);
    expect(k2.inputTimeOf(0, 48)).toBe(1008);
  });

  it('reports input_audio_started once, at the next append after watchInputStart', () => {
    const reports: Report[] = [];
    const m = new AudioMeter((r) => reports.push(r));
    m.input(append(10), 100);
    expect(reports).toEqual([]);
    m.watchInputStart();
    expect(reports).toEqual([]);
    m.input(append(10), 200);
    m.input(append(10), 300);
    expect(reports).toEqual([{ kind: 'input_audio_started', at: 200 }]);
    m.watchInputStart();
    m.watchInputStart();
    m.input(append(10), 400);
    m.input(append(10), 500);
    expect(reports).toEqual([
      { kind: 'input_audio_started', at: 200 },
      { kind: 'input_audio_started', at: 400 },
    ]);
    expect(m.inputFrames).toBe(5);
  });

  it('output audio does not end the watch for input', () => {
    const reports: Report[] = [];
    const m = new AudioMeter((r) => reports.push(r));
    m.watchInputStart();
    m.output(null, delta('resp_1', 10), 50);
    expect(reports).toEqual([]);
    m.input(append(10), 60);
    expect(reports).toEqual([{ kind: 'input_audio_started', at: 60 }]);
  });
});

describe('AudioMeter: output audio', () => {
  it('counts decoded bytes, frames and wire bytes of each delta, in the totals and in its response', () => {
    const reports: Report[] = [];
    const m = new AudioMeter((r) => reports.push(r));
    const a = delta('resp_1', 4800);
    const b = delta('resp_1', 961);
    m.output('resp_1', a, 2000);
    m.output('resp_1', b, 2100);
    expect(m.outputBytes).toBe(5761);
    expect(m.outputFrames).toBe(2);
    expect(m.outputWireBytes).toBe(a.length + b.length);
    expect([m.inputBytes, m.inputFrames, m.inputWireBytes]).toEqual([0, 0, 0]);
    expect(m.inputTimeOf(0, 48)).toBeNull();
    expect(m.response('resp_1')).toEqual({ bytes: 5761, frames: 2, firstAt: 2000 });
    expect(reports).toEqual([{ kind: 'output_audio_started', responseId: 'resp_1', at: 2000 }]);
  });

  it('keeps interleaved responses apart; each reports its first audio once', () => {
    const reports: Report[] = [];
    const m = new AudioMeter((r) => reports.push(r));
    m.output('resp_a', delta('resp_a', 100), 10);
    m.output('resp_b', delta('resp_b', 200), 20);
    m.output('resp_a', delta('resp_a', 300), 30);
    m.output('resp_a', delta('resp_a', 400), 40);
    m.output('resp_b', delta('resp_b', 500), 50);
    expect(m.response('resp_a')).toEqual({ bytes: 800, frames: 3, firstAt: 10 });
    expect(m.response('resp_b')).toEqual({ bytes: 700, frames: 2, firstAt: 20 });
    expect(m.response('resp_c')).toBeUndefined();
    expect(m.outputBytes).toBe(1500);
    expect(m.outputFrames).toBe(5);
    expect(reports).toEqual([
      { kind: 'output_audio_started', responseId: 'resp_a', at: 10 },
      { kind: 'output_audio_started', responseId: 'resp_b', at: 20 },
    ]);
  });

  it('audio naming a response id longer than any kept counts in the totals only: the id is never kept (found 2026-12-07)', () => {
    const reports: Report[] = [];
    const m = new AudioMeter((r) => reports.push(r));
    const long = 'r'.repeat(MAX_KEPT_ID_CHARS + 1);
    const fits = 'f'.repeat(MAX_KEPT_ID_CHARS);
    m.output(long, delta(long, 100), 10);
    m.output(fits, delta(fits, 100), 20);
    expect(m.response(long)).toBeUndefined();
    expect(m.response(fits)).toEqual({ bytes: 100, frames: 1, firstAt: 20 });
    expect(m.outputBytes).toBe(200);
    expect(m.outputFrames).toBe(2);
    expect(reports).toEqual([{ kind: 'output_audio_started', responseId: fits, at: 20 }]);
  });

  it('audio of an unknown response counts in the totals only', () => {
    const reports: Report[] = [];
    const m = new AudioMeter((r) => reports.push(r));
    m.output(null, delta('resp_x', 100), 10);
    m.output('resp_1', delta('resp_1', 30), 20);
    m.output(null, delta('resp_x', 100), 30);
    m.output('resp_1', delta('resp_1', 30), 40);
    expect(m.outputBytes).toBe(260);
    expect(m.outputFrames).toBe(4);
    expect(m.response('resp_1')).toEqual({ bytes: 60, frames: 2, firstAt: 20 });
    expect(reports).toEqual([{ kind: 'output_audio_started', responseId: 'resp_1', at: 20 }]);
  });

  it('keeps the records of the 32 most recent responses', () => {
    const reports: Report[] = [];
    const m = new AudioMeter((r) => reports.push(r));
    for (let i = 1; i <= 32; i++) m.output(`resp_${i}`, delta(`resp_${i}`, i), i);
    for (let i = 1; i <= 32; i++) expect(m.response(`resp_${i}`)).toEqual({ bytes: i, frames: 1, firstAt: i });
    m.output('resp_2', delta('resp_2', 5), 100);
    m.output('resp_33', delta('resp_33', 33), 133);
    // The oldest inserted (resp_1) is dropped, whatever received audio since.
    expect(m.response('resp_1')).toBeUndefined();
    expect(m.response('resp_2')).toEqual({ bytes: 7, frames: 2, firstAt: 2 });
    expect(m.response('resp_33')).toEqual({ bytes: 33, frames: 1, firstAt: 133 });
    m.output('resp_34', delta('resp_34', 34), 134);
    expect(m.response('resp_2')).toBeUndefined();
    expect(m.response('resp_3')).toEqual({ bytes: 3, frames: 1, firstAt: 3 });
    expect(reports).toHaveLength(34);
    expect(m.outputFrames).toBe(35);
  });

  it('the input and output members are read apart: each side learns its own layout', () => {
    const m = new AudioMeter(() => undefined);
    for (let i = 0; i < 3; i++) {
      m.input(append(100), i);
      m.output('resp_1', delta('resp_1', 200), i);
    }
    expect(m.inputBytes).toBe(300);
    expect(m.outputBytes).toBe(600);
    expect(sniffs()).toBe(2);
  });
});

const trailingB64 = Buffer.alloc(300).toString('base64');
const plainAppend = Buffer.from(`{"type":"input_audio_buffer.append","audio":"${trailingB64}"}`);
const appendWithId = Buffer.from(`{"type":"input_audio_buffer.append","audio":"${trailingB64}","event_id":"evt_1"}`);

describe('a member after the audio never counts as audio (found 2026-12-05)', () => {
  it('Base64Member: 300 decoded bytes', () => {
    const m = new Base64Member('audio');
    expect(m.bytes(plainAppend)).toBe(300);
    expect(m.bytes(appendWithId)).toBe(300);
  });

  it('AudioMeter.inputBytes: two appends of 300 bytes are 600', () => {
    const meter = new AudioMeter(() => undefined);
    meter.input(plainAppend, 1000);
    meter.input(appendWithId, 1100);
    expect(meter.inputBytes).toBe(600);
  });

  it('a client inflates the count at will with a long trailing string member (it counted 8105)', () => {
    const meter = new AudioMeter(() => undefined);
    meter.input(plainAppend, 1000);
    meter.input(Buffer.from(`{"type":"input_audio_buffer.append","audio":"${trailingB64}","x":"${'y'.repeat(10_000)}"}`), 1100);
    expect(meter.inputBytes).toBe(600);
  });
});

describe('a learned layout is used only where the audio string opens with its quote', () => {
  it('a frame whose audio value does not open with a quote is not read with the layout (it is not a string there)', () => {
    const m = new Base64Member('audio');
    expect(m.bytes(Buffer.from('{"audio":"AAAA"}'))).toBe(3);
    // Same length and key, but a space where the opening quote was: not JSON text the layout knows.
    const torn = Buffer.from('{"audio": AAAA"}');
    expect(m.bytes(torn)).toBe(Math.floor((torn.length * 3) / 4));
  });
});

