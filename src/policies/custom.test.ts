import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { capturedLog, type LogLine } from '../../test/support/captured-log.js';
import type { Decision, GuardrailContext, GuardrailEvent } from './api.js';
import type { CompiledCustom } from './compile.js';
import { isThenable, runCustom, type CustomSessionInfo, type CustomVerdict } from './custom.js';
import type { FallbackAction } from './schema.js';

/** Runs the task on which a deadline's abort runs (a faked setImmediate runs one fake millisecond later). */
const abortTask = () => vi.advanceTimersByTimeAsync(1);

/**
 * runCustom, the one place policy-supplied code runs: what comes back synchronously stays
 * synchronous, a Promise is raced against the guardrail's deadline (its signal aborted when the
 * deadline passes), and a throw, a rejection or a malformed decision becomes the policy's
 * `onError` action with a warning naming the guardrail. It never throws.
 */

type Evaluate = (event: GuardrailEvent, ctx: GuardrailContext) => unknown;

const TIMEOUT_MS = 50;

const EVENT: GuardrailEvent = {
  source: 'output',
  eventType: 'response.output_text.done',
  text: 'the text under evaluation',
  delta: null,
  final: true,
  responseId: 'resp_1',
  itemId: 'item_1',
  functionName: null,
};

/** A compiled custom entry whose guardrail runs `evaluate`; onTimeout and onError differ so the tests can tell them apart. */
function custom(evaluate: Evaluate, over: { timeoutMs?: number; onTimeout?: FallbackAction; onError?: FallbackAction; options?: Record<string, unknown> } = {}): CompiledCustom {
  return {
    id: 'refunds',
    guardrail: { name: 'no-refund-promises', wants: ['output'], evaluate: evaluate as (event: GuardrailEvent, ctx: GuardrailContext) => Decision | Promise<Decision> },
    sources: new Set(['output']),
    streaming: false,
    mode: 'blocking',
    timeoutMs: over.timeoutMs ?? TIMEOUT_MS,
    onTimeout: over.onTimeout ?? 'cancel_response',
    onError: over.onError ?? 'end_session',
    options: over.options ?? { threshold: 3 },
  };
}

function session(): { info: CustomSessionInfo; lines: LogLine[] } {
  const { log, lines } = capturedLog();
  return { info: { sessionId: 'sess_1', tenantId: 'acme', model: 'gpt-realtime', policy: 'support', log }, lines };
}

/** The verdict of a pending run, or 'pending' while it has not settled. */
function watch(v: CustomVerdict | Promise<CustomVerdict>): () => CustomVerdict | 'pending' {
  expect(isThenable(v)).toBe(true);
  let out: CustomVerdict | 'pending' = 'pending';
  void (v as Promise<CustomVerdict>).then((x) => (out = x));
  return () => out;
}

/** What the tests read of a warning line. */
const warning = (l: LogLine) => ({ level: l['level'], guardrail: l['guardrail'], msg: l['msg'] });

describe('runCustom: synchronous guardrails', () => {
  it('returns every valid action synchronously, as a verdict without text; the reason is not carried', () => {
    const { info, lines } = session();
    for (const action of ['allow', 'log', 'block', 'cancel_response', 'end_session'] as const) {
      const v = runCustom(custom(() => ({ action, reason: 'why' })), EVENT, info, new Map());
      expect(isThenable(v)).toBe(false);
      expect(v).toStrictEqual({ action, text: null, via: 'verdict' });
    }
    expect(lines).toEqual([]);
  });

  it('a redact carries its replacement text (an empty one too)', () => {
    const { info, lines } = session();
    expect(runCustom(custom(() => ({ action: 'redact', text: '[gone]', reason: 'pii' })), EVENT, info, new Map())).toStrictEqual({ action: 'redact', text: '[gone]', via: 'verdict' });
    expect(runCustom(custom(() => ({ action: 'redact', text: '' })), EVENT, info, new Map())).toStrictEqual({ action: 'redact', text: '', via: 'verdict' });
    expect(lines).toEqual([]);
  });

  it.each<[string, () => unknown]>([
    ['null', () => null],
    ['undefined', () => undefined],
    ['a bare action string', () => 'allow'],
    ['a number', () => 1],
    ['an object without action', () => ({ reason: 'x' })],
    ['an unknown action', () => ({ action: 'deny' })],
    ['an action in the wrong case', () => ({ action: 'ALLOW' })],
    ['a non-string action', () => ({ action: 1 })],
    ['an action inherited from Object.prototype', () => ({ action: 'toString' })],
    ['a redact without text', () => ({ action: 'redact' })],
    ['a redact with a non-string text', () => ({ action: 'redact', text: 42 })],
    ['a function carrying an action', () => Object.assign(() => undefined, { action: 'allow' })],
    ['a function carrying then', () => Object.assign(() => undefined, { then: () => undefined, action: 'allow' })],
    ['an object whose then is not a function', () => ({ then: 1, action: 'deny' })],
  ])('a malformed decision (%s) gives onError with a warning, synchronously', (_, answer) => {
    const { info, lines } = session();
    const v = runCustom(custom(answer), EVENT, info, new Map());
    expect(isThenable(v)).toBe(false);
    expect(v).toStrictEqual({ action: 'end_session', text: null, via: 'error' });
    expect(lines.map(warning)).toEqual([{ level: 40, guardrail: 'refunds', msg: 'custom guardrail returned an invalid decision' }]);
  });

  it('an object with a non-function then is a decision, not a Promise', () => {
    const { info, lines } = session();
    expect(runCustom(custom(() => ({ then: 'later', action: 'block' })), EVENT, info, new Map())).toStrictEqual({ action: 'block', text: null, via: 'verdict' });
    expect(lines).toEqual([]);
  });

  it('a throw gives onError at once, with the error logged', () => {
    const { info, lines } = session();
    const v = runCustom(custom(() => { throw new TypeError('boom'); }, { onError: 'log' }), EVENT, info, new Map());
    expect(v).toStrictEqual({ action: 'log', text: null, via: 'error' });
    expect(lines.map(warning)).toEqual([{ level: 40, guardrail: 'refunds', msg: 'custom guardrail threw' }]);
    expect(lines[0]!['err']).toMatchObject({ type: 'TypeError', message: 'boom' });
  });

  it('a thrown non-Error is logged as thrown', () => {
    const { info, lines } = session();
    expect(runCustom(custom(() => { throw 'plain string'; }, { onError: 'allow' }), EVENT, info, new Map())).toStrictEqual({ action: 'allow', text: null, via: 'error' });
    expect(lines.map(warning)).toEqual([{ level: 40, guardrail: 'refunds', msg: 'custom guardrail threw' }]);
    expect(lines[0]!['err']).toBe('plain string');
  });

  it('the fallback is the entry’s own onError action, whichever it is', () => {
    const { info } = session();
    for (const onError of ['allow', 'log', 'block', 'cancel_response', 'end_session'] as const) {
      expect(runCustom(custom(() => null, { onError }), EVENT, info, new Map())).toStrictEqual({ action: onError, text: null, via: 'error' });
    }
  });
});

describe('runCustom: the context a guardrail sees', () => {
  it('carries the session, the entry options, the logger and the per-guardrail state; the event is passed as is', () => {
    const { info } = session();
    const state = new Map<string, unknown>([['seen', 1]]);
    const options = { threshold: 7 };
    const seen: { event: GuardrailEvent; ctx: GuardrailContext }[] = [];
    runCustom(custom((event, ctx) => (seen.push({ event, ctx }), { action: 'allow' }), { options }), EVENT, info, state);
    expect(seen).toHaveLength(1);
    const { event, ctx } = seen[0]!;
    expect(event).toBe(EVENT);
    expect(ctx.sessionId).toBe('sess_1');
    expect(ctx.tenantId).toBe('acme');
    expect(ctx.model).toBe('gpt-realtime');
    expect(ctx.policy).toBe('support');
    expect(ctx.options).toBe(options);
    expect(ctx.log).toBe(info.log);
    expect(ctx.state).toBe(state);
  });

  it('the state persists through the caller’s map; a guardrail can count across calls', () => {
    const { info } = session();
    const state = new Map<string, unknown>();
    const c = custom((_, ctx) => {
      const n = ((ctx.state.get('n') as number | undefined) ?? 0) + 1;
      ctx.state.set('n', n);
      return n >= 3 ? { action: 'block' } : { action: 'allow' };
    });
    expect(runCustom(c, EVENT, info, state)).toMatchObject({ action: 'allow' });
    expect(runCustom(c, EVENT, info, state)).toMatchObject({ action: 'allow' });
    expect(runCustom(c, EVENT, info, state)).toMatchObject({ action: 'block' });
    expect(state.get('n')).toBe(3);
  });

  it('the signal is one object per run, not aborted for a synchronous answer', () => {
    const { info } = session();
    let first: AbortSignal | null = null;
    let second: AbortSignal | null = null;
    runCustom(custom((_, ctx) => ((first = ctx.signal), (second = ctx.signal), { action: 'allow' })), EVENT, info, new Map());
    expect(first).toBeInstanceOf(AbortSignal);
    expect(second).toBe(first);
    expect(first!.aborted).toBe(false);
  });
});

describe('runCustom: asynchronous guardrails and the deadline', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a verdict that arrives before the deadline is used; the deadline passing later changes nothing', async () => {
    const { info, lines } = session();
    let ctx: GuardrailContext | null = null;
    const verdict = watch(
      runCustom(
        custom((_, c) => {
          ctx = c;
          return new Promise((resolve) => setTimeout(() => resolve({ action: 'redact', text: '[x]' }), TIMEOUT_MS - 1));
        }),
        EVENT,
        info,
        new Map(),
      ),
    );
    const signal = ctx!.signal;
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS - 2);
    expect(verdict()).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(verdict()).toStrictEqual({ action: 'redact', text: '[x]', via: 'verdict' });
    await vi.advanceTimersByTimeAsync(10 * TIMEOUT_MS);
    expect(verdict()).toStrictEqual({ action: 'redact', text: '[x]', via: 'verdict' });
    expect(signal.aborted).toBe(false);
    expect(ctx!.signal.aborted).toBe(false);
    expect(lines).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('at the deadline: onTimeout, the signal aborted with its reason, one warning with the deadline', async () => {
    const { info, lines } = session();
    let ctx: GuardrailContext | null = null;
    const aborts: unknown[] = [];
    const verdict = watch(
      runCustom(
        custom(
          (_, c) => {
            ctx = c;
            c.signal.addEventListener('abort', () => aborts.push(c.signal.reason));
            return new Promise(() => undefined);
          },
          { timeoutMs: 200, onTimeout: 'block' },
        ),
        EVENT,
        info,
        new Map(),
      ),
    );
    await vi.advanceTimersByTimeAsync(199);
    expect(verdict()).toBe('pending');
    expect(ctx!.signal.aborted).toBe(false);
    expect(lines).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(verdict()).toStrictEqual({ action: 'block', text: null, via: 'timeout' });
    // The signal is aborted on a task of its own (its listeners run with no proxy frame on the stack).
    expect(ctx!.signal.aborted).toBe(false);
    await abortTask();
    expect(ctx!.signal.aborted).toBe(true);
    expect(aborts).toHaveLength(1);
    expect(aborts[0]).toBeInstanceOf(Error);
    expect((aborts[0] as Error).message).toBe('guardrail deadline passed');
    expect(ctx!.signal.reason).toBe(aborts[0]);
    expect(lines.map((l) => ({ ...warning(l), timeoutMs: l['timeoutMs'] }))).toEqual([{ level: 40, guardrail: 'refunds', msg: 'custom guardrail timed out', timeoutMs: 200 }]);
  });

  it('a guardrail that never read its signal still times out', async () => {
    const { info, lines } = session();
    const verdict = watch(runCustom(custom(() => new Promise(() => undefined), { onTimeout: 'allow' }), EVENT, info, new Map()));
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);
    expect(verdict()).toStrictEqual({ action: 'allow', text: null, via: 'timeout' });
    expect(lines.map(warning)).toEqual([{ level: 40, guardrail: 'refunds', msg: 'custom guardrail timed out' }]);
  });

  it('a verdict after the deadline is ignored, and logs nothing more', async () => {
    const { info, lines } = session();
    let late: ((d: Decision) => void) | null = null;
    const p = runCustom(custom(() => new Promise<Decision>((resolve) => (late = resolve))), EVENT, info, new Map());
    const verdict = watch(p);
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);
    late!({ action: 'end_session' });
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);
    expect(verdict()).toStrictEqual({ action: 'cancel_response', text: null, via: 'timeout' });
    await expect(p).resolves.toStrictEqual({ action: 'cancel_response', text: null, via: 'timeout' });
    expect(lines.map(warning)).toEqual([{ level: 40, guardrail: 'refunds', msg: 'custom guardrail timed out' }]);
  });

  it('a rejection gives onError with the error logged; the deadline passing later changes nothing', async () => {
    const { info, lines } = session();
    let ctx: GuardrailContext | null = null;
    const verdict = watch(
      runCustom(
        custom((_, c) => {
          ctx = c;
          return new Promise((_resolve, reject) => setTimeout(() => reject(new RangeError('upstream down')), 10));
        }),
        EVENT,
        info,
        new Map(),
      ),
    );
    const signal = ctx!.signal;
    await vi.advanceTimersByTimeAsync(10);
    expect(verdict()).toStrictEqual({ action: 'end_session', text: null, via: 'error' });
    await vi.advanceTimersByTimeAsync(10 * TIMEOUT_MS);
    expect(verdict()).toStrictEqual({ action: 'end_session', text: null, via: 'error' });
    expect(signal.aborted).toBe(false);
    expect(lines.map(warning)).toEqual([{ level: 40, guardrail: 'refunds', msg: 'custom guardrail failed' }]);
    expect(lines[0]!['err']).toMatchObject({ type: 'RangeError', message: 'upstream down' });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a malformed asynchronous decision gives onError with a warning; the deadline passing later changes nothing', async () => {
    const { info, lines } = session();
    const verdict = watch(runCustom(custom(async () => ({ action: 'redact' }), { onError: 'block' }), EVENT, info, new Map()));
    await vi.advanceTimersByTimeAsync(0);
    expect(verdict()).toStrictEqual({ action: 'block', text: null, via: 'error' });
    await vi.advanceTimersByTimeAsync(10 * TIMEOUT_MS);
    expect(verdict()).toStrictEqual({ action: 'block', text: null, via: 'error' });
    expect(lines.map(warning)).toEqual([{ level: 40, guardrail: 'refunds', msg: 'custom guardrail returned an invalid decision' }]);
  });

  it('every valid asynchronous decision is used as is, without a warning', async () => {
    const { info, lines } = session();
    for (const d of [{ action: 'allow' }, { action: 'log' }, { action: 'block' }, { action: 'cancel_response' }, { action: 'end_session' }] as const) {
      const verdict = watch(runCustom(custom(async () => d), EVENT, info, new Map()));
      await vi.advanceTimersByTimeAsync(0);
      expect(verdict()).toStrictEqual({ action: d.action, text: null, via: 'verdict' });
    }
    expect(lines).toEqual([]);
  });

  it('a thenable that is not a Promise is awaited; one whose then throws is a failure', async () => {
    const { info, lines } = session();
    const ok = watch(runCustom(custom(() => ({ then: (resolve: (d: Decision) => void) => resolve({ action: 'log' }) })), EVENT, info, new Map()));
    const bad = watch(
      runCustom(
        custom(() => ({
          then: () => {
            throw new Error('bad thenable');
          },
        })),
        EVENT,
        info,
        new Map(),
      ),
    );
    await vi.advanceTimersByTimeAsync(0);
    expect(ok()).toStrictEqual({ action: 'log', text: null, via: 'verdict' });
    expect(bad()).toStrictEqual({ action: 'end_session', text: null, via: 'error' });
    expect(lines.map(warning)).toEqual([{ level: 40, guardrail: 'refunds', msg: 'custom guardrail failed' }]);
    expect(lines[0]!['err']).toMatchObject({ message: 'bad thenable' });
  });

  it('each run has its own deadline and signal', async () => {
    const { info, lines } = session();
    const signals: AbortSignal[] = [];
    const c = custom((_, ctx) => (signals.push(ctx.signal), new Promise(() => undefined)), { timeoutMs: 100 });
    const a = watch(runCustom(c, EVENT, info, new Map()));
    await vi.advanceTimersByTimeAsync(60);
    const b = watch(runCustom(c, EVENT, info, new Map()));
    await vi.advanceTimersByTimeAsync(40);
    expect(a()).toStrictEqual({ action: 'cancel_response', text: null, via: 'timeout' });
    expect(b()).toBe('pending');
    await abortTask();
    expect(signals.map((s) => s.aborted)).toEqual([true, false]);
    await vi.advanceTimersByTimeAsync(60);
    expect(b()).toStrictEqual({ action: 'cancel_response', text: null, via: 'timeout' });
    await abortTask();
    expect(signals.map((s) => s.aborted)).toEqual([true, true]);
    expect(lines).toHaveLength(2);
  });
});

describe('isThenable', () => {
  it('is true only for objects with a callable then', () => {
    expect(isThenable(Promise.resolve(1))).toBe(true);
    expect(isThenable({ then: () => undefined })).toBe(true);
    expect(isThenable(null)).toBe(false);
    expect(isThenable(undefined)).toBe(false);
    expect(isThenable(1)).toBe(false);
    expect(isThenable('then')).toBe(false);
    expect(isThenable({})).toBe(false);
    expect(isThenable({ then: 'x' })).toBe(false);
    expect(isThenable(Object.assign(() => undefined, { then: () => undefined }))).toBe(false);
  });
});

/** A decision whose `action` getter throws: reading it runs the guardrail's code. */
const throwingAction = () => ({ get action(): string { throw new Error('getter'); } });
const ON_ERROR: CustomVerdict = { action: 'end_session', text: null, via: 'error' };

describe('runCustom with decisions whose getters throw (found 2026-12-05)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sync: a decision whose action getter throws gives onError', () => {
    expect(() => runCustom(custom(throwingAction), EVENT, session().info, new Map())).not.toThrow();
    expect(runCustom(custom(throwingAction), EVENT, session().info, new Map())).toStrictEqual(ON_ERROR);
  });

  it('sync: a decision whose then getter throws gives onError', () => {
    const d = () => ({ action: 'allow', get then(): unknown { throw new Error('then getter'); } });
    expect(() => runCustom(custom(d), EVENT, session().info, new Map())).not.toThrow();
    // Not a Promise: read as the decision it is, synchronously.
    expect(runCustom(custom(d), EVENT, session().info, new Map())).toStrictEqual({ action: 'allow', text: null, via: 'verdict' });
  });

  it('async: a resolved decision whose action getter throws still settles by the deadline', async () => {
    vi.useFakeTimers();
    const p = runCustom(custom(async () => throwingAction()), EVENT, session().info, new Map()) as Promise<CustomVerdict>;
    let out: CustomVerdict | 'pending' = 'pending';
    void p.then((v) => (out = v));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(out).not.toBe('pending');
  });

  it('a thrown value whose message getter throws (pino err serializer) gives onError', () => {
    const thrower = () => { throw { get message(): string { throw new Error('message getter'); } }; };
    expect(() => runCustom(custom(thrower), EVENT, session().info, new Map())).not.toThrow();
    // Logged by its type alone, with the guardrail and the message.
    const { info, lines } = session();
    expect(runCustom(custom(thrower), EVENT, info, new Map())).toStrictEqual(ON_ERROR);
    expect(lines.map((l) => ({ guardrail: l['guardrail'], err: l['err'], msg: l['msg'] }))).toEqual([{ guardrail: 'refunds', err: { type: 'object', unreadable: true }, msg: 'custom guardrail threw' }]);
  });
});
