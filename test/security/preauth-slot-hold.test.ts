import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { signWebhook } from '../../src/calls/webhook.js';
import { callsProxy, WEBHOOK_SECRET } from '../calls/support.js';
import type { TestProxy } from '../support/harness.js';

/**
 * A forged webhook with plausible headers (a current timestamp, a v1 signature of the right
 * length) passes the header check and is read as an unauthenticated body, taking one of
 * `server.maxUnauthenticatedBodies` (64) slots. Until 2026-12-05 a sender trickling its body held
 * its slot until uWS's own cut (~10–14 s), and 64 such requests from one address refused every real
 * webhook (OpenAI's SIP call deliveries) and every other unauthenticated body with 503. Now one
 * source holds at most `maxUnauthenticatedBodiesPerSource` (8) slots, and an unauthenticated body
 * that does not arrive by its deadline gets 408 and frees its slot. Loopback stands in for distinct
 * senders: Linux routes all of 127.0.0.0/8 to lo, so a socket bound to 127.0.0.2 is another address.
 * Assertions are on what the clients receive and the proxy's own counts, never on wall time.
 */

interface Answer {
  /** 0 when the connection closed without a response. */
  readonly status: number;
  readonly contentType: string | null;
  readonly body: string;
}

/** One HTTP/1.1 POST on its own connection from `from`, written by hand so that its body can stay unfinished. */
class Trickle {
  readonly socket: Socket;
  readonly answer: Promise<Answer>;
  #data = '';

  constructor(port: number, from: string, headers: Readonly<Record<string, string>>, body: string) {
    const head = [`POST ${SIP_WEBHOOK_PATH} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
    this.socket = connect({ port, host: '127.0.0.1', localAddress: from });
    this.socket.write(head + body);
    this.socket.on('error', () => undefined);
    this.answer = new Promise((resolve) => {
      this.socket.on('data', (d: Buffer) => {
        this.#data += d.toString('latin1');
        const parsed = this.#parse();
        if (parsed) resolve(parsed);
      });
      this.socket.once('close', () => resolve(this.#parse() ?? { status: 0, contentType: null, body: this.#data }));
    });
  }

  #parse(): Answer | null {
    const end = this.#data.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const head = this.#data.slice(0, end);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    const body = this.#data.slice(end + 4);
    if (body.length < length) return null;
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), contentType: /\r\ncontent-type: *([^\r]*)/i.exec(head)?.[1] ?? null, body };
  }

  write(bytes: string): void {
    this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

const code = (a: Answer): string | null => {
  try {
    return (JSON.parse(a.body) as { error?: { code?: string } }).error?.code ?? null;
  } catch {
    return null;
  }
};

/** Polls the proxy's own state (bounded); the test fails with `what` if it never holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never: ${what}`);
}

/** Headers a genuine delivery could carry, with a forged signature. */
const forgedHeaders = (extra: Readonly<Record<string, string>> = {}): Record<string, string> => ({
  'content-type': 'application/json',
  'webhook-id': `wh_${randomBytes(6).toString('hex')}`,
  'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
  'webhook-signature': `v1,${randomBytes(32).toString('base64')}`,
  'content-length': '4000',
  ...extra,
});

/** A genuinely signed delivery of an event the proxy acknowledges without acting on it. */
function signedDelivery(port: number, from: string, extra: Readonly<Record<string, string>> = {}): Trickle {
  const body = JSON.stringify({ object: 'event', id: `evt_${randomBytes(6).toString('hex')}`, type: 'realtime.call.ended', data: { call_id: 'rtc_x' } });
  const id = `wh_${randomBytes(6).toString('hex')}`;
  const ts = Math.floor(Date.now() / 1000);
  const headers = { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': signWebhook(WEBHOOK_SECRET, id, ts, body), 'content-length': String(Buffer.byteLength(body)), ...extra };
  return new Trickle(port, from, headers, body);
}

describe('one sender cannot hold the unauthenticated-body slots', () => {
  let tp: TestProxy | null = null;
  const open: Trickle[] = [];

  afterEach(async () => {
    for (const t of open.splice(0)) t.destroy();
    await tp?.stop();
    tp = null;
  });

  it('64 trickled forged webhooks from one address take its share (8), the rest 503 at their headers; a real signed webhook from another address gets 200; the trickled ones get 408', async () => {
    // A route limit far above the declared length: the deadline follows the declared length (5 s and
    // a bit), not the limit (over a minute: uWS would cut the connection first, with no answer).
    tp = await callsProxy({ tenants: { acme: {} }, calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [], maxBodyBytes: 1024 * 1024 } } });
    const server = tp.proxy.server;
    const attack = Array.from({ length: 64 }, () => new Trickle(tp!.port, '127.0.0.2', forgedHeaders(), '{"type":'));
    open.push(...attack);
    const refused: Answer[] = [];
    const answered = new Set<Trickle>();
    for (const t of attack)
      void t.answer.then((a) => {
        answered.add(t);
        refused.push(a);
      });
    await until(() => refused.length === 56, '56 of the 64 refused at their headers');
    expect(refused.map((a) => `${a.status} ${code(a)}`)).toEqual(Array.from({ length: 56 }, () => '503 overloaded'));
    expect([refused[0]!.contentType, (JSON.parse(refused[0]!.body) as { error: { message: string } }).error.message]).toEqual([
      'application/json',
      'This sender has too many request bodies being read before authentication; retry shortly.',
    ]);
    expect(server.unverifiedBodies).toBe(8);
    expect([...server.unverifiedBodiesBySource]).toEqual([['127.0.0.2', 8]]);
    // The attacker still holds its share; OpenAI's delivery (another address) is read and handled.
    const real = signedDelivery(tp.port, '127.0.0.1');
    open.push(real);
    const r = await real.answer;
    expect([r.status, JSON.parse(r.body)]).toEqual([200, { status: 'ignored' }]);
    // A trickled body that does not arrive by its deadline is answered 408 and its slot freed (before:
    // held until uWS cut the connection, with no answer). The bytes keep coming, a few a second.
    const held = attack.filter((t) => !answered.has(t));
    expect(held).toHaveLength(8);
    const drip = setInterval(() => {
      for (const t of held) t.write('"');
    }, 250);
    try {
      const answers = await Promise.all(held.map((t) => t.answer));
      expect(answers.map((a) => `${a.status} ${code(a)}`)).toEqual(Array.from({ length: 8 }, () => '408 request_timeout'));
      expect(JSON.parse(answers[0]!.body)).toEqual({ error: { type: 'invalid_request_error', code: 'request_timeout', message: 'The request body did not arrive in time.' } });
    } finally {
      clearInterval(drip);
    }
    await until(() => server.unverifiedBodies === 0 && server.unverifiedBodiesBySource.size === 0 && server.memoryBudget.held === 0, 'every slot and byte released');
    // Refusals are logged once a second, by reason.
    const refusedLog = () => tp!.logs.filter((l) => l['event'] === 'request_body_refused').map((l) => l['refused'] as Record<string, number>);
    await until(() => refusedLog().some((r) => r['unauthenticated_body_timeout'] !== undefined), 'the timeouts logged');
    const totals: Record<string, number> = {};
    for (const r of refusedLog()) for (const [k, v] of Object.entries(r)) totals[k] = (totals[k] ?? 0) + v;
    expect(totals).toEqual({ unauthenticated_bodies_per_source: 56, unauthenticated_body_timeout: 8 });
  }, 60_000);

  it('the share follows the connection address, not an X-Forwarded-For the client writes (server.forwardedForHops 0)', async () => {
    tp = await callsProxy({ tenants: { acme: {} }, extra: { config: { server: { maxUnauthenticatedBodies: 6, maxUnauthenticatedBodiesPerSource: 2 } } } });
    const server = tp.proxy.server;
    const spoofed = Array.from({ length: 3 }, (_, i) => new Trickle(tp!.port, '127.0.0.2', forgedHeaders({ 'x-forwarded-for': `198.51.100.${i + 1}` }), '{'));
    open.push(...spoofed);
    const third = await Promise.race(spoofed.map((t) => t.answer));
    expect([third.status, code(third)]).toEqual([503, 'overloaded']);
    expect([...server.unverifiedBodiesBySource]).toEqual([['127.0.0.2', 2]]);
    // One of the two goes away: its source still holds the other.
    const refusedOne = await Promise.race(spoofed.map((t, i) => t.answer.then(() => i)));
    const holders = spoofed.filter((_, i) => i !== refusedOne);
    holders[0]!.destroy();
    await until(() => server.unverifiedBodies === 1, 'one slot released');
    expect([...server.unverifiedBodiesBySource]).toEqual([['127.0.0.2', 1]]);
  });

  it('behind trusted proxies (server.forwardedForHops 1) the share follows the address they append, whatever the client put left of it', async () => {
    tp = await callsProxy({ tenants: { acme: {} }, extra: { config: { server: { maxUnauthenticatedBodies: 6, maxUnauthenticatedBodiesPerSource: 2, forwardedForHops: 1 } } } });
    const server = tp.proxy.server;
    // Every connection comes from the balancer (127.0.0.1 here); it appends the sender's address.
    const attack = Array.from({ length: 3 }, (_, i) => new Trickle(tp!.port, '127.0.0.1', forgedHeaders({ 'x-forwarded-for': `10.9.9.${i}, 203.0.113.7` }), '{'));
    open.push(...attack);
    const third = await Promise.race(attack.map((t) => t.answer));
    expect([third.status, code(third)]).toEqual([503, 'overloaded']);
    expect([...server.unverifiedBodiesBySource]).toEqual([['203.0.113.7', 2]]);
    // A real delivery through the same balancer counts as its own sender.
    const real = signedDelivery(tp.port, '127.0.0.1', { 'x-forwarded-for': '192.0.2.44' });
    open.push(real);
    const r = await real.answer;
    expect([r.status, JSON.parse(r.body)]).toEqual([200, { status: 'ignored' }]);
    for (const t of attack) t.destroy();
    await until(() => server.unverifiedBodies === 0 && server.unverifiedBodiesBySource.size === 0, 'every slot released on abort');
  });
});
