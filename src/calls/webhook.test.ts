import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { signWebhook, verifyWebhook, WebhookDeliveries, webhookHeadersProblem, webhookKey, type DeliveryClaim, type DeliveryRecord } from './webhook.js';

// Standard Webhooks: the secret is `whsec_` + the base64 key.
const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const SECRET = `whsec_${KEY.toString('base64')}`;
const NOW_MS = 1_800_000_000_000;
const TS = NOW_MS / 1000;
const BODY = Buffer.from('{"type":"realtime.call.incoming","data":{"call_id":"rtc_1"}}');

const headers = (h: Record<string, string>) => new Map(Object.entries(h));
const signed = (over: Record<string, string> = {}) => headers({ 'webhook-id': 'msg_1', 'webhook-timestamp': String(TS), 'webhook-signature': signWebhook(SECRET, 'msg_1', TS, BODY), ...over });
const verify = (h: ReadonlyMap<string, string>, body = BODY, nowMs = NOW_MS) => verifyWebhook(SECRET, h, body, nowMs, 300);

describe('webhook signatures (Standard Webhooks, as OpenAI signs realtime.call.incoming)', () => {
  it('signs `<id>.<timestamp>.<body>` with HMAC-SHA256 under the decoded key, as v1,<base64>', () => {
    const mac = createHmac('sha256', KEY).update(`msg_1.${TS}.`).update(BODY).digest('base64');
    expect(signWebhook(SECRET, 'msg_1', TS, BODY)).toBe(`v1,${mac}`);
    expect(signWebhook(SECRET, 'msg_1', TS, BODY.toString())).toBe(`v1,${mac}`);
    // The key with or without its whsec_ prefix.
    expect(webhookKey(SECRET)).toEqual(KEY);
    expect(webhookKey(KEY.toString('base64'))).toEqual(KEY);
    expect(webhookKey(`x${SECRET}`)).not.toEqual(KEY);
  });

  it('accepts a valid signature and names the webhook id', () => {
    expect(verify(signed())).toEqual({ ok: true, id: 'msg_1' });
  });

  it('refuses missing or malformed headers', () => {
    const bad = 'missing or malformed webhook headers';
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const h = new Map(signed());
      h.delete(name);
      expect(verify(h), name).toEqual({ ok: false, reason: bad });
      expect(verify(new Map([...signed(), [name, '']])), `${name} empty`).toEqual({ ok: false, reason: bad });
    }
    expect(verify(signed({ 'webhook-id': 'm'.repeat(257) }))).toEqual({ ok: false, reason: bad });
    const longId = 'm'.repeat(256);
    expect(verify(signed({ 'webhook-id': longId, 'webhook-signature': signWebhook(SECRET, longId, TS, BODY) }))).toEqual({ ok: true, id: longId });
    for (const ts of ['1.5e9', '-1', ' 1800000000', '1800000000 ', 'abc', '1234567890123']) expect(verify(signed({ 'webhook-timestamp': ts })), ts).toEqual({ ok: false, reason: bad });
  });

  it('refuses a timestamp outside the replay window, either way; the window edge is inside', () => {
    const at = (offsetSec: number) => {
      const ts = TS + offsetSec;
      return verify(signed({ 'webhook-timestamp': String(ts), 'webhook-signature': signWebhook(SECRET, 'msg_1', ts, BODY) }));
    };
    expect(at(-300)).toEqual({ ok: true, id: 'msg_1' });
    expect(at(300)).toEqual({ ok: true, id: 'msg_1' });
    expect(at(-301)).toEqual({ ok: false, reason: 'timestamp outside the replay window' });
    expect(at(301)).toEqual({ ok: false, reason: 'timestamp outside the replay window' });
    // The clock is the proxy's (milliseconds), compared in seconds.
    expect(verify(signed(), BODY, NOW_MS + 300_500)).toEqual({ ok: false, reason: 'timestamp outside the replay window' });
  });

  it('refuses a signature over anything else: another body, id, timestamp or key', () => {
    const none = { ok: false, reason: 'no valid signature' };
    expect(verify(signed(), Buffer.from(`${BODY.toString()} `))).toEqual(none);
    expect(verify(signed({ 'webhook-id': 'msg_2' }))).toEqual(none);
    expect(verify(signed({ 'webhook-timestamp': String(TS + 1) }))).toEqual(none);
    const otherKey = `whsec_${Buffer.from('another key, another key, anoth').toString('base64')}`;
    expect(verify(signed({ 'webhook-signature': signWebhook(otherKey, 'msg_1', TS, BODY) }))).toEqual(none);
  });

  it('reads up to 16 space-separated signatures, v1 only; a truncated or non-v1 one never matches', () => {
    const good = signWebhook(SECRET, 'msg_1', TS, BODY);
    const value = good.slice(3);
    const none = { ok: false, reason: 'no valid signature' };
    expect(verify(signed({ 'webhook-signature': `v1,AAAA ${good}` }))).toEqual({ ok: true, id: 'msg_1' });
    expect(verify(signed({ 'webhook-signature': `v2,${value}` }))).toEqual(none);
    expect(verify(signed({ 'webhook-signature': `v1,${value.slice(0, 20)}` }))).toEqual(none);
    expect(verify(signed({ 'webhook-signature': `v1 ${value}` }))).toEqual(none);
    expect(verify(signed({ 'webhook-signature': 'v1,' }))).toEqual(none);
    const filler = (n: number) => Array.from({ length: n }, () => 'v1,AAAA').join(' ');
    expect(verify(signed({ 'webhook-signature': `${filler(15)} ${good}` }))).toEqual({ ok: true, id: 'msg_1' });
    expect(verify(signed({ 'webhook-signature': `${filler(16)} ${good}` }))).toEqual(none);
  });
});

/** The store's record, in memory, as SqliteCallStore / RedisCallStore keep it (expiry aside). */
const HANDLED = 'handled';
class MemoryRecord implements DeliveryRecord {
  /** id → the token of the claim holding it (in progress), or HANDLED. */
  readonly ids = new Map<string, string>();
  readonly calls: string[] = [];
  readonly leases: number[] = [];
  readonly tokens: string[] = [];
  failForget = false;
  failFirst = false;
  failHandled = false;
  async claimDelivery(id: string, token: string, leaseMs: number): Promise<DeliveryClaim> {
    this.calls.push(`claim:${id}`);
    this.leases.push(leaseMs);
    this.tokens.push(token);
    if (this.failFirst) throw new Error('store down');
    const held = this.ids.get(id);
    if (held !== undefined) return held === HANDLED ? 'handled' : 'in_progress';
    this.ids.set(id, token);
    return 'claimed';
  }
  async deliveryHandled(id: string): Promise<void> {
    this.calls.push(`handled:${id}`);
    if (this.failHandled) throw new Error('store down');
    this.ids.set(id, HANDLED);
  }
  async forgetDelivery(id: string, token: string): Promise<void> {
    this.calls.push(`forget:${id}`);
    if (this.failForget) throw new Error('store down');
    if (this.ids.get(id) === token) this.ids.delete(id);
  }
}

type Reply = { readonly status: number; readonly body: string };
const reply = (status: number, body: string): Reply => ({ status, body });

/** A handling the test ends when it chooses. */
function gate() {
  let open: (r: Reply) => void = () => undefined;
  let fail: (e: Error) => void = () => undefined;
  const done = new Promise<Reply>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { done, open, fail };
}

function deliveries(record = new MemoryRecord(), waitMs = 60_000) {
  const recordErrors: [string, string][] = [];
  const waits: string[] = [];
  const d = new WebhookDeliveries<Reply>({
    onWait: (id) => waits.push(id),
    record,
    ttlMs: 600_000,
    leaseMs: 30_000,
    wall: () => NOW_MS,
    waitMs,
    duplicate: () => reply(200, 'duplicate'),
    busy: () => reply(503, 'in_progress'),
    onRecordFailed: (err, step) => recordErrors.push([step, (err as Error).message]),
  });
  return { d, record, recordErrors, waits };
}

/** Lets every pending promise callback run (the store's answers are promises too). */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('webhook deliveries: acted on once, never left unanswered (found 2026-12-05)', () => {
  it('a handled delivery (2xx) is recorded: its redelivery is a duplicate, not handled again', async () => {
    const { d, record } = deliveries();
    let handled = 0;
    expect(await d.deliver('wh_1', async () => (handled++, reply(200, 'accepted')))).toEqual(reply(200, 'accepted'));
    expect(await d.deliver('wh_1', async () => (handled++, reply(200, 'accepted')))).toEqual(reply(200, 'duplicate'));
    expect(handled).toBe(1);
    expect([...record.ids]).toEqual([['wh_1', HANDLED]]);
    expect(d.inFlight).toBe(0);
  });

  it('a failed delivery (non-2xx, or thrown) is forgotten: its redelivery is handled', async () => {
    const { d, record } = deliveries();
    expect(await d.deliver('wh_2', async () => reply(502, 'upstream_unavailable'))).toEqual(reply(502, 'upstream_unavailable'));
    expect(record.ids.has('wh_2')).toBe(false);
    await expect(d.deliver('wh_2', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(record.ids.has('wh_2')).toBe(false);
    expect(await d.deliver('wh_2', async () => reply(200, 'accepted'))).toEqual(reply(200, 'accepted'));
    expect(record.calls).toEqual(['claim:wh_2', 'forget:wh_2', 'claim:wh_2', 'forget:wh_2', 'claim:wh_2', 'handled:wh_2']);
    // 3xx is no acknowledgement either.
    expect(await d.deliver('wh_3', async () => reply(300, 'x'))).toEqual(reply(300, 'x'));
    expect(await d.deliver('wh_3', async () => reply(299, 'ok'))).toEqual(reply(299, 'ok'));
    expect(await d.deliver('wh_3', async () => reply(200, 'never'))).toEqual(reply(200, 'duplicate'));
  });

  it('a redelivery during a handling that then fails is handled itself, not answered "duplicate" (the call would ring on)', async () => {
    const { d, record, waits } = deliveries();
    const first = gate();
    const firstReply = d.deliver('wh_4', () => first.done);
    await settled();
    let second = 0;
    const redelivery = d.deliver('wh_4', async () => (second++, reply(200, 'accepted')));
    await settled();
    // Still waiting on the first: no answer yet, nothing handled twice.
    expect(second).toBe(0);
    expect(d.inFlight).toBe(1);
    expect(waits).toEqual(['wh_4']);
    first.open(reply(502, 'upstream_unavailable'));
    expect(await firstReply).toEqual(reply(502, 'upstream_unavailable'));
    expect(await redelivery).toEqual(reply(200, 'accepted'));
    expect(second).toBe(1);
    expect(record.calls).toEqual(['claim:wh_4', 'forget:wh_4', 'claim:wh_4', 'handled:wh_4']);
    expect([...record.ids]).toEqual([['wh_4', HANDLED]]);
    expect(d.inFlight).toBe(0);
  });

  it('a redelivery during a handling that then succeeds (or throws) shares its outcome', async () => {
    const { d, record } = deliveries();
    const ok = gate();
    const a = d.deliver('wh_5', () => ok.done);
    await settled();
    const b = d.deliver('wh_5', async () => reply(200, 'again'));
    ok.open(reply(200, 'accepted'));
    expect([await a, await b]).toEqual([reply(200, 'accepted'), reply(200, 'duplicate')]);
    // The outcome is shared: the store is asked once.
    expect(record.calls).toEqual(['claim:wh_5', 'handled:wh_5']);
    const bad = gate();
    const c = d.deliver('wh_6', () => bad.done);
    await settled();
    const e = d.deliver('wh_6', async () => reply(200, 'accepted'));
    bad.fail(new Error('accept threw'));
    await expect(c).rejects.toThrow('accept threw');
    expect(await e).toEqual(reply(200, 'accepted'));
  });

  it('two redeliveries waiting on a failed first: one handles it, the other waits for that one', async () => {
    const { d } = deliveries();
    const first = gate();
    const retry = gate();
    const a = d.deliver('wh_7', () => first.done);
    await settled();
    let handled = 0;
    const b = d.deliver('wh_7', () => (handled++, retry.done));
    const c = d.deliver('wh_7', () => (handled++, retry.done));
    first.open(reply(502, 'failed'));
    await a;
    await settled();
    expect(handled).toBe(1);
    retry.open(reply(200, 'accepted'));
    expect((await Promise.all([b, c])).map((r) => r.body).sort()).toEqual(['accepted', 'duplicate']);
    expect(handled).toBe(1);
  });

  it('a redelivery whose first handling outlasts the wait gets a status the sender retries (not 2xx); the first goes on', async () => {
    const { d, record } = deliveries(new MemoryRecord(), 1);
    const first = gate();
    const a = d.deliver('wh_8', () => first.done);
    await settled();
    const busy = await d.deliver('wh_8', async () => reply(200, 'never'));
    expect(busy).toEqual(reply(503, 'in_progress'));
    expect(busy.status >= 300).toBe(true);
    first.open(reply(200, 'accepted'));
    expect(await a).toEqual(reply(200, 'accepted'));
    expect(record.calls).toEqual(['claim:wh_8', 'handled:wh_8']);
    // A wait of zero answers at once.
    const { d: now } = deliveries(new MemoryRecord(), 0);
    const held = gate();
    const h = now.deliver('wh_9', () => held.done);
    await settled();
    expect(await now.deliver('wh_9', async () => reply(200, 'never'))).toEqual(reply(503, 'in_progress'));
    held.open(reply(200, 'accepted'));
    await h;
  });

  it('deliveries waiting on one the store called a duplicate share that answer, without asking the store again', async () => {
    const record = new MemoryRecord();
    record.ids.set('wh_13', HANDLED);
    const { d } = deliveries(record);
    const [a, b] = await Promise.all([d.deliver('wh_13', async () => reply(200, 'x')), d.deliver('wh_13', async () => reply(200, 'y'))]);
    expect([a, b]).toEqual([reply(200, 'duplicate'), reply(200, 'duplicate')]);
    expect(record.calls).toEqual(['claim:wh_13']);
  });

  it('onWait is optional', async () => {
    const d = new WebhookDeliveries<Reply>({ record: new MemoryRecord(), ttlMs: 1, leaseMs: 1, wall: () => NOW_MS, waitMs: 60_000, duplicate: () => reply(200, 'duplicate'), busy: () => reply(503, 'busy'), onRecordFailed: () => undefined });
    const first = gate();
    const a = d.deliver('wh_14', () => first.done);
    await settled();
    const b = d.deliver('wh_14', async () => reply(200, 'never'));
    first.open(reply(200, 'accepted'));
    expect([await a, await b]).toEqual([reply(200, 'accepted'), reply(200, 'duplicate')]);
  });

  it('the wait is bounded by waitMs from when the redelivery came: not before', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { d } = deliveries(new MemoryRecord(), 1000);
    const first = gate();
    const a = d.deliver('wh_16', () => first.done);
    await settled();
    let answer: Reply | null = null;
    const b = d.deliver('wh_16', async () => reply(200, 'never')).then((r) => (answer = r));
    await settled();
    vi.advanceTimersByTime(900);
    await settled();
    expect(answer).toBeNull();
    vi.advanceTimersByTime(200);
    await b;
    expect(answer).toEqual(reply(503, 'in_progress'));
    first.open(reply(200, 'accepted'));
    await a;
  });

  it("a waiter's timer is cleared once the handling it waited for settles", async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { d } = deliveries();
    const first = gate();
    const a = d.deliver('wh_15', () => first.done);
    await settled();
    const b = d.deliver('wh_15', async () => reply(200, 'never'));
    await settled();
    expect(vi.getTimerCount()).toBe(1);
    first.open(reply(200, 'accepted'));
    await Promise.all([a, b]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an id recorded by another instance (not in flight here) is a duplicate; the handler is not called', async () => {
    const record = new MemoryRecord();
    record.ids.set('wh_10', HANDLED);
    const { d, waits } = deliveries(record);
    let handled = 0;
    expect(await d.deliver('wh_10', async () => (handled++, reply(200, 'accepted')))).toEqual(reply(200, 'duplicate'));
    expect(handled).toBe(0);
    expect(record.calls).toEqual(['claim:wh_10']);
    expect(waits).toEqual([]);
  });

  it('a store that fails: an unrecorded delivery is not forgotten; a forget that fails is reported, and the reply still goes out', async () => {
    const record = new MemoryRecord();
    record.failFirst = true;
    const { d, recordErrors } = deliveries(record);
    await expect(d.deliver('wh_11', async () => reply(200, 'accepted'))).rejects.toThrow('store down');
    expect(record.calls).toEqual(['claim:wh_11']);
    expect(d.inFlight).toBe(0);
    record.failFirst = false;
    record.failForget = true;
    expect(await d.deliver('wh_12', async () => reply(502, 'failed'))).toEqual(reply(502, 'failed'));
    expect(recordErrors).toEqual([['forget', 'store down']]);
    expect(d.inFlight).toBe(0);
    // A handled delivery that cannot be recorded as handled is reported; its 2xx answer stands.
    record.failForget = false;
    record.failHandled = true;
    expect(await d.deliver('wh_17', async () => reply(200, 'accepted'))).toEqual(reply(200, 'accepted'));
    expect(recordErrors).toEqual([['forget', 'store down'], ['handled', 'store down']]);
    expect(record.calls.slice(-2)).toEqual(['claim:wh_17', 'handled:wh_17']);
    expect(d.inFlight).toBe(0);
  });

  it('an id in progress on another instance (claimed there, outcome unknown) gets a status the sender retries, never "duplicate"; once forgotten there it is handled here', async () => {
    const record = new MemoryRecord();
    record.ids.set('wh_18', 'token-of-instance-a');
    const { d, waits } = deliveries(record);
    let handled = 0;
    const busy = await d.deliver('wh_18', async () => (handled++, reply(200, 'accepted')));
    expect(busy).toEqual(reply(503, 'in_progress'));
    expect(handled).toBe(0);
    // Its claim is another's: not forgotten from here, nor marked handled.
    expect(record.calls).toEqual(['claim:wh_18']);
    expect(record.ids.get('wh_18')).toBe('token-of-instance-a');
    expect(waits).toEqual([]);
    expect(d.inFlight).toBe(0);
    // Instance A's handling failed and was forgotten: the next redelivery is handled here, with the configured lease.
    await record.forgetDelivery('wh_18', 'token-of-instance-a');
    expect(await d.deliver('wh_18', async () => (handled++, reply(200, 'accepted')))).toEqual(reply(200, 'accepted'));
    expect(handled).toBe(1);
    expect(record.leases).toEqual([30_000, 30_000]);
    expect(record.ids.get('wh_18')).toBe(HANDLED);
  });

  it('each claim has its own token: a failed handling forgets only its own claim', async () => {
    const record = new MemoryRecord();
    const { d } = deliveries(record);
    await d.deliver('wh_19', async () => reply(502, 'failed'));
    await d.deliver('wh_19', async () => reply(502, 'failed'));
    expect(record.tokens).toHaveLength(2);
    expect(record.tokens[0]).not.toBe(record.tokens[1]);
    expect(record.ids.has('wh_19')).toBe(false);
  });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('webhook headers checked before the body is read', () => {
  const sig32 = `v1,${Buffer.alloc(32, 7).toString('base64')}`;
  const good = { 'webhook-id': 'msg_1', 'webhook-timestamp': String(TS), 'webhook-signature': sig32 };
  const problem = (h: Record<string, string>, nowMs = NOW_MS) => webhookHeadersProblem(headers(h), nowMs, 300);
  const without = (name: string) => Object.fromEntries(Object.entries(good).filter(([k]) => k !== name));

  it('plausible headers pass; each missing or malformed one is named as such', () => {
    expect(problem(good)).toBeNull();
    for (const name of Object.keys(good)) expect(problem(without(name)), name).toBe('missing or malformed webhook headers');
    expect(problem({ ...good, 'webhook-id': 'x'.repeat(256) })).toBeNull();
    expect(problem({ ...good, 'webhook-id': 'x'.repeat(257) })).toBe('missing or malformed webhook headers');
    for (const ts of ['', 'abc', '12a', '1234567890123', '-5', ' 1']) expect(problem({ ...good, 'webhook-timestamp': ts }), ts).toBe('missing or malformed webhook headers');
    expect(problem({ ...good, 'webhook-signature': '' })).toBe('missing or malformed webhook headers');
  });

  it('the timestamp must be inside the window, both sides, edges included', () => {
    expect(problem(good, NOW_MS + 300_000)).toBeNull();
    expect(problem(good, NOW_MS - 300_000)).toBeNull();
    expect(problem(good, NOW_MS + 301_000)).toBe('timestamp outside the replay window');
    expect(problem(good, NOW_MS - 301_000)).toBe('timestamp outside the replay window');
  });

  it('needs a v1 entry whose value decodes to an HMAC-SHA256 (32 bytes), among the first 16', () => {
    const bad = 'no valid signature';
    expect(problem({ ...good, 'webhook-signature': `v2,${Buffer.alloc(32).toString('base64')}` })).toBe(bad);
    expect(problem({ ...good, 'webhook-signature': `v1,${Buffer.alloc(31).toString('base64')}` })).toBe(bad);
    expect(problem({ ...good, 'webhook-signature': `v1,${Buffer.alloc(33).toString('base64')}` })).toBe(bad);
    expect(problem({ ...good, 'webhook-signature': 'v1,' })).toBe(bad);
    expect(problem({ ...good, 'webhook-signature': 'v1' })).toBe(bad);
    expect(problem({ ...good, 'webhook-signature': `v2,x ${sig32}` })).toBeNull();
    expect(problem({ ...good, 'webhook-signature': [...Array(15).fill('v2,x'), sig32].join(' ') })).toBeNull();
    expect(problem({ ...good, 'webhook-signature': [...Array(16).fill('v2,x'), sig32].join(' ') })).toBe(bad);
  });
});

describe('calls.sip.webhookSecret validation', () => {
  it('refuses a secret with no key, one that is not base64, or a key too short; takes a whsec_ base64 key with or without padding', async () => {
    const { webhookSecretProblem } = await import('./config.js');
    const { parseConfig } = await import('../config/load.js');
    for (const bad of ['whsec_', '', 'whsec_!!!!', 'whsec_abcde', `whsec_${Buffer.from('short').toString('base64')}`, 'whsec_QUJD===']) expect(webhookSecretProblem(bad), bad).not.toBeNull();
    expect(webhookSecretProblem(SECRET)).toBeNull();
    expect(webhookSecretProblem(SECRET.replace(/=+$/, ''))).toBeNull();
    expect(webhookSecretProblem(KEY.toString('base64'))).toBeNull();
    const config = (webhookSecret: string) => parseConfig({ upstream: { provider: 'simulator' }, calls: { enabled: true, sip: { webhookSecret } }, tenants: {} }, '(test)', {});
    expect(() => config('whsec_')).toThrow(/webhookSecret/);
    expect(() => config(SECRET)).not.toThrow();
  });
});
