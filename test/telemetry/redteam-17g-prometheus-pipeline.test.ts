import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PROMETHEUS_MAX_CONNECTIONS, PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE, PrometheusListener } from '../../src/telemetry/prometheus-listener.js';

/*
 * The separate Prometheus listener (0.0.0.0 by default, no key) bounds connections (32, 8 per
 * source) and the time a request takes to arrive, but not what one connection makes it render and
 * buffer. An adversary without a key opens a connection, writes a few kilobytes of pipelined
 * `GET /metrics` requests in one packet (about 40 bytes each) and never reads: Node's parser emits
 * every request of the packet, each rendered the whole exposition (in a proxy with relay workers,
 * one metrics round trip to every worker per request) and each answer waited in memory behind the
 * unread first one, for as long as the socket stayed open (no timeout once a request is in). 1,500
 * requests in 64 KiB times a 500 KiB exposition is 750 MB per connection, 32 connections. The
 * guarantee broken: every buffer has a byte budget. Now one answer at a time per connection: a
 * request arriving while its connection's answer is still out closes the connection (Prometheus
 * never pipelines), so at most one exposition per connection is rendered and buffered.
 */

const PIPELINED = 50;
const listeners: PrometheusListener[] = [];

afterEach(async () => {
  for (const l of listeners.splice(0)) await l.close();
});

describe('redteam 17g: pipelined scrapes on a connection that never reads', () => {
  it('renders and buffers one exposition for the connection, not one per pipelined request', async () => {
    let renders = 0;
    let rendersReached: () => void = () => undefined;
    const allRendered = new Promise<void>((resolve) => (rendersReached = resolve));
    // A fresh string per render, as the real exposition is: each answer its own memory.
    const l = await PrometheusListener.start({ host: '127.0.0.1', port: 0, path: '/metrics' }, async () => {
      renders++;
      if (renders >= PIPELINED) rendersReached();
      return `metric_padding ${'9'.repeat(64 * 1024)} ${renders}\n`;
    });
    listeners.push(l);
    const socket = connect({ host: '127.0.0.1', port: l.port });
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // Never read: paused before anything arrives, so the answers stay with the server.
    socket.pause();
    socket.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${l.port}\r\n\r\n`.repeat(PIPELINED));
    // Either the server stops this connection, or it renders every request in the packet.
    await Promise.race([closed, allRendered]);
    socket.destroy();
    // Before the fix: 50 renders (50 answers of 64 KiB buffered for a client that reads none).
    expect(renders).toBeLessThanOrEqual(1);
  });

  it('still answers scrapes one after another on one keep-alive connection', async () => {
    let renders = 0;
    const l = await PrometheusListener.start({ host: '127.0.0.1', port: 0, path: '/metrics' }, async () => `metric ${++renders}\n`);
    listeners.push(l);
    const socket = connect({ host: '127.0.0.1', port: l.port });
    let received = '';
    let answered: () => void = () => undefined;
    socket.on('data', (d: Buffer) => {
      received += d.toString();
      if (received.includes('metric 2\n')) answered();
    });
    const second = new Promise<void>((resolve) => (answered = resolve));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${l.port}\r\n\r\n`);
    await new Promise<void>((resolve) => {
      const check = (): void => (received.includes('metric 1\n') ? resolve() : void socket.once('data', check));
      check();
    });
    socket.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${l.port}\r\n\r\n`);
    await second;
    socket.destroy();
    expect(renders).toBe(2);
  });
});

/** Resolves once `n` answers have been rendered (each held connection has its answer started). */
function renderCounter(body: string, n: number): { text: () => Promise<string>; reached: Promise<void> } {
  let renders = 0;
  let reach: () => void = () => undefined;
  const reached = new Promise<void>((resolve) => (reach = resolve));
  return {
    text: async () => {
      if (++renders === n) reach();
      return body;
    },
    reached,
  };
}

/** One `GET /metrics` from `from`, read whole; status 0 when the connection closed unanswered. */
function scrape(port: number, from: string): Promise<number> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', localAddress: from }, () => s.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`));
    let head = '';
    s.on('data', (d: Buffer) => {
      if (head.length < 64) head += d.toString('latin1');
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0)));
  });
}

/*
 * The same listener, one request per connection and never a read: Node's timeouts bound the
 * request's arrival only, and an answer larger than the socket buffers waited for its reader for
 * good. An adversary without a key holding 8 such connections from each of 4 addresses (every one
 * of the 32) kept every scrape out for as long as it liked. Now the answer has a deadline
 * (PROMETHEUS_ANSWER_DEADLINE_MS) after which its connection is closed, and a scrape gets through.
 */
describe('redteam 17g: scrapes whose answers are never read', () => {
  it('32 non-reading connections from 4 addresses do not keep the scraper out for good', async () => {
    const holders = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
    const held = holders.length * PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE;
    expect(held).toBe(PROMETHEUS_MAX_CONNECTIONS);
    // Larger than the loopback socket buffers a reader that never reads leaves room for.
    const counter = renderCounter(`metric_padding ${'9'.repeat(8 * 1024 * 1024)}\n`, held);
    const l = await PrometheusListener.start({ host: '127.0.0.1', port: 0, path: '/metrics' }, counter.text);
    listeners.push(l);
    const sockets = holders.flatMap((from) =>
      Array.from({ length: PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE }, () => {
        const s = connect({ host: '127.0.0.1', port: l.port, localAddress: from }, () => {
          s.pause();
          s.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${l.port}\r\n\r\n`);
        });
        s.on('error', () => undefined);
        return s;
      }),
    );
    try {
      await counter.reached;
      // The scraper retries until answered. Before the fix: never (the test times out).
      let status = 0;
      while (status !== 200) {
        status = await scrape(l.port, '127.0.0.1');
        if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 500));
      }
      expect(status).toBe(200);
    } finally {
      for (const s of sockets) s.destroy();
    }
  }, 90_000);
});
