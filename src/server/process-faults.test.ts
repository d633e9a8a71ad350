import { describe, expect, it } from 'vitest';
import { capturedLog } from '../../test/support/captured-log.js';
import { faultHandlers, faultOrigin } from './process-faults.js';

const roots = { own: ['/srv/proxy/dist/', '/srv/proxy/src/'], custom: ['/etc/policies/'] };

/** An Error whose stack has these frames (newest first). */
function thrown(...frames: string[]): Error {
  const err = new Error('bug');
  err.stack = ['Error: bug', ...frames.map((f) => `    at ${f}`)].join('\n');
  return err;
}

describe('faultOrigin', () => {
  it('custom: a frame of a custom guardrail module (file URL with its reload query, a plain path, or a compiled data: URL) and none of the proxy', () => {
    expect(faultOrigin(thrown('EventTarget.<anonymous> (file:///etc/policies/slow.mjs?v=3:5:56)', '[nodejs.internal.kHybridDispatch] (node:internal/event_target:831:20)', 'process.processImmediate (node:internal/timers:476:21)'), roots)).toBe('custom');
    expect(faultOrigin(thrown('/etc/policies/lib/words.ts:3:9', 'listOnTimeout (node:internal/timers:581:17)'), roots)).toBe('custom');
    expect(faultOrigin(thrown('Timeout._onTimeout (data:text/javascript;base64,aW1wb3J0:12:7)', 'listOnTimeout (node:internal/timers:581:17)'), roots)).toBe('custom');
    // A dependency the guardrail called from its own callback: still the guardrail's fault.
    expect(faultOrigin(thrown('parse (/etc/policies/node_modules/lib/index.js:1:1)', 'async check (file:///etc/policies/slow.mjs:9:3)'), roots)).toBe('custom');
  });

  it("proxy: any frame of the proxy's own code, compiled or as source, wherever it is on the stack", () => {
    expect(faultOrigin(thrown('EventTarget.<anonymous> (file:///etc/policies/slow.mjs?v=3:5:56)', 'Ctx.abort (file:///srv/proxy/dist/policies/custom.js:58:23)'), roots)).toBe('proxy');
    expect(faultOrigin(thrown('RelaySession.tick (/srv/proxy/src/relay/session.ts:237:5)'), roots)).toBe('proxy');
    expect(faultOrigin(thrown('async Promise.all (index 0)', 'file:///srv/proxy/dist/main.js:10:1'), roots)).toBe('proxy');
  });

  it('unknown: only Node or a dependency, a thrown value that is not an Error, an Error without a stack', () => {
    expect(faultOrigin(thrown('Socket.emit (node:events:517:28)', 'Redis.handler (/srv/proxy/node_modules/ioredis/built/Redis.js:1:1)'), roots)).toBe('unknown');
    expect(faultOrigin('a string', roots)).toBe('unknown');
    expect(faultOrigin({ stack: 'at /etc/policies/x.mjs:1:1' }, roots)).toBe('unknown');
    const noStack = new Error('x');
    noStack.stack = undefined;
    expect(faultOrigin(noStack, roots)).toBe('unknown');
    // A look-alike directory is not the proxy's (prefixes end at a separator).
    expect(faultOrigin(thrown('/srv/proxy/distant/x.js:1:1', '/etc/policies-old/x.mjs:1:1'), roots)).toBe('unknown');
  });
});

describe('faultHandlers', () => {
  it("an uncaught exception from custom code is logged and the process goes on; the proxy's own or an unknown one exits 1 after a fatal line", () => {
    const { log, lines } = capturedLog();
    const exits: number[] = [];
    const h = faultHandlers(log, (code) => exits.push(code), roots);
    h.uncaughtException(thrown('EventTarget.<anonymous> (file:///etc/policies/slow.mjs?v=3:5:56)'));
    expect(exits).toEqual([]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, event: 'uncaught_exception', origin: 'custom', fault: { type: 'Error', message: 'bug' } });
    h.uncaughtException(thrown('RelaySession.tick (/srv/proxy/src/relay/session.ts:237:5)'));
    expect(exits).toEqual([1]);
    expect(lines[1]).toMatchObject({ level: 60, event: 'uncaught_exception', origin: 'proxy', msg: 'uncaught exception: the process exits' });
    h.uncaughtException(42);
    expect(exits).toEqual([1, 1]);
    expect(lines[2]).toMatchObject({ level: 60, origin: 'unknown', fault: { type: 'number', message: '42' } });
  });

  it('an unhandled rejection is logged with its origin, whoever left it, and the process goes on', () => {
    const { log, lines } = capturedLog();
    const exits: number[] = [];
    const h = faultHandlers(log, (code) => exits.push(code), roots);
    h.unhandledRejection(thrown('check (file:///etc/policies/slow.mjs:9:3)'));
    h.unhandledRejection(thrown('#settle (file:///srv/proxy/dist/metering/filter.js:1:1)'));
    h.unhandledRejection(undefined);
    expect(exits).toEqual([]);
    expect(lines.map((l) => [l['level'], l['event'], l['origin'], (l['fault'] as { message: string }).message])).toEqual([
      [50, 'unhandled_rejection', 'custom', 'bug'],
      [50, 'unhandled_rejection', 'proxy', 'bug'],
      [50, 'unhandled_rejection', 'unknown', 'undefined'],
    ]);
  });

  it('logs a bounded message and stack, never more', () => {
    const { log, lines } = capturedLog();
    const h = faultHandlers(log, () => undefined, roots);
    const big = new Error('m'.repeat(10_000));
    big.stack = `Error: ${'s'.repeat(10_000)}\n    at /etc/policies/x.mjs:1:1`;
    h.uncaughtException(big);
    const err = lines[0]!['fault'] as { message: string; stack: string };
    expect(err.message).toHaveLength(500);
    expect(err.stack).toHaveLength(4000);
  });
});
