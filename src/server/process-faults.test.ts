import { describe, expect, it, vi } from 'vitest';
import { capturedLog } from '../../test/support/captured-log.js';
import { faultHandlers, faultOrigin, installProcessFaultHandlers, noteCustomModule } from './process-faults.js';

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
    expect(lines[0]).toMatchObject({ level: 50, event: 'uncaught_exception', origin: 'custom', fault: { type: 'Error', message: 'bug' }, msg: 'custom guardrail code threw outside any call of the proxy: logged, the proxy goes on' });
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

describe('faultOrigin: reading stack lines', () => {
  it('only frame lines count: a message that names a file is not a frame', () => {
    const err = new Error('failed to load file:///srv/proxy/dist/x.js');
    err.stack = 'Error: failed to load (file:///srv/proxy/dist/x.js:1:1)\n    at /etc/policies/x.mjs:1:1';
    expect(faultOrigin(err, roots)).toBe('custom');
  });

  it('file URLs are compared as paths: percent-decoded, the reload query and the position dropped', () => {
    const spaced = { own: ['/srv/my proxy/dist/'], custom: ['/etc/my policies/'] };
    expect(faultOrigin(thrown('f (file:///srv/my%20proxy/dist/relay/session.js:1:2)'), spaced)).toBe('proxy');
    expect(faultOrigin(thrown('f (file:///etc/my%20policies/x.mjs?v=7:3:4)'), spaced)).toBe('custom');
    // Not a valid file URL: compared as it is.
    expect(faultOrigin(thrown('f (file://host/etc/my policies/x.mjs:1:1)'), spaced)).toBe('unknown');
  });

  it('the innermost parenthesised location of a frame is its file (an async frame, a frame without a function name)', () => {
    expect(faultOrigin(thrown('async Promise.all (index 0)', 'async run (/srv/proxy/dist/main.js:3:3)'), roots)).toBe('proxy');
    expect(faultOrigin(thrown('/etc/policies/x.mjs:1:1'), roots)).toBe('custom');
    expect(faultOrigin(thrown('new Thing (/etc/policies/x.mjs:1:1)'), roots)).toBe('custom');
  });

  it('any custom root counts, not only the first', () => {
    expect(faultOrigin(thrown('/opt/more-policies/y.mjs:1:1'), { own: roots.own, custom: ['/etc/policies/', '/opt/more-policies/'] })).toBe('custom');
  });

  it("by default: this package's dist/ and src/ are the proxy's, and a loaded custom module's directory is custom code", () => {
    const own = new URL('../', import.meta.url).pathname; // this package's src/
    const dist = new URL('../../dist/', import.meta.url).pathname;
    expect(faultOrigin(thrown(`f (${own}relay/session.ts:1:1)`))).toBe('proxy');
    expect(faultOrigin(thrown(`f (file://${dist}relay/session.js:1:1)`))).toBe('proxy');
    expect(faultOrigin(thrown('f (/var/lib/guardrails-for-test/x.mjs:1:1)'))).toBe('unknown');
    noteCustomModule('/var/lib/guardrails-for-test/x.mjs');
    expect(faultOrigin(thrown('f (/var/lib/guardrails-for-test/lib/y.mjs:1:1)'))).toBe('custom');
    expect(faultOrigin(thrown('f (/var/lib/guardrails-for-test/x.mjs:1:1)', `g (${own}policies/custom.ts:9:9)`))).toBe('proxy');
    // Directories end at a separator: a sibling whose name starts alike is neither.
    expect(faultOrigin(thrown('f (/var/lib/guardrails-for-test-2/x.mjs:1:1)'))).toBe('unknown');
    expect(faultOrigin(thrown(`f (${dist.replace(/\/$/, '')}-old/x.js:1:1)`))).toBe('unknown');
    expect(faultOrigin(thrown(`f (${own.replace(/\/$/, '')}-old/x.js:1:1)`))).toBe('unknown');
    // The package's own policies/ (the examples shipped beside the proxy) are custom code, not the proxy's.
    const shipped = new URL('../../policies/custom/', import.meta.url).pathname;
    noteCustomModule(`${shipped}shouting.ts`);
    expect(faultOrigin(thrown(`f (${shipped}shouting.ts:1:1)`))).toBe('custom');
  });

  it('the last parenthesised group of a frame is its location (a name may carry parentheses of its own)', () => {
    expect(faultOrigin(thrown('Object.check (x) [as run] (/srv/proxy/dist/x.js:1:1)'), roots)).toBe('proxy');
    expect(faultOrigin(thrown('Object.check (/srv/proxy/dist/x.js) [as run] (/etc/policies/x.mjs:1:1)'), roots)).toBe('custom');
  });
});

describe('installProcessFaultHandlers', () => {
  it('installs one handler for each fault, once per process; an uncaught exception of the proxy exits 1', () => {
    const before = { rejection: process.listeners('unhandledRejection'), exception: process.listeners('uncaughtException') };
    const { log, lines } = capturedLog();
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    try {
      installProcessFaultHandlers(log);
      installProcessFaultHandlers(log);
      const added = {
        rejection: process.listeners('unhandledRejection').filter((l) => !before.rejection.includes(l)),
        exception: process.listeners('uncaughtException').filter((l) => !before.exception.includes(l)),
      };
      expect([added.rejection.length, added.exception.length]).toEqual([1, 1]);
      (added.rejection[0] as (reason: unknown) => void)('a reason that is not an Error, longer than five hundred characters: ' + 'x'.repeat(600));
      expect(lines[0]).toMatchObject({ level: 50, event: 'unhandled_rejection', origin: 'unknown', fault: { type: 'string' }, msg: 'unhandled promise rejection: logged, the proxy goes on' });
      expect((lines[0]!['fault'] as { message: string }).message).toHaveLength(500);
      (added.exception[0] as (err: unknown) => void)(thrown(`f (${new URL('./server.ts', import.meta.url).pathname}:1:1)`));
      expect(exit).toHaveBeenCalledWith(1);
      expect(lines[1]).toMatchObject({ level: 60, origin: 'proxy' });
      for (const l of added.rejection) process.off('unhandledRejection', l as never);
      for (const l of added.exception) process.off('uncaughtException', l as never);
    } finally {
      exit.mockRestore();
    }
  });
});
