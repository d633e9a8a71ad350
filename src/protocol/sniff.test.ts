import { describe, expect, it } from 'vitest';
import { DUPLICATE_KEY, sniffString, sniffStringSpan, sniffType } from './sniff.js';

const b = (s: string) => Buffer.from(s, 'utf8');

describe('sniffString', () => {
  it('reads the type when it is the first member', () => {
    expect(sniffString(b('{"type":"input_audio_buffer.append","audio":"AAAA"}'), 'type')).toBe(
      'input_audio_buffer.append',
    );
  });

  it('skips nested objects that contain their own type member', () => {
    const frame = '{"session":{"type":"realtime","audio":{"input":{"type":"x"}}},"type":"session.update"}';
    expect(sniffString(b(frame), 'type')).toBe('session.update');
  });

  it('skips a large string member before the type', () => {
    const audio = 'A'.repeat(100_000);
    expect(sniffString(b(`{"audio":"${audio}", "event_id" : "e1" ,"type" : "input_audio_buffer.append"}`), 'type')).toBe(
      'input_audio_buffer.append',
    );
  });

  it('handles escaped quotes inside skipped strings', () => {
    expect(sniffString(b('{"text":"say \\"type\\":\\"x\\" \\\\","type":"t"}'), 'type')).toBe('t');
  });

  it('returns null when the member is absent or not a string', () => {
    expect(sniffString(b('{"a":1,"b":[1,{"type":"x"}]}'), 'type')).toBeNull();
    expect(sniffString(b('{"type":5}'), 'type')).toBeNull();
    expect(sniffString(b('{}'), 'type')).toBeNull();
  });

  it('returns undefined for frames it cannot read cheaply', () => {
    for (const s of ['', 'null', '[1]', '{"type":"a', '{"type" "a"}', '{"type":"a\\nb"}', '{"a":1 "type":"x"}']) {
      expect(sniffString(b(s), 'type'), s).toBeUndefined();
    }
  });

  it('agrees with JSON.parse on every frame it claims to read', () => {
    const frames = [
      '{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1","delta":"AAA="}',
      ' \n{ "event_id" : null , "type":"a.b" }',
      '{"x":{"y":[{"z":"}"}]},"type":"q"}',
      '{"x":"\\\\","type":"r"}',
      '{"x":true,"y":false,"z":null,"n":-1.5e3,"type":"s"}',
    ];
    for (const f of frames) {
      const parsed = JSON.parse(f) as { type: string };
      expect(sniffString(b(f), 'type')).toBe(parsed.type);
    }
  });

  it('returns the byte span without allocating the value', () => {
    const buf = b('{"type":"x","delta":"QUJD"}');
    const span = sniffStringSpan(buf, 'delta');
    expect(span).toEqual([21, 25]);
  });

  it('reports a duplicated key instead of picking one', () => {
    expect(sniffType(b('{"type":"input_audio_buffer.append","type":"response.create"}'))).toBe(DUPLICATE_KEY);
    expect(sniffType(b(`{"type":"a","audio":"${'A'.repeat(5000)}","type":"b"}`))).toBe(DUPLICATE_KEY);
    expect(sniffType(b('{"type":1,"type":"b"}'))).toBe(DUPLICATE_KEY);
    // For other callers a duplicate is simply unreadable: they fall back to the parser.
    expect(sniffString(b('{"type":"a","type":"b"}'), 'type')).toBeUndefined();
    // An escape can spell the key a second time.
    expect(sniffType(b('{"type":"input_audio_buffer.append","ty\\u0070e":"response.create"}'))).toBe(DUPLICATE_KEY);
    expect(sniffType(b('{"ty\\u0070e":"response.create"}'))).toBe('response.create');
    expect(sniffType(b('{"type":"a","note":"x\\ny"}'))).toBe('a');
    // A nested "type" is not a duplicate.
    expect(sniffType(b('{"type":"session.update","session":{"type":"realtime"}}'))).toBe('session.update');
  });
});
