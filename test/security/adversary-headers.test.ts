import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Adversary review (2026-12-05): client header bytes that reach the upstream handshake.
 * `OpenAI-Safety-Identifier` is the one client header forwarded upstream (src/upstream/dial.ts).
 * uWS accepts a DEL byte (0x7f) in a header value, Node's HTTP client refuses it when the upstream
 * request is built, and the proxy reports that as `upstream_unavailable` with close 1013: a
 * retryable "the upstream is down" for a request the client itself made malformed. The `openai`
 * SDK's `reconnect: true` retries 1013 forever, every retry logs an error-level "upstream dial
 * failed", and operators see a false upstream outage.
 */

interface ServerFrame {
  readonly opcode: number;
  readonly payload: Buffer;
}

/** Splits the bytes after a 101 into unmasked server frames (whole frames only). */
function serverFrames(bytes: Buffer): ServerFrame[] {
  const frames: ServerFrame[] = [];
  let i = 0;
  while (i + 2 <= bytes.length) {
    const opcode = bytes[i]! & 0x0f;
    let n = bytes[i + 1]! & 0x7f;
    let h = 2;
    if (n === 126) {
      if (i + 4 > bytes.length) break;
      n = bytes.readUInt16BE(i + 2);
      h = 4;
    } else if (n === 127) {
      if (i + 10 > bytes.length) break;
      n = Number(bytes.readBigUInt64BE(i + 2));
      h = 10;
    }
    if (i + h + n > bytes.length) break;
    frames.push({ opcode, payload: bytes.subarray(i + h, i + h + n) });
    i += h + n;
  }
  return frames;
}

/** A raw upgrade whose header bytes no client library would send; resolves with what came back until the close. */
function rawUpgrade(port: number, head: Buffer): Promise<{ status: string; frames: ServerFrame[] }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(head));
    const got: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const all = Buffer.concat(got);
      const end = all.indexOf('\r\n\r\n');
      const status = all.subarray(0, all.indexOf('\r\n')).toString('latin1');
      resolve({ status, frames: end < 0 ? [] : serverFrames(all.subarray(end + 4)) });
    };
    s.on('data', (d: Buffer) => {
      got.push(d);
      // Enough to judge: the first event after a 101, or any HTTP refusal.
      const all = Buffer.concat(got);
      const end = all.indexOf('\r\n\r\n');
      if (end >= 0 && !all.subarray(0, 12).toString('latin1').includes('101')) finish();
      else if (end >= 0 && serverFrames(all.subarray(end + 4)).some((f) => f.opcode === 8 || f.payload.includes('session.created'))) finish();
    });
    s.on('close', finish);
    s.on('error', finish);
    // A bound, not a timed assertion: the proxy answers within milliseconds either way.
    const timer = setTimeout(finish, 10_000);
  });
}

function upgradeHead(key: string, extra: Buffer): Buffer {
  const lines = [
    'GET /v1/realtime?model=gpt-realtime HTTP/1.1',
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    `Authorization: Bearer ${key}`,
  ];
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n`), extra, Buffer.from('\r\n\r\n')]);
}

describe('adversary: client header bytes forwarded to the upstream', () => {
  let tp: TestProxy;

  beforeAll(async () => {
    tp = await startTestProxy();
  });

  afterAll(async () => {
    await tp?.stop();
  });

  it('an OpenAI-Safety-Identifier with a DEL byte is not reported as a retryable upstream outage (upstream_unavailable, 1013)', async () => {
    const header = Buffer.concat([Buffer.from('OpenAI-Safety-Identifier: user'), Buffer.from([0x7f]), Buffer.from('1')]);
    const out = await rawUpgrade(tp.port, upgradeHead(tp.key(), header));
    const closes = out.frames.filter((f) => f.opcode === 8).map((f) => f.payload.readUInt16BE(0));
    const errors = out.frames.filter((f) => f.opcode === 1).map((f) => JSON.parse(f.payload.toString('utf8')) as { type: string; error?: { code: string } });
    const codes = errors.filter((e) => e.type === 'error').map((e) => e.error?.code);
    // Correct: refused as the client's own bad request (HTTP 400 invalid_request before the
    // upgrade), or the value dropped and the session opened. Never a retryable upstream failure.
    expect(codes).not.toContain('upstream_unavailable');
    expect(closes).not.toContain(1013);
    expect(out.status === 'HTTP/1.1 400 Bad Request' || errors.some((e) => e.type === 'session.created')).toBe(true);
    // And no error-level "upstream dial failed" for it.
    expect(tp.logs.filter((l) => l.msg === 'upstream dial failed')).toEqual([]);
  });

  // The class: every value Node's HTTP client refuses (uWS decodes header bytes as UTF-8, so an
  // invalid byte arrives as U+FFFD, and a character above U+00FF cannot be sent at all).
  for (const [what, bytes] of [
    ['an invalid UTF-8 byte (0xff)', [0xff]],
    ['a character above U+00FF (UTF-8 of U+4E2D)', [0xe4, 0xb8, 0xad]],
  ] as const) {
    it(`an OpenAI-Safety-Identifier with ${what} is refused 400 invalid_request before the upgrade`, async () => {
      const header = Buffer.concat([Buffer.from('OpenAI-Safety-Identifier: user'), Buffer.from(bytes), Buffer.from('1')]);
      const out = await rawUpgrade(tp.port, upgradeHead(tp.key(), header));
      expect(out.status).toBe('HTTP/1.1 400 Bad Request');
      expect(tp.logs.filter((l) => l.msg === 'upstream dial failed')).toEqual([]);
    });
  }

  it('a well-formed OpenAI-Safety-Identifier still opens the session (control)', async () => {
    const out = await rawUpgrade(tp.port, upgradeHead(tp.key(), Buffer.from('OpenAI-Safety-Identifier: user-1')));
    expect(out.status).toBe('HTTP/1.1 101 Switching Protocols');
    expect(out.frames.some((f) => f.opcode === 1 && f.payload.includes('session.created'))).toBe(true);
  });
});
