/**
 * OutageGuardedStore driven directly over a store whose methods fail on demand (mutation testing,
 * eighteenth session): the end-to-end Redis tests (test/calls/store-redis-outage.test.ts,
 * redteam-18-store-outage-flips.test.ts) go through a few store calls only. Here every method is
 * checked for what it forwards, what it returns, and the kind (read or write) its failure counts
 * as: an outage ends only once a call of every failed kind succeeds again.
 */
import { describe, expect, it } from 'vitest';
import { capturedLog } from '../../test/support/captured-log.js';
import { ProxyError } from '../protocol/errors.js';
import type { CallRecord, CallStore, ClaimedCall, SecretRecord } from './store.js';
import { CallStoreUnavailable, OutageGuardedStore, STORE_RETRY_AFTER_SEC, storeUnavailableError, storeUnavailableReply } from './store-outage.js';

type MethodName = Exclude<keyof CallStore, 'readiness' | 'close' | 'probe'>;

const SECRET: SecretRecord = { session: {}, tenant: 'acme', policy: null, model: 'gpt-realtime', expiresAtMs: 5 };
const CALL: CallRecord = { tenant: 'acme', model: 'gpt-realtime', kind: 'sip', expiresAtMs: 9 };
const CLAIMED: ClaimedCall[] = [{ callId: 'rtc_claimed', record: CALL, tokens: 3 }];

/** What each method answers when it succeeds (distinct values: a result passed back is the store's own). */
const ANSWERS: Record<MethodName, unknown> = {
  putSecret: undefined,
  getSecret: SECRET,
  putCall: undefined,
  getCall: CALL,
  amendCall: undefined,
  renewLeases: ['rtc_lost'],
  claimLapsed: CLAIMED,
  releaseCall: undefined,
  recordTokens: undefined,
  claimDelivery: 'in_progress',
  deliveryHandled: undefined,
  forgetDelivery: undefined,
};

/** The arguments each method is called with in these tests. */
const ARGS: Record<MethodName, readonly unknown[]> = {
  putSecret: ['h1', SECRET, 11],
  getSecret: ['h2', 12],
  putCall: ['rtc_1', CALL, { owner: 'me', untilMs: 20 }, 13],
  getCall: ['rtc_2', 14],
  amendCall: ['rtc_6', { endedByProxy: null }, 18],
  renewLeases: ['me', ['rtc_3'], 21],
  claimLapsed: ['me', 22, 15, 4],
  releaseCall: ['rtc_4', 'me', true],
  recordTokens: ['rtc_5', 'me', 77],
  claimDelivery: ['wh_1', 'tok', 30, 16],
  deliveryHandled: ['wh_2', 31, 17],
  forgetDelivery: ['wh_3', 'tok2'],
};

const READS: readonly MethodName[] = ['getSecret', 'getCall'];
const WRITES: readonly MethodName[] = ['putSecret', 'putCall', 'amendCall', 'renewLeases', 'claimLapsed', 'releaseCall', 'recordTokens', 'claimDelivery', 'deliveryHandled', 'forgetDelivery'];

/** A store that records its calls and throws from the methods named in `failing`. */
class ScriptedStore {
  readonly calls: { method: string; args: unknown[] }[] = [];
  readonly failing = new Set<MethodName>();
  thrown: unknown = new Error('connect ECONNREFUSED 10.0.0.7:6379');
  closed = false;
  readinessText: string | null = null;

  asStore(withReadiness: boolean): CallStore {
    const handler = (method: MethodName) => (...args: unknown[]): Promise<unknown> => {
      this.calls.push({ method, args });
      return this.failing.has(method) ? Promise.reject(this.thrown) : Promise.resolve(ANSWERS[method]);
    };
    const methods = Object.fromEntries([...READS, ...WRITES].map((m) => [m, handler(m)]));
    const store = {
      ...methods,
      close: () => {
        this.closed = true;
        return Promise.resolve();
      },
      ...(withReadiness ? { readiness: () => this.readinessText } : {}),
    };
    return store as unknown as CallStore;
  }
}

function invoke(store: CallStore, method: MethodName): Promise<unknown> {
  const fn = store[method] as (...args: readonly unknown[]) => Promise<unknown>;
  return fn.apply(store, [...ARGS[method]]);
}

function setup(withReadiness = true) {
  const scripted = new ScriptedStore();
  const { log, lines } = capturedLog();
  const guarded = new OutageGuardedStore(scripted.asStore(withReadiness), log);
  const events = (name: string) => lines.filter((l) => l['event'] === name);
  return { scripted, guarded, lines, events };
}

describe('OutageGuardedStore forwards every call', () => {
  for (const method of [...READS, ...WRITES]) {
    it(`${method}: the store gets its arguments and the caller its answer`, async () => {
      const { scripted, guarded, lines } = setup();
      await expect(invoke(guarded, method)).resolves.toEqual(ANSWERS[method]);
      expect(scripted.calls).toEqual([{ method, args: ARGS[method] }]);
      expect(lines).toEqual([]);
    });
  }
});

describe('the kind a failed call counts as', () => {
  // A failed call ends its outage once another call of its kind succeeds; a call of the other kind does not.
  const pairs: [MethodName, MethodName, MethodName][] = [
    ...WRITES.map((m): [MethodName, MethodName, MethodName] => [m, m === 'putSecret' ? 'putCall' : 'putSecret', 'getSecret']),
    ...READS.map((m): [MethodName, MethodName, MethodName] => [m, m === 'getSecret' ? 'getCall' : 'getSecret', 'putSecret']),
  ];
  for (const [failed, sameKind, otherKind] of pairs) {
    it(`${failed} failing: ${otherKind} succeeding leaves the outage on, ${sameKind} succeeding ends it`, async () => {
      const { scripted, guarded, events } = setup();
      scripted.failing.add(failed);
      await expect(invoke(guarded, failed)).rejects.toBeInstanceOf(CallStoreUnavailable);
      scripted.failing.clear();
      await invoke(guarded, otherKind);
      expect(events('calls_store_available')).toHaveLength(0);
      await invoke(guarded, sameKind);
      expect(events('calls_store_available')).toEqual([expect.objectContaining({ failed: 1, level: 40 })]);
    });
  }
});

describe('an outage is logged once, its end once', () => {
  it('the first failure logs the store error; the rest of the outage logs nothing until both kinds succeed', async () => {
    const { scripted, guarded, events, lines } = setup();
    scripted.failing.add('putSecret').add('getSecret');
    for (let i = 0; i < 3; i++) {
      const failure = await invoke(guarded, i === 1 ? 'getSecret' : 'putSecret').catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(CallStoreUnavailable);
      // The store's own text (an internal address) stays in the log, never in what callers get.
      expect((failure as Error).message).toBe('calls store unavailable');
      expect((failure as Error).name).toBe('CallStoreUnavailable');
    }
    expect(lines).toHaveLength(1);
    expect(events('calls_store_unavailable')).toEqual([expect.objectContaining({ level: 50, err: 'connect ECONNREFUSED 10.0.0.7:6379' })]);
    expect(String(lines[0]?.['msg'])).toContain('calls store unavailable');
    scripted.failing.delete('getSecret');
    await invoke(guarded, 'getSecret');
    expect(events('calls_store_available')).toHaveLength(0);
    scripted.failing.clear();
    await invoke(guarded, 'putSecret');
    expect(events('calls_store_available')).toEqual([expect.objectContaining({ failed: 3 })]);
    expect(String(events('calls_store_available')[0]?.['msg'])).toContain('answering again');
    // Over: more successes log nothing, and the next failure is a new outage, counted from one.
    await invoke(guarded, 'putSecret');
    await invoke(guarded, 'getSecret');
    expect(lines).toHaveLength(2);
    scripted.failing.add('getCall');
    await invoke(guarded, 'getCall').catch(() => undefined);
    expect(events('calls_store_unavailable')).toHaveLength(2);
    scripted.failing.clear();
    await invoke(guarded, 'getCall');
    expect(events('calls_store_available').map((l) => l['failed'])).toEqual([3, 1]);
  });

  it('successes before any failure log nothing', async () => {
    const { guarded, lines } = setup();
    await invoke(guarded, 'getSecret');
    await invoke(guarded, 'putSecret');
    expect(lines).toEqual([]);
  });

  it('a store that throws something other than an Error: its text is logged', async () => {
    const { scripted, guarded, events } = setup();
    scripted.thrown = 'READONLY You cannot write against a read only replica.';
    scripted.failing.add('putCall');
    await expect(invoke(guarded, 'putCall')).rejects.toBeInstanceOf(CallStoreUnavailable);
    expect(events('calls_store_unavailable')[0]?.['err']).toBe('READONLY You cannot write against a read only replica.');
  });
});

describe('readiness and close', () => {
  it("readiness is the store's, or null for a store with none", () => {
    const withIt = setup(true);
    expect(withIt.guarded.readiness()).toBeNull();
    withIt.scripted.readinessText = 'calls store: redis not connected';
    expect(withIt.guarded.readiness()).toBe('calls store: redis not connected');
    expect(setup(false).guarded.readiness()).toBeNull();
  });

  it('close leaves the store open (the module closes it)', async () => {
    const { scripted, guarded } = setup();
    await expect(guarded.close()).resolves.toBeUndefined();
    expect(scripted.closed).toBe(false);
  });
});

describe('the 503 answer', () => {
  it('503 calls_store_unavailable, JSON, Retry-After of STORE_RETRY_AFTER_SEC, the fixed message', () => {
    expect(STORE_RETRY_AFTER_SEC).toBe(1);
    const error = storeUnavailableError();
    expect(error).toBeInstanceOf(ProxyError);
    expect(error.code).toBe('calls_store_unavailable');
    const reply = storeUnavailableReply();
    expect(reply.status).toBe(503);
    expect(reply.headers).toEqual({ 'content-type': 'application/json', 'retry-after': '1' });
    expect(JSON.parse(String(reply.body))).toEqual(error.toHttpBody());
    expect(String(reply.body)).toContain('The calls store is unavailable; retry shortly.');
  });

  it('the error given is the one answered', () => {
    const reply = storeUnavailableReply(new ProxyError('calls_store_unavailable', { message: 'custom text' }));
    expect(String(reply.body)).toContain('custom text');
  });
});
