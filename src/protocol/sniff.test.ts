import { describe, expect, it } from 'vitest';
import { DUPLICATE_KEY, sniffString, sniffStringSpan, sniffStringSpans, sniffType, spanText, type Span } from './sniff.js';

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

  // Regression (issue 16): a planted bug comparing keys without their last letter survived.
  it('compares every letter of the key, and its length', () => {
    expect(sniffType(b('{"typo":"x","type":"y"}'))).toBe('y');
    expect(sniffType(b('{"typx":"a"}'))).toBeNull();
    expect(sniffType(b('{"typ":"a"}'))).toBeNull();
    expect(sniffType(b('{"types":"a"}'))).toBeNull();
    expect(sniffType(b('{"xype":"a"}'))).toBeNull();
    expect(sniffString(b('{"event_ie":"a","event_id":"b"}'), 'event_id')).toBe('b');
  });

  it('claims nothing for non-objects, unquoted keys or keys with invalid escapes', () => {
    for (const s of ['["type":"a"]', 'x"type":"a"}', '{type:"a"}', '{1:"x","type":"a"}', '{"ty\\qpe":"x","type":"a"}', '{"a":{"b":"x', '{"a":[1,', '{"a":1', '{"typ']) {
      expect(sniffType(b(s)), s).toBeUndefined();
    }
  });

  // A key that lost its opening quote still ends in `type":`: the proxy must not read a type the
  // upstream's parser refuses (it would govern one event and forward another).
  it('claims nothing for a key missing its opening quote, however the rest is spelled', () => {
    for (const s of ['{xtype":"b"}', '{"a":1,xtype":"b"}', '{ xtype" : "b"}']) {
      expect(() => JSON.parse(s), s).toThrow();
      expect(sniffType(b(s)), s).toBeUndefined();
      expect(sniffString(b(s), 'type'), s).toBeUndefined();
    }
  });

  it('trusts the rest of an audio frame once no second key can follow (no walk over the payload)', () => {
    // Neither the quoted key nor a backslash appears after the value: the frame is not walked further,
    // so trailing bytes the parser would refuse do not matter here (the relay's parse catches them).
    expect(sniffType(b('{"type":"input_audio_buffer.append","audio":"AAAA" oops'))).toBe('input_audio_buffer.append');
    expect(sniffString(b('{"type":"a","audio":"AAAA",}'), 'type')).toBe('a');
    // With the key spelled again later, the walk goes on and meets the garbage.
    expect(sniffType(b('{"type":"a","x":"\\"type\\"" oops'))).toBeUndefined();
  });

  // The audio and transcript types are returned as constants (hotType): only for the exact bytes.
  it('reads the hot event types exactly, and not their prefixes, longer types or look-alikes', () => {
    const hot = ['input_audio_buffer.append', 'response.output_audio.delta', 'response.output_audio_transcript.delta', 'response.output_text.delta', 'response.audio.delta', 'response.audio_transcript.delta'];
    const others = [
      'input_audio', // a prefix ending in the same letter as its hot type's prefix
      'response.audio',
      'response.output_audio.delt',
      'xnput_audio_buffer.append', // same length and last byte, other bytes
      'response.audio.deltb',
      `${'x'.repeat(60)}.delta`, // longer than every hot type, same last byte
      'response.output_audio_transcript.delta.delta',
    ];
    for (const t of [...hot, ...others]) {
      expect(sniffType(b(`{"type":"${t}","event_id":"e"}`)), t).toBe(t);
      expect(sniffType(b(`{"event_id":"e","type":"${t}"}`)), t).toBe(t);
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

/**
 * Several members in one walk (a translation append's audio and event_id): hostile shapes. Whatever
 * the sniffer claims is what JSON.parse reads; what it cannot read alone (a repeated member, an
 * escaped value, an escaped key that is not valid) it leaves to the parser (`undefined`).
 */
describe('sniffStringSpans', () => {
  const KEYS = ['audio', 'event_id'];
  const texts = (s: string): readonly (string | null)[] | undefined => {
    const buf = b(s);
    return sniffStringSpans(buf, KEYS)?.map((span: Span | null) => (span === null ? null : spanText(buf, span)));
  };
  /** What the parser reads for each key: its string value, else null. */
  const parsed = (s: string): (string | null)[] => {
    const ev = JSON.parse(s) as Record<string, unknown>;
    return KEYS.map((k) => (typeof ev[k] === 'string' ? (ev[k] as string) : null));
  };
  const long = 'QUJD'.repeat(5000);

  it('reads both members in either order, skipping the audio once', () => {
    for (const s of [
      `{"type":"session.input_audio_buffer.append","event_id":"evt_1","audio":"${long}"}`,
      `{"type":"session.input_audio_buffer.append","audio":"${long}","event_id":"evt_1"}`,
      `{"audio":"${long}" , "type":"t","event_id" :"evt_1"}`,
      `{"event_id":"evt_1","audio":"${long}","x":{"audio":"AAAA","event_id":"no"}}`,
    ]) {
      expect(texts(s), s.slice(0, 60)).toEqual([long, 'evt_1']);
      expect(texts(s)).toEqual(parsed(s));
    }
  });

  it('a member absent or not a string is null; the other is still read', () => {
    expect(texts('{"type":"t","audio":"AAAA"}')).toEqual(['AAAA', null]);
    expect(texts('{"type":"t","event_id":"e"}')).toEqual([null, 'e']);
    expect(texts('{"audio":5,"event_id":null}')).toEqual([null, null]);
    expect(texts('{"audio":{"audio":"AAAA"},"event_id":["e"]}')).toEqual([null, null]);
    expect(texts('{}')).toEqual([null, null]);
  });

  it('a member nested in another is not the top-level one', () => {
    for (const s of ['{"x":{"audio":"BBBB"},"audio":"AAAA","event_id":"e"}', '{"x":[{"audio":"BBBB","event_id":"f"}],"event_id":"e"}', '{"x":"\\"audio\\":\\"BBBB\\"","audio":"AAAA"}']) {
      expect(texts(s), s).toEqual(parsed(s));
    }
    expect(texts('{"x":{"audio":"BBBB"}}')).toEqual([null, null]);
  });

  it('a key spelled with escapes is that key: read, and a second spelling of it is a duplicate', () => {
    expect(texts('{"\\u0061udio":"AAAA","event_id":"e"}')).toEqual(['AAAA', 'e']);
    expect(texts('{"audio":"AAAA","event_\\u0069d":"e"}')).toEqual(['AAAA', 'e']);
    expect(texts('{"audio":"AAAA","\\u0061udio":"BBBB","event_id":"e"}')).toBeUndefined();
    expect(texts('{"\\u0061udio":"AAAA","event_id":"e","audio":"BBBB"}')).toBeUndefined();
    // An escape that is not valid JSON: the parser decides (and refuses).
    expect(texts('{"\\q":"AAAA","audio":"BBBB"}')).toBeUndefined();
  });

  it('a repeated member is unreadable, whichever of the two and wherever the repeat', () => {
    for (const s of [
      `{"audio":"${long}","event_id":"e","audio":"AAAA"}`,
      `{"audio":"AAAA","audio":"${long}"}`,
      '{"audio":"AAAA","event_id":"e","event_id":"f"}',
      '{"event_id":"e","audio":"AAAA","event_id":5}',
      '{"audio":1,"audio":"AAAA"}',
    ]) {
      expect(texts(s), s.slice(0, 60)).toBeUndefined();
    }
  });

  it('an escape in either value is left to the parser', () => {
    expect(texts('{"audio":"AA\\/A","event_id":"e"}')).toBeUndefined();
    expect(texts('{"audio":"AAAA","event_id":"e\\u0031"}')).toBeUndefined();
  });

  it('agrees with the single-member sniffer on every generated shape it reads', () => {
    const keysIn = ['audio', 'event_id', 'x', '\\u0061udio', 'event_\\u0069d'];
    const values = ['"AAAA"', `"${long}"`, '"e"', '5', 'null', '{"audio":"BBBB"}', '["event_id"]', '"a\\nb"'];
    let read = 0;
    // Every frame of up to three members drawn from these keys and values (deterministic).
    for (let n = 0; n < keysIn.length ** 3; n++) {
      const members: string[] = [];
      for (let m = 0, r = n; m < 1 + (n % 3); m++, r = Math.floor(r / keysIn.length)) members.push(`"${keysIn[r % keysIn.length]}":${values[(n + m * 3) % values.length]}`);
      const s = `{${members.join(',')}}`;
      const got = texts(s);
      const one = KEYS.map((k) => sniffStringSpan(b(s), k));
      if (got === undefined) {
        // Unreadable together only when one of them is unreadable alone.
        expect(one.includes(undefined), s).toBe(true);
        continue;
      }
      read++;
      expect(got, s).toEqual(parsed(s));
      expect(one.map((span) => (span === null || span === undefined ? span : spanText(b(s), span))), s).toEqual(got);
    }
    expect(read).toBeGreaterThan(30);
  });
});

/**
 * Differential test against JSON.parse over generated frames (seeded, deterministic). Every claim the
 * sniffer makes must be the parser's; on regular frames it must make a claim (the relay's hot path
 * depends on it); irregular frames (escapes in the member, malformed text) may only be unreadable.
 */
describe('sniffer vs JSON.parse on generated frames', () => {
  // mulberry32: small, seeded, good low bits.
  let seed = 0x5eed;
  const rand = (n: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)]!;
  const ws = () => pick(['', '', '', ' ', '\n', '\t', '\r\n', '  ']);
  const plainChars = 'abcXYZ019._-:{}[],/ éü€';
  const escapes = ['\\"', '\\\\', '\\n', '\\t', '\\u0041', '\\/'];
  /** A JSON string literal body of `len` characters, with escapes when asked. */
  const stringBody = (len: number, escaped: boolean): string => {
    let s = '';
    while (s.length < len) s += plainChars[rand(plainChars.length)];
    if (escaped) {
      const at = rand(s.length + 1);
      s = s.slice(0, at) + pick(escapes) + s.slice(at);
    }
    return s;
  };
  const lengths = [0, 1, 5, 30, 62, 63, 64, 65, 66, 200];
  const scalar = (): string => pick(['1', '-2.5e3', '0', 'true', 'false', 'null', `"${stringBody(pick(lengths), rand(3) === 0)}"`]);
  const nested = (depth: number): string => {
    if (depth > 2 || rand(3) === 0) return scalar();
    if (rand(2) === 0) return `[${ws()}${Array.from({ length: rand(3) }, () => nested(depth + 1)).join(`${ws()},${ws()}`)}${ws()}]`;
    const members = Array.from({ length: rand(3) }, () => `"${pick(['type', 'x', 'y'])}"${ws()}:${ws()}${nested(depth + 1)}`);
    return `{${ws()}${members.join(`${ws()},${ws()}`)}${ws()}}`;
  };

  interface Generated {
    readonly text: string;
    /** The type member: absent, a non-string, a string with or without escapes, or twice. */
    readonly typeKind: 'absent' | 'non-string' | 'plain' | 'escaped' | 'duplicate';
  }

  const generate = (): Generated => {
    const typeKind = pick(['absent', 'non-string', 'plain', 'plain', 'plain', 'escaped', 'duplicate'] as const);
    const others = Array.from({ length: rand(5) }, () => {
      const key = pick(['event_id', 'audio', 'delta', 'typ', 'types', 'Type', 'x', 'ty\\u0070x']);
      return `"${key}"${ws()}:${ws()}${rand(4) === 0 ? `"${'QUJD'.repeat(rand(40))}"` : nested(0)}`;
    });
    const typeValue = (): string => `"${stringBody(pick(lengths.slice(1)), typeKind === 'escaped')}"`;
    const typeMembers =
      typeKind === 'absent' ? [] :
      typeKind === 'non-string' ? [`"type"${ws()}:${ws()}${pick(['1', 'null', 'true', '{"type":"x"}', '["type"]'])}`] :
      typeKind === 'duplicate' ? [`"type":${typeValue()}`, `${rand(2) === 0 ? '"type"' : '"ty\\u0070e"'}${ws()}:${ws()}${rand(2) === 0 ? typeValue() : '2'}`] :
      [`"type"${ws()}:${ws()}${typeValue()}`];
    const members = [...others];
    for (const m of typeMembers) members.splice(rand(members.length + 1), 0, m);
    return { text: `${ws()}{${ws()}${members.join(`${ws()},${ws()}`)}${ws()}}${ws()}`, typeKind };
  };

  it('claims only what the parser reads, and claims every regular frame', () => {
    let claimed = 0;
    for (let n = 0; n < 3000; n++) {
      const g = generate();
      const parsed = JSON.parse(g.text) as { type?: unknown };
      const got = sniffType(b(g.text));
      const expected =
        g.typeKind === 'duplicate' ? DUPLICATE_KEY :
        g.typeKind === 'escaped' ? undefined :
        typeof parsed.type === 'string' ? parsed.type : null;
      expect(got, g.text).toBe(expected);
      // sniffString reads the same member and reports a duplicate as unreadable.
      expect(sniffString(b(g.text), 'type'), g.text).toBe(got === DUPLICATE_KEY ? undefined : got);
      if (typeof got === 'string') claimed++;
    }
    expect(claimed).toBeGreaterThan(1000);
  });

  it('never contradicts the parser on corrupted frames', () => {
    let stillValid = 0;
    for (let n = 0; n < 3000; n++) {
      const { text } = generate();
      const at = rand(text.length);
      const corrupted = rand(2) === 0 ? text.slice(0, at) : text.slice(0, at) + pick(['"', '\\', '{', '}', ',', ':', 'x', ' ']) + text.slice(at + 1);
      const got = sniffType(b(corrupted));
      let parsed: unknown;
      try {
        parsed = JSON.parse(corrupted);
      } catch {
        continue; // malformed: the relay parses (and refuses) it; only claims about valid JSON are checked
      }
      stillValid++;
      if (typeof got === 'string') expect((parsed as { type?: unknown }).type, corrupted).toBe(got);
      if (got === null) expect(typeof (parsed as { type?: unknown } | null)?.type === 'string', corrupted).toBe(false);
    }
    expect(stillValid).toBeGreaterThan(100);
  });

  it('spans point at the member value bytes', () => {
    let spans = 0;
    for (let n = 0; n < 2000; n++) {
      const { text } = generate();
      const buf = b(text);
      const parsed = JSON.parse(text) as Record<string, unknown>;
      for (const key of ['delta', 'event_id', 'audio']) {
        const span = sniffStringSpan(buf, key);
        if (span === null || span === undefined) continue;
        expect(buf.toString('utf8', span[0], span[1]), text).toBe(parsed[key]);
        spans++;
      }
    }
    expect(spans).toBeGreaterThan(200);
  });
});
