import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { CLIENT_SECRET_PREFIX } from '../../src/protocol/events.js';
import { callsProxy, mint, OFFER, post, WEBHOOK_SECRET } from '../calls/support.js';
import type { TestProxy } from '../support/harness.js';

/**
 * Request bodies on the tenant HTTP routes (client secrets, calls, SIP webhook) are bounded before
 * they are buffered and paid for: a missing or wrong credential is answered from the headers and the
 * connection closed with the body unread; a body past the route's own limit gets 413 at its declared
 * length or its bytes; buffered bytes count in the memory budget (503 when full) and are released
 * when the request ends; bodies of senders not yet authenticated take one of a few slots. (Until
 * 2026-12-05 every body was buffered up to 1 MiB before any credential was looked at: 100 keyless
 * connections held 94 MiB with the budget at 8 MiB.) Assertions are on what the client receives and
 * on the proxy's own accounting, never on wall time.
 */

const KiB = 1024;
const MiB = 1024 * KiB;

interface Answer {
  /** 0 when the connection closed without a response. */
  readonly status: number;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: string;
}

/** One HTTP/1.1 request on its own connection, written by hand (so that a body can stay unfinished). */
class RawPost {
  readonly socket: Socket;
  readonly answer: Promise<Answer>;
  readonly closed: Promise<void>;
  #data = '';

  constructor(port: number, path: string, headers: Readonly<Record<string, string>>, body: Buffer | string = '') {
    const head = [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
    // Written at once: Node sends what was written before the connection opened in order.
    this.socket = connect(port, '127.0.0.1');
    this.socket.write(head);
    if (body.length > 0) this.socket.write(body);
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.answer = new Promise((resolve) => {
      const done = () => resolve(this.#parse() ?? { status: 0, headers: new Map(), body: this.#data });
      this.socket.on('data', (d: Buffer) => {
        this.#data += d.toString('latin1');
        const parsed = this.#parse();
        if (parsed) resolve(parsed);
      });
      this.socket.once('close', done);
    });
  }

  /** The response once its head and its Content-Length of body are in, else null. */
  #parse(): Answer | null {
    const end = this.#data.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const [statusLine, ...lines] = this.#data.slice(0, end).split('\r\n');
    const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as const));
    const body = this.#data.slice(end + 4);
    if (body.length < Number(headers.get('content-length') ?? 0)) return null;
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine!)?.[1] ?? 0), headers, body };
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

const code = (a: Answer) => {
  try {
    return (JSON.parse(a.body) as { error?: { code?: string } }).error?.code ?? null;
  } catch {
    return null;
  }
};

/** Polls the proxy's own state (bounded); the test fails with `what` if it never holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never: ${what}`);
}

/** Headers a genuine delivery could carry (current timestamp, a v1 signature of the right length), but forged. */
const plausibleWebhook = (): Record<string, string> => ({
  'content-type': 'application/json',
  'webhook-id': `wh_${randomBytes(6).toString('hex')}`,
  'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
  'webhook-signature': `v1,${randomBytes(32).toString('base64')}`,
});

describe('request bodies before authentication', () => {
  let tp: TestProxy;
  const budget = () => tp.proxy.server.memoryBudget;

  beforeAll(async () => {
    tp = await callsProxy({ tenants: { acme: {} }, calls: { maxBodyBytes: 256 * KiB }, extra: { config: { server: { memoryBudgetBytes: 8 * MiB }, logging: { level: 'info' } } } });
  });

  afterAll(async () => {
    await tp?.stop();
  });

  it('keyless POSTs with ~1 MB unfinished bodies are answered at their headers (401, 400), closed, and nothing is held', async () => {
    const paths = ['/v1/realtime/client_secrets', '/v1/realtime/calls', SIP_WEBHOOK_PATH];
    const chunk = Buffer.alloc(990_000, 0x61);
    const before = process.memoryUsage().arrayBuffers;
    const posts = Array.from({ length: 60 }, (_, i) => new RawPost(tp.port, paths[i % 3]!, { 'content-type': 'application/json', 'content-length': '1000000' }, chunk));
    const answers = await Promise.all(posts.map((p) => p.answer));
    // The proxy closed every connection after its answer: the rest of the body is never read.
    await Promise.all(posts.map((p) => p.closed));
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(answers.map((a, i) => `${paths[i % 3]} ${a.status} ${code(a)}`)).toEqual(
      posts.map((_, i) => [`${paths[0]} 401 missing_api_key`, `${paths[1]} 401 missing_api_key`, `${paths[2]} 400 invalid_webhook`][i % 3]),
    );
    expect({ held: budget().held, unverified: tp.proxy.server.unverifiedBodies }).toEqual({ held: 0, unverified: 0 });
    // 60 × 990 KB sent; the proxy buffered none of it (the red-team run held 94 MiB).
    expect(grown).toBeLessThan(16 * MiB);
    // A wrong key is refused the same way, with the calls route's CORS headers for the browser.
    const wrong = new RawPost(tp.port, '/v1/realtime/calls', { authorization: 'Bearer rpk_unknown_0123456789abcdef', origin: 'https://app.example', 'content-type': 'application/sdp', 'content-length': '100000' }, 'v=0\r\n');
    const w = await wrong.answer;
    expect([w.status, code(w), w.headers.get('access-control-allow-origin')]).toEqual([401, 'invalid_api_key', '*']);
    await wrong.closed;
  }, 60_000);

  it('an unknown client secret is refused once the store answers, its body unfinished; a minted one still places a call', async () => {
    const forged = `${CLIENT_SECRET_PREFIX}${randomBytes(24).toString('base64url')}`;
    const p = new RawPost(tp.port, '/v1/realtime/calls', { authorization: `Bearer ${forged}`, 'content-type': 'application/sdp', 'content-length': String(200 * KiB) }, Buffer.alloc(8 * KiB, 0x61));
    const a = await p.answer;
    expect([a.status, code(a), a.headers.get('access-control-allow-origin')]).toEqual([401, 'invalid_client_secret', '*']);
    await p.closed;
    // A non-proxy ek_ key is refused from its shape alone.
    const shape = new RawPost(tp.port, '/v1/realtime/calls', { authorization: 'Bearer ek_not_ours', 'content-type': 'application/sdp', 'content-length': '1000' }, 'v=0');
    expect(code(await shape.answer)).toBe('invalid_client_secret');
    const secret = await mint(tp, 'acme');
    expect(secret.status).toBe(200);
    const call = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: secret.json['value'] as string, contentType: 'application/sdp', body: OFFER });
    expect(call.status).toBe(201);
    expect({ held: budget().held, unverified: tp.proxy.server.unverifiedBodies }).toEqual({ held: 0, unverified: 0 });
  });

  it("a body past the route's own limit gets 413 at its declared length, or once its bytes pass it (not at the 1 MiB admin cap)", async () => {
    const key = tp.key('acme');
    // Declared: answered before a body byte is sent.
    const declared = new RawPost(tp.port, '/v1/realtime/client_secrets', { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': String(256 * KiB + 1) });
    const d = await declared.answer;
    expect([d.status, code(d)]).toEqual([413, 'request_too_large']);
    await declared.closed;
    // Chunked (no length declared): cut when the bytes pass 256 KiB, the body still unfinished.
    const chunked = new RawPost(tp.port, '/v1/realtime/calls', { authorization: `Bearer ${key}`, 'content-type': 'application/sdp', 'transfer-encoding': 'chunked' });
    for (let i = 0; i < 5; i++) chunked.write(`10000\r\n${'a'.repeat(64 * KiB)}\r\n`);
    const c = await chunked.answer;
    expect([c.status, code(c)]).toEqual([413, 'request_too_large']);
    await chunked.closed;
    // The webhook has its own, smaller limit (calls.sip.maxBodyBytes, 64 KiB); checked once its signature headers look valid.
    const hook = new RawPost(tp.port, SIP_WEBHOOK_PATH, { ...plausibleWebhook(), 'content-length': String(64 * KiB + 1) });
    const h = await hook.answer;
    expect([h.status, code(h)]).toEqual([413, 'request_too_large']);
    expect({ held: budget().held, unverified: tp.proxy.server.unverifiedBodies }).toEqual({ held: 0, unverified: 0 });
  });

  it('unauthenticated bodies take one of server.maxUnauthenticatedBodies slots: past them 503 at the headers; authenticated bodies are not held back', async () => {
    const tp = await callsProxy({ tenants: { acme: {} }, extra: { config: { server: { maxUnauthenticatedBodies: 3 } } } });
    try {
      const budget = () => tp.proxy.server.memoryBudget;
      const pending = Array.from({ length: 3 }, () => new RawPost(tp.port, SIP_WEBHOOK_PATH, { ...plausibleWebhook(), 'content-length': '4000' }, '{"type":'));
      await until(() => tp.proxy.server.unverifiedBodies === 3 && budget().held === 3 * '{"type":'.length, 'three webhook bodies pending');
      const fourth = new RawPost(tp.port, SIP_WEBHOOK_PATH, { ...plausibleWebhook(), 'content-length': '4000' });
      const f = await fourth.answer;
      expect([f.status, code(f)]).toEqual([503, 'overloaded']);
      await fourth.closed;
      // A tenant's request does not wait for a slot.
      expect((await mint(tp, 'acme')).status).toBe(200);
      // A slot comes back when its request goes away, and with it the bytes it held.
      pending[0]!.destroy();
      await until(() => tp.proxy.server.unverifiedBodies === 2, 'the aborted body released its slot');
      expect(budget().held).toBe(2 * '{"type":'.length);
      // The freed slot reads a whole (forged) delivery, which then fails its signature check.
      const forgedBody = JSON.stringify({ type: 'realtime.call.incoming', data: { call_id: 'rtc_forged' } });
      const forged = new RawPost(tp.port, SIP_WEBHOOK_PATH, { ...plausibleWebhook(), 'content-length': String(forgedBody.length) }, forgedBody);
      const g = await forged.answer;
      expect([g.status, code(g)]).toEqual([400, 'invalid_webhook']);
      for (const p of pending) p.destroy();
      await until(() => tp.proxy.server.unverifiedBodies === 0 && budget().held === 0, 'every slot and byte released');
    } finally {
      await tp.stop();
    }
  });

  it('bodies being read are counted in the memory budget: past it 503 overloaded, and released when the request ends', async () => {
    const key = tp.key('acme');
    const part = Buffer.alloc(200 * KiB, 0x61);
    // Authenticated, unfinished: each holds what arrived of its body.
    const held = Array.from({ length: 2 }, () => new RawPost(tp.port, '/v1/realtime/client_secrets', { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': String(250 * KiB) }, part));
    await until(() => budget().held === 2 * part.length, 'both bodies held');
    expect(budget().used).toBeGreaterThanOrEqual(2 * part.length);
    // Fill the rest of the 8 MiB budget with more of them; the one that does not fit is refused.
    const more: RawPost[] = [];
    const answers: Answer[] = [];
    while (answers.length === 0 && more.length < 64) {
      const p = new RawPost(tp.port, '/v1/realtime/client_secrets', { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': String(250 * KiB) }, part);
      more.push(p);
      void p.answer.then((a) => answers.push(a));
      await until(() => answers.length > 0 || budget().held === (2 + more.length) * part.length, 'the body held or refused');
    }
    expect(answers.map((a) => [a.status, code(a)])).toEqual([[503, 'overloaded']]);
    // The refused request's bytes went back; the budget never passed its limit.
    await until(() => budget().held === (1 + more.length) * part.length, 'the refused body released');
    expect(budget().used).toBeLessThanOrEqual(budget().limit);
    // Aborted requests give back what they held.
    for (const p of [...held, ...more]) p.destroy();
    await until(() => budget().held === 0, 'every body released on abort');
    expect(tp.proxy.server.unverifiedBodies).toBe(0);
  });
});
