import { describe, expect, it } from 'vitest';
import { checkedMembers } from './checked-members.js';
import { DELTA_KEYS as KEYS, parsedMembers as parsed, walkedMembers as read } from '../../test/support/member-readings.js';

const b = (s: string) => Buffer.from(s, 'utf8');

/** The walk's one promise: when it answers, JSON.parse accepts the frame and reads the same. */
function agrees(text: string | Buffer): void {
  const mine = read(text);
  if (mine !== undefined) expect(mine, String(text)).toEqual(parsed(text));
}

const DELTA = '{"type":"response.output_audio_transcript.delta","event_id":"e1","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":2,"delta":"Sure, "}';

describe('checkedMembers', () => {
  it('reads a transcript delta as JSON.parse does', () => {
    expect(read(DELTA)).toEqual({ response_id: 'resp_1', item_id: 'item_1', content_index: 2, delta: 'Sure, ' });
    agrees(DELTA);
  });

  it('reads members in any order, with whitespace around every token', () => {
    const text = ' \n{ "delta" : "hé 世界 🎉" ,\t"content_index":0 , "item_id":"i", "response_id" : "r" , "extra": {"a":[1,2,{"b":null}]} }\r\n';
    expect(read(text)).toEqual({ response_id: 'r', item_id: 'i', content_index: 0, delta: 'hé 世界 🎉' });
    agrees(text);
  });

  it('reads absent members and members of other kinds as absent', () => {
    expect(read('{"type":"x","delta":5,"item_id":null,"response_id":["r"]}')).toEqual({ response_id: null, item_id: null, content_index: null, delta: 5 });
    agrees('{"type":"x","delta":5,"item_id":null,"response_id":["r"]}');
    expect(read('{}')).toEqual({ response_id: null, item_id: null, content_index: null, delta: null });
  });

  it('leaves a wanted member given twice to the parser (JSON.parse takes the last; clients differ)', () => {
    expect(read('{"delta":"safe","delta":"forbidden"}')).toBeUndefined();
    expect(read('{"content_index":0,"item_id":"a","content_index":1}')).toBeUndefined();
    // A member nobody reads may repeat: JSON.parse reads the wanted ones the same.
    expect(read('{"x":1,"x":2,"delta":"d"}')).toMatchObject({ delta: 'd' });
  });

  it('leaves any escaped top-level key to the parser: it may spell a wanted one', () => {
    expect(read('{"delta":"safe","d\\u0065lta":"forbidden"}')).toBeUndefined();
    expect(read('{"\\u0064elta":"x"}')).toBeUndefined();
    expect(read('{"a\\"b":1,"delta":"x"}')).toBeUndefined();
  });

  it('leaves an escape in a wanted string to the parser, and reads escapes elsewhere', () => {
    expect(read('{"delta":"say \\"hi\\""}')).toBeUndefined();
    expect(read('{"delta":"\\u0041"}')).toBeUndefined();
    expect(read('{"delta":"line\\n"}')).toBeUndefined();
    const text = '{"note":"a \\"quoted\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 \\ud800","delta":"ok","nested":{"k\\u0065y":"\\""}}';
    expect(read(text)).toMatchObject({ delta: 'ok' });
    agrees(text);
  });

  it('refuses every malformed frame JSON.parse refuses', () => {
    const bad = [
      '',
      ' ',
      '[]',
      '"delta"',
      '{',
      '{"delta":"x"',
      '{"delta":"x",}',
      '{"delta":"x"}}',
      '{"delta":"x"}{"delta":"y"}',
      '{"delta":"x"} x',
      '{"delta":"x" "item_id":"i"}',
      '{"delta" "x"}',
      '{delta:"x"}',
      "{'delta':'x'}",
      '{"delta":"x\u0001"}',
      '{"note":"tab\there","delta":"x"}',
      '{"note":"\\x41","delta":"x"}',
      '{"note":"\\u00g1","delta":"x"}',
      '{"note":"\\u00e","delta":"x"}',
      '{"note":"\\',
      '{"delta":"unterminated}',
      '{"a":01,"delta":"x"}',
      '{"a":-,"delta":"x"}',
      '{"a":1.,"delta":"x"}',
      '{"a":.5,"delta":"x"}',
      '{"a":1e,"delta":"x"}',
      '{"a":+1,"delta":"x"}',
      '{"a":0x10,"delta":"x"}',
      '{"a":NaN,"delta":"x"}',
      '{"a":Infinity,"delta":"x"}',
      '{"a":tru,"delta":"x"}',
      '{"a":nul,"delta":"x"}',
      '{"a":[1,],"delta":"x"}',
      '{"a":[1 2],"delta":"x"}',
      '{"a":{"b":1,},"delta":"x"}',
      '{"a":{"b"},"delta":"x"}',
      '{"a":{"b":1]},"delta":"x"}',
      '\ufeff{"delta":"x"}',
      '{"delta":"x"}\u2028',
      '{"content_index":1_000}',
    ];
    for (const text of bad) {
      expect(parsed(text), `JSON.parse should refuse ${JSON.stringify(text)}`).toBeUndefined();
      expect(read(text), JSON.stringify(text)).toBeUndefined();
    }
  });

  it('reads numbers as JSON.parse does, huge and tiny ones included', () => {
    for (const n of ['0', '-0', '7', '-12', '3.25', '1e3', '1E+2', '2e-3', '123456789012345678901234567890', '1e400', '-1e400', '1e-400']) {
      const text = `{"content_index":${n},"delta":"x"}`;
      expect(read(text)?.['content_index'], n).toBe(JSON.parse(text).content_index);
    }
  });

  it('reads huge values and deep nesting up to its bound, and leaves deeper nesting to the parser', () => {
    const big = 'A'.repeat(1_000_000);
    expect(read(`{"audio":"${big}","delta":"${big}"}`)?.['delta']).toHaveLength(1_000_000);
    const nest = (d: number) => `{"a":${'['.repeat(d)}${']'.repeat(d)},"delta":"x"}`;
    expect(read(nest(60))).toMatchObject({ delta: 'x' });
    expect(read(nest(100_000))).toBeUndefined();
  });

  it('reads invalid UTF-8 as JSON.parse of the decoded frame does (replacement characters)', () => {
    const buf = Buffer.concat([b('{"delta":"a'), Buffer.from([0xff, 0xc3]), b('","item_id":"'), Buffer.from([0xe2, 0x82]), b('"}')]);
    agrees(buf);
    expect(read(buf)?.['delta']).toBe('a\ufffd\ufffd');
  });

  it('agrees with JSON.parse on seeded mutations of a delta (bytes replaced, dropped, repeated)', () => {
    let x = 0x2545f491;
    const rand = (n: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const alphabet = b('{}[]":,\\ u0123456789aeEfnlrstx.-+\n\t\u00e9');
    const base = b(DELTA);
    let answered = 0;
    for (let trial = 0; trial < 20_000; trial++) {
      const bytes = Buffer.from(base);
      const edits = 1 + rand(3);
      let buf: Buffer = bytes;
      for (let e = 0; e < edits; e++) {
        const at = rand(buf.length);
        const op = rand(3);
        if (op === 0) buf[at] = alphabet[rand(alphabet.length)]!;
        else if (op === 1) buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1)]);
        else buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at, at + 1 + rand(8)), buf.subarray(at)]);
      }
      if (read(buf) !== undefined) answered++;
      agrees(buf);
    }
    // The walk answered for a good share of them (it is not refusing everything).
    expect(answered).toBeGreaterThan(1000);
  });
});
