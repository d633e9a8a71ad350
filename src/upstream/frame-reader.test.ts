import { describe, expect, it } from 'vitest';
import { seeded } from '../../test/support/seeded.js';
import { wireCloseFrame, wireFrame } from '../../test/support/ws-wire.js';
import { FrameReader, isSendableCloseCode, Opcode } from './frame-reader.js';

// Frames are encoded by `ws`'s own Sender (an independent implementation), never by this module.
const frame = wireFrame;
const text = (s: string, fin = true) => frame(s, { opcode: Opcode.text, fin });
const closeFrame = wireCloseFrame;

type Seen = ['message', string, boolean] | ['ping', string] | ['pong'] | ['close', number, string] | ['violation', number, string];

function reader(maxPayload = 1 << 20, validateUtf8 = true, onMessage?: (r: FrameReader, data: Buffer) => void) {
  const seen: Seen[] = [];
  const r: FrameReader = new FrameReader(
    {
      message: (data, isBinary) => {
        seen.push(['message', data.toString('latin1'), isBinary]);
        onMessage?.(r, data);
      },
      ping: (p) => seen.push(['ping', p.toString()]),
      pong: () => seen.push(['pong']),
      close: (code, reason) => seen.push(['close', code, reason]),
      violation: (code, message) => seen.push(['violation', code, message]),
    },
    maxPayload,
    validateUtf8,
  );
  return { r, seen };
}

describe('FrameReader reads what a real WebSocket sender writes', () => {
  it('every size boundary of the length field, text and binary', () => {
    const { r, seen } = reader(1 << 20);
    const sizes = [0, 1, 125, 126, 127, 65_535, 65_536, 70_001];
    for (const n of sizes) r.push(frame('t'.repeat(n), { opcode: Opcode.text }));
    for (const n of sizes) r.push(frame(Buffer.alloc(n, 0xff), { opcode: Opcode.binary }));
    expect(seen).toEqual([...sizes.map((n) => ['message', 't'.repeat(n), false]), ...sizes.map((n) => ['message', '\xff'.repeat(n), true])]);
  });

  it('a random stream of messages, fragments and control frames, cut at random points, reads back in order', () => {
    const rnd = seeded(42);
    const expected: Seen[] = [];
    const wire: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const kind = rnd(10);
      if (kind === 0) {
        wire.push(frame(`p${i}`, { opcode: Opcode.ping }));
        expected.push(['ping', `p${i}`]);
      } else if (kind === 1) {
        wire.push(frame('', { opcode: Opcode.pong }));
        expected.push(['pong']);
      } else {
        const body = `{"n":${i},"s":"${'é'.repeat(rnd(3) === 0 ? rnd(40_000) : rnd(300))}"}`;
        const bytes = Buffer.from(body);
        const pieces = 1 + rnd(4);
        let at = 0;
        for (let p = 0; p < pieces; p++) {
          const end = p === pieces - 1 ? bytes.length : Math.min(bytes.length, at + rnd(bytes.length + 1));
          wire.push(frame(bytes.subarray(at, end), { opcode: p === 0 ? Opcode.text : Opcode.continuation, fin: p === pieces - 1 }));
          // A control frame may arrive between the fragments of a message.
          if (p < pieces - 1 && rnd(3) === 0) {
            wire.push(frame('mid', { opcode: Opcode.ping }));
            expected.push(['ping', 'mid']);
          }
          at = end;
        }
        expected.push(['message', bytes.toString('latin1'), false]);
      }
    }
    wire.push(closeFrame(1000, 'bye'));
    expected.push(['close', 1000, 'bye']);
    const all = Buffer.concat(wire);
    for (const seed of [1, 2, 3]) {
      const cut = seeded(seed);
      const { r, seen } = reader(1 << 20);
      for (let at = 0; at < all.length; ) {
        const n = 1 + (cut(4) === 0 ? cut(20) : cut(20_000));
        r.push(all.subarray(at, at + n));
        at += n;
      }
      expect(seen).toEqual(expected);
    }
  });

  it('one byte at a time', () => {
    const { r, seen } = reader();
    const all = Buffer.concat([text('héllo'), frame(Buffer.alloc(300, 1), { opcode: Opcode.binary }), closeFrame(3000, 'x')]);
    for (let i = 0; i < all.length; i++) r.push(all.subarray(i, i + 1));
    expect(seen).toEqual([['message', Buffer.from('héllo').toString('latin1'), false], ['message', '\x01'.repeat(300), true], ['close', 3000, 'x']]);
  });

  it('a close frame without a code reads as 1005; nothing after a close frame is read', () => {
    const { r, seen } = reader();
    r.push(Buffer.concat([frame('', { opcode: Opcode.close }), text('after')]));
    r.push(text('later'));
    expect(seen).toEqual([['close', 1005, '']]);
  });
});

describe('FrameReader refuses what breaks the protocol', () => {
  const cases: [string, Buffer[], number, RegExp][] = [
    ['a masked frame (servers must not mask)', [frame('x', { opcode: Opcode.text, mask: true })], 1002, /^a masked frame from the server$/],
    ['a reserved bit without an extension', [frame('x', { opcode: Opcode.text, rsv1: true })], 1002, /^reserved bits set/],
    ['reserved data opcode 3', [frame('x', { opcode: 3 })], 1002, /^reserved opcode 3$/],
    ['reserved control opcode 11', [frame('x', { opcode: 11 })], 1002, /^reserved opcode 11$/],
    ['a fragmented ping', [frame('x', { opcode: Opcode.ping, fin: false })], 1002, /^a fragmented control frame$/],
    ['a continuation with nothing to continue', [frame('x', { opcode: Opcode.continuation })], 1002, /^a continuation frame with no message to continue$/],
    ['a new message inside a fragmented one', [text('a', false), text('b')], 1002, /^a new message inside a fragmented one$/],
    ['a close frame with a 1-byte payload', [frame(Buffer.from([3]), { opcode: Opcode.close })], 1002, /^a close frame with a 1-byte payload$/],
    ['close code 1005 sent on the wire', [closeFrame(1005)], 1002, /^close code 1005 is not one a peer may send$/],
    ['close code 999', [closeFrame(999)], 1002, /^close code 999 /],
    ['close code 2000', [closeFrame(2000)], 1002, /^close code 2000 /],
    ['a close reason that is not UTF-8', [frame(Buffer.from([0x03, 0xe8, 0xc3, 0x28]), { opcode: Opcode.close })], 1007, /^a close reason that is not UTF-8$/],
    ['a text message that is not UTF-8', [frame(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), { opcode: Opcode.text })], 1007, /^a text message that is not UTF-8$/],
    ['a text message whose fragments join into invalid UTF-8', [frame(Buffer.from([0xe2, 0x82]), { opcode: Opcode.text, fin: false }), frame(Buffer.from([0x28]), { opcode: Opcode.continuation })], 1007, /not UTF-8/],
    ['a message above the limit', [text('y'.repeat(2000))], 1009, /^a message above 1000 bytes$/],
    ['fragments that add up to more than the limit', [text('y'.repeat(600), false), frame('y'.repeat(600), { opcode: Opcode.continuation })], 1009, /^a message above 1000 bytes$/],
    ['a ping of 126 bytes', [frame(Buffer.alloc(126), { opcode: Opcode.ping })], 1002, /^a control frame above 125 bytes$/],
  ];
  it.each(cases)('%s', (_name, frames, code, message) => {
    const { r, seen } = reader(1000);
    r.push(Buffer.concat([...frames, text('never')]));
    expect(seen).toEqual([['violation', code, expect.stringMatching(message)]]);
  });

  it('close codes a peer may send (RFC 6455 §7.4)', () => {
    const allowed = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
    const refused = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535];
    expect(allowed.filter((c) => !isSendableCloseCode(c))).toEqual([]);
    expect(refused.filter((c) => isSendableCloseCode(c))).toEqual([]);
    const { r, seen } = reader();
    r.push(closeFrame(4999, 'last'));
    expect(seen).toEqual([['close', 4999, 'last']]);
  });

  it('a control frame whose header claims 126 bytes is refused before its payload arrives', () => {
    const { r, seen } = reader();
    r.push(Buffer.from([0x89, 126, 0, 126]));
    expect(seen).toEqual([['violation', 1002, 'a control frame above 125 bytes']]);
  });

  it('a 2^63-byte length is refused at once, without waiting for (or allocating) the payload', () => {
    const { r, seen } = reader(64 * 1024 * 1024);
    r.push(Buffer.from([0x81, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
    expect(seen).toEqual([['violation', 1009, 'a message above 67108864 bytes']]);
    expect(r.bufferedBytes).toBe(0);
  });

  it.each([
    ['2^56', [1, 0, 0, 0, 0, 0, 0, 0]],
    ['2^32', [0, 0, 0, 1, 0, 0, 0, 0]],
    ['2^32 + 5', [0, 0, 0, 1, 0, 0, 0, 5]],
  ])('a 64-bit length of %s is refused at the header', (_name, bytes) => {
    const { r, seen } = reader(64 * 1024 * 1024);
    r.push(Buffer.from([0x82, 127, ...bytes]));
    expect(seen).toEqual([['violation', 1009, 'a message above 67108864 bytes']]);
  });

  it('64-bit lengths below the limit read exactly (every byte of the low word counts)', () => {
    const { r, seen } = reader(32 * 1024 * 1024);
    const n = 0x0100_0003; // 16 MiB + 3: the low word's top byte set
    const header = Buffer.from([0x82, 127, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x03]);
    r.push(Buffer.concat([header, Buffer.alloc(n, 7), frame('', { opcode: Opcode.pong })]));
    expect(seen).toHaveLength(2);
    expect(seen[0]![0]).toBe('message');
    expect((seen[0]![1] as string).length).toBe(n);
    expect(seen[1]).toEqual(['pong']);
    // A short payload with a non-minimal 64-bit length (RFC 6455 wants the shortest form; it is read anyway).
    const small = reader();
    small.r.push(Buffer.concat([Buffer.from([0x81, 127, 0, 0, 0, 0, 0, 0, 0, 5]), Buffer.from('hello')]));
    expect(small.seen).toEqual([['message', 'hello', false]]);
  });

  it('a length just above the limit is refused at the header; one at the limit waits for its bytes', () => {
    const over = reader(70_000);
    over.r.push(Buffer.from([0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x71])); // 70,001
    expect(over.seen).toEqual([['violation', 1009, 'a message above 70000 bytes']]);
    const at = reader(70_000);
    const f = text('z'.repeat(70_000));
    at.r.push(f.subarray(0, 100));
    expect(at.seen).toEqual([]);
    at.r.push(f.subarray(100));
    expect(at.seen).toEqual([['message', 'z'.repeat(70_000), false]]);
  });

  it('with UTF-8 validation off, text bytes pass as they are; binary is never validated', () => {
    const { r, seen } = reader(1000, false);
    r.push(frame(Buffer.from([0xc3, 0x28]), { opcode: Opcode.text }));
    r.push(frame(Buffer.from([0xc3, 0x28]), { opcode: Opcode.binary }));
    expect(seen).toEqual([['message', '\xc3(', false], ['message', '\xc3(', true]]);
    const strict = reader(1000, true);
    strict.r.push(frame(Buffer.from([0xc3, 0x28]), { opcode: Opcode.binary }));
    expect(strict.seen).toEqual([['message', '\xc3(', true]]);
  });
});

describe('FrameReader edges', () => {
  it('a 2-byte frame (empty payload) alone in a chunk is read; a 125-byte ping is a ping', () => {
    const { r, seen } = reader();
    r.push(frame('', { opcode: Opcode.pong }));
    r.push(text(''));
    r.push(frame('p'.repeat(125), { opcode: Opcode.ping }));
    expect(seen).toEqual([['pong'], ['message', '', false], ['ping', 'p'.repeat(125)]]);
  });

  it('a frame within one chunk is delivered as a view of it, not a copy (also when its header ended the previous chunk)', () => {
    const views: boolean[] = [];
    let chunk = Buffer.alloc(0);
    const { r } = reader(1 << 20, true, (_r, data) =>
      views.push(data.buffer === chunk.buffer && data.byteOffset >= chunk.byteOffset && data.byteOffset < chunk.byteOffset + chunk.length),
    );
    const push = (b: Buffer) => {
      chunk = Buffer.from(b); // an allocation of its own, as a socket read is
      r.push(chunk);
    };
    push(Buffer.concat([text('one'), text('two')]));
    const f = text('x'.repeat(300));
    push(f.subarray(0, 4)); // exactly the header
    push(f.subarray(4)); // exactly the payload
    const g = text('y'.repeat(300));
    push(Buffer.concat([text('z'), g.subarray(0, 100)]));
    push(g.subarray(100)); // g ends exactly with this chunk: copied (split)
    push(text('after'));
    expect(views).toEqual([true, true, true, true, false, true]);
  });

  it('bufferedBytes counts a partial frame and the fragments of a message being assembled', () => {
    const { r } = reader();
    const first = text('a'.repeat(200), false);
    r.push(first);
    expect(r.bufferedBytes).toBe(200);
    const cont = frame('b'.repeat(100), { opcode: Opcode.continuation, fin: false });
    r.push(cont.subarray(0, 50));
    expect(r.bufferedBytes).toBe(250);
    r.push(cont.subarray(50));
    expect(r.bufferedBytes).toBe(300);
    r.push(frame('c', { opcode: Opcode.continuation }));
    expect(r.bufferedBytes).toBe(0);
  });

  it('fragments: text, continuation, continuation, final continuation make one message of the first opcode', () => {
    const { r, seen } = reader();
    r.push(frame(Buffer.from([1, 2]), { opcode: Opcode.binary, fin: false }));
    r.push(frame(Buffer.from([3]), { opcode: Opcode.continuation, fin: false }));
    r.push(frame(Buffer.from([4]), { opcode: Opcode.continuation, fin: false }));
    r.push(frame(Buffer.from([5]), { opcode: Opcode.continuation }));
    r.push(text('next'));
    expect(seen).toEqual([['message', '\x01\x02\x03\x04\x05', true], ['message', 'next', false]]);
  });

  it('resume from inside a message callback while not paused delivers nothing re-entrantly', () => {
    let depth = 0;
    let deepest = 0;
    const order: string[] = [];
    const { r } = reader(1 << 20, true, (rd, data) => {
      depth++;
      deepest = Math.max(deepest, depth);
      order.push(data.toString());
      rd.resume();
      depth--;
    });
    r.push(Buffer.concat([text('a'), text('b'), text('c')]));
    expect(order).toEqual(['a', 'b', 'c']);
    expect(deepest).toBe(1);
  });
});

describe('FrameReader pause and resume', () => {
  it('a pause inside the message callback holds the rest of the chunk until resume, in order', () => {
    let pauseNext = true;
    const { r, seen } = reader(1 << 20, true, (rd) => {
      if (pauseNext) {
        pauseNext = false;
        rd.pause();
      }
    });
    r.push(Buffer.concat([text('a'), text('b'), text('c')]));
    expect(seen).toEqual([['message', 'a', false]]);
    r.push(text('d'));
    expect(seen).toHaveLength(1);
    expect(r.bufferedBytes).toBeGreaterThan(0);
    r.resume();
    expect(seen.map((s) => s[1])).toEqual(['a', 'b', 'c', 'd']);
  });

  it('stop drops what was buffered and reads nothing more', () => {
    const { r, seen } = reader();
    r.pause();
    r.push(text('held'));
    r.stop();
    r.resume();
    r.push(text('after'));
    expect(seen).toEqual([]);
    expect(r.bufferedBytes).toBe(0);
  });
});
