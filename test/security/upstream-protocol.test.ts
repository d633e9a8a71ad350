import { afterEach, describe, expect, it } from 'vitest';
import { defaultKey, startTestProxy, type TestProxy } from '../support/harness.js';
import { rawUpstream, wireCloseFrame, wireFrame, type RawUpstreamConnection } from '../support/ws-wire.js';
import { sessionCreated } from '../resilience/support/faulty-upstream.js';
import { RawClient } from './support.js';

/**
 * The proxy speaks RFC 6455 to the upstream itself (src/upstream/). An upstream here writes raw
 * bytes after a hand-made handshake; `ws`'s own decoder reads what the proxy sent back. Every
 * byte the client received is checked.
 */

const auth = { authorization: `Bearer ${defaultKey('acme')}` };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const TEXT = 0x1;
const CONTINUATION = 0x0;
const PING = 0x9;

async function proxyTo(url: string): Promise<TestProxy> {
  const tp = await startTestProxy({ config: { upstream: { provider: 'openai', url, apiKey: 'sk-x', connectTimeoutMs: 1000 } } });
  cleanups.push(() => tp.stop());
  return tp;
}

/**
 * A raw upstream that answers the upgrade with session.created in the same packet as the 101, then
 * runs `then` (the test's bytes) on that connection.
 */
async function upstream(then: (conn: RawUpstreamConnection) => void = () => undefined) {
  const up = await rawUpstream((conn, response101) => {
    conn.socket.write(Buffer.concat([Buffer.from(response101, 'latin1'), wireFrame(sessionCreated(1), { opcode: TEXT })]));
    then(conn);
  });
  cleanups.push(() => up.close());
  return up;
}

/** Every frame the client got is a UTF-8 JSON event. */
function cleanEvents(c: RawClient): { type: string; [k: string]: unknown }[] {
  for (const f of c.frames) expect(f.binary).toBe(false);
  return c.events();
}

describe('the proxy as a WebSocket client of the upstream', () => {
  it('frames sent in the same packet as the 101 are read; a fragmented event with pings between its fragments reaches the client whole; pings are answered with their payload', async () => {
    const delta = JSON.stringify({ type: 'response.output_text.delta', event_id: 'ev_1', response_id: 'resp_1', item_id: 'item_1', output_index: 0, content_index: 0, delta: 'héllo wörld '.repeat(40) });
    const bytes = Buffer.from(delta);
    const up = await upstream((conn) => {
      // A UTF-8 character cut between fragments, and a ping inside the message.
      const cut = bytes.indexOf('é') + 1;
      setTimeout(() => {
        conn.socket.write(wireFrame(bytes.subarray(0, cut), { opcode: TEXT, fin: false }));
        conn.socket.write(wireFrame('are you there', { opcode: PING }));
        conn.socket.write(wireFrame(bytes.subarray(cut, 300), { opcode: CONTINUATION, fin: false }));
        // The rest one byte per write.
        const last = wireFrame(bytes.subarray(300), { opcode: CONTINUATION });
        for (let i = 0; i < last.length; i++) conn.socket.write(last.subarray(i, i + 1));
      }, 20);
    });
    const tp = await proxyTo(up.url);
    const c = new RawClient(tp.url, auth);
    await c.opened;
    await c.waitFor(() => c.frames.length >= 2);
    const events = cleanEvents(c);
    expect(events.map((e) => e.type)).toEqual(['session.created', 'response.output_text.delta']);
    expect(c.frames[1]!.data.toString('utf8')).toBe(delta);
    await c.waitFor(() => up.connections[0]!.fromProxy.pongs.length >= 1);
    expect(up.connections[0]!.fromProxy.pongs).toEqual(['are you there']);
    expect(up.connections[0]!.fromProxy.errors).toEqual([]);
    expect(tp.proxy.server.sessionCount).toBe(1);
    c.ws.close(1000);
    await c.closed;
  });

  it.each([
    ['a masked frame', wireFrame('{"type":"x"}', { opcode: TEXT, mask: true })],
    ['a reserved bit (compression that was never negotiated)', wireFrame('{"type":"x"}', { opcode: TEXT, rsv1: true })],
    ['a reserved opcode', wireFrame('{"type":"x"}', { opcode: 0x3 })],
    ['a continuation with no message', wireFrame('{"type":"x"}', { opcode: CONTINUATION })],
    ['a ping above 125 bytes', Buffer.concat([Buffer.from([0x89, 126, 0, 200]), Buffer.alloc(200)])],
  ])('%s from the upstream: the client gets upstream_closed and 1011, the upstream a close 1002, and the TCP connection ends even if the upstream never closes it', async (_name, bad) => {
    const up = await upstream((conn) => {
      setTimeout(() => conn.socket.write(Buffer.concat([bad, wireFrame('{"type":"never.relayed"}', { opcode: TEXT })])), 20);
    });
    const tp = await proxyTo(up.url);
    const c = new RawClient(tp.url, auth);
    await c.opened;
    const closed = await c.closed;
    expect(cleanEvents(c).map((e) => e.type)).toEqual(['session.created', 'error']);
    expect(c.errorCodes()).toEqual(['upstream_closed']);
    expect(closed.code).toBe(1011);
    const conn = up.connections[0]!;
    // This upstream never answers the close: the proxy's bounded wait ends the TCP connection.
    await conn.socketClosed;
    expect(conn.fromProxy.closes).toEqual([{ code: 1002, reason: '' }]);
    expect(tp.proxy.server.sessionCount).toBe(0);
  });

  it('an upstream close frame is echoed, and its code reaches the client once the upstream ends TCP (or within the bounded wait when it does not)', async () => {
    for (const endsTcp of [true, false]) {
      const up = await upstream((conn) => {
        setTimeout(() => {
          conn.socket.write(Buffer.concat([wireFrame('{"type":"error","error":{"type":"invalid_request_error","code":"session_expired","message":"m"}}', { opcode: TEXT }), wireCloseFrame(1001, 'going')]));
          if (endsTcp) setTimeout(() => conn.socket.end(), 50);
        }, 20);
      });
      const tp = await proxyTo(up.url);
      const c = new RawClient(tp.url, auth);
      await c.opened;
      const closed = await c.closed;
      expect(cleanEvents(c).map((e) => e.type)).toEqual(['session.created', 'error']);
      expect(c.errorCodes()).toEqual(['session_expired']);
      expect(closed.code).toBe(1001);
      const conn = up.connections[0]!;
      await conn.socketClosed;
      expect(conn.fromProxy.closes).toEqual([{ code: 1001, reason: '' }]);
    }
  });

  it('a client that leaves: the upstream gets a close 1000 and the connection ends; nothing is written after the close frame', async () => {
    const up = await upstream();
    const tp = await proxyTo(up.url);
    const c = new RawClient(tp.url, auth);
    await c.opened;
    await c.waitFor(() => c.frames.length >= 1);
    c.ws.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: 'AAAA' }));
    await c.waitFor(() => up.connections[0]!.fromProxy.messages.length >= 1);
    c.ws.close(1000);
    const conn = up.connections[0]!;
    await c.waitFor(() => conn.fromProxy.closes.length === 1);
    // The upstream answers with its own close frame and ends TCP, as a server does.
    conn.socket.end(wireCloseFrame(1000));
    await conn.socketClosed;
    expect(conn.fromProxy.closes).toEqual([{ code: 1000, reason: '' }]);
    expect(conn.fromProxy.messages).toEqual([JSON.stringify({ type: 'input_audio_buffer.append', audio: 'AAAA' })]);
    expect(conn.fromProxy.errors).toEqual([]);
  });
});
