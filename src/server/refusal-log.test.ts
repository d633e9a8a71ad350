import { describe, expect, it } from 'vitest';
import { capturedLog } from '../../test/support/captured-log.js';
import { RefusalLog } from './refusal-log.js';

/**
 * The server logs refused upgrades through RefusalLog (server.ts: reason = the error code, source =
 * the remote address; flush() from its tick, flush(true) at shutdown). A flood of bad keys must
 * write a bounded number of lines, and no refusal may go uncounted.
 */

const INTERVAL = 60_000;

/** A RefusalLog over a real pino logger and a clock the test moves (starting from Date.now()). */
function setup(intervalMs = INTERVAL) {
  const { log, lines } = capturedLog('info');
  let t = Date.now();
  const clock = { now: () => t, advance: (ms: number) => void (t += ms) };
  const refusals = new RefusalLog(log, intervalMs, clock.now);
  const pick = (l: Record<string, unknown>) => {
    const { level, msg, event, reason, source, repeated, intervalMs: iv, ...rest } = l;
    delete rest['time'];
    delete rest['pid'];
    delete rest['hostname'];
    return { level, msg, event, reason, source, repeated, intervalMs: iv, ...rest };
  };
  return { refusals, clock, lines, read: () => lines.map(pick) };
}

const first = (reason: string, source: string, extra: Record<string, unknown> = {}) => ({
  level: 30,
  msg: 'upgrade refused',
  event: 'upgrade_refused',
  reason,
  source,
  repeated: undefined,
  intervalMs: undefined,
  ...extra,
});
const summary = (reason: string, source: string, repeated: number, intervalMs = INTERVAL) => ({
  level: 30,
  msg: 'upgrade refused (repeated)',
  event: 'upgrade_refused',
  reason,
  source,
  repeated,
  intervalMs,
});

describe('RefusalLog', () => {
  it('logs the first refusal of a source and reason at once, with the extra fields', () => {
    const { refusals, read } = setup();
    refusals.refused('invalid_api_key', '10.0.0.1', { browser: true });
    expect(read()).toEqual([first('invalid_api_key', '10.0.0.1', { browser: true })]);
  });

  it('counts later refusals of the same source and reason in the interval, and summarises them in one line when it ends', () => {
    const { refusals, clock, read } = setup();
    for (let i = 0; i < 5; i++) refusals.refused('invalid_api_key', '10.0.0.1');
    expect(read()).toHaveLength(1);
    // The server's tick before the interval ends writes nothing.
    clock.advance(INTERVAL - 1);
    refusals.flush();
    expect(read()).toHaveLength(1);
    clock.advance(1);
    refusals.flush();
    expect(read()).toEqual([first('invalid_api_key', '10.0.0.1'), summary('invalid_api_key', '10.0.0.1', 4)]);
  });

  it('a different reason or a different source is logged on its own at once', () => {
    const { refusals, read } = setup();
    refusals.refused('invalid_api_key', '10.0.0.1');
    refusals.refused('missing_api_key', '10.0.0.1');
    refusals.refused('invalid_api_key', '10.0.0.2');
    refusals.refused('invalid_api_key', '10.0.0.1');
    expect(read()).toEqual([first('invalid_api_key', '10.0.0.1'), first('missing_api_key', '10.0.0.1'), first('invalid_api_key', '10.0.0.2')]);
  });

  it('a source logged once and not repeated gets no summary line', () => {
    const { refusals, clock, read } = setup();
    refusals.refused('not_found', '10.0.0.1');
    refusals.refused('not_found', '10.0.0.2');
    refusals.refused('not_found', '10.0.0.2');
    clock.advance(INTERVAL);
    refusals.flush();
    expect(read()).toEqual([first('not_found', '10.0.0.1'), first('not_found', '10.0.0.2'), summary('not_found', '10.0.0.2', 1)]);
  });

  it('a new interval starts afresh: a source is logged at once again, its count starts over', () => {
    const { refusals, clock, read } = setup();
    refusals.refused('invalid_api_key', '10.0.0.1');
    refusals.refused('invalid_api_key', '10.0.0.1');
    clock.advance(INTERVAL);
    refusals.flush();
    refusals.refused('invalid_api_key', '10.0.0.1');
    refusals.refused('invalid_api_key', '10.0.0.1');
    refusals.refused('invalid_api_key', '10.0.0.1');
    clock.advance(INTERVAL);
    refusals.flush();
    expect(read()).toEqual([
      first('invalid_api_key', '10.0.0.1'),
      summary('invalid_api_key', '10.0.0.1', 1),
      first('invalid_api_key', '10.0.0.1'),
      summary('invalid_api_key', '10.0.0.1', 2),
    ]);
    // Nothing left over: a further flush writes nothing.
    clock.advance(INTERVAL);
    refusals.flush();
    expect(read()).toHaveLength(4);
  });

  it('the interval restarts when it is flushed, not when it was due', () => {
    const { refusals, clock, read } = setup();
    clock.advance(INTERVAL + 30_000);
    refusals.flush();
    refusals.refused('invalid_api_key', '10.0.0.1');
    refusals.refused('invalid_api_key', '10.0.0.1');
    // 30 s after the flush: still the same interval (a restart at the due time would have ended it).
    clock.advance(INTERVAL - 1);
    refusals.flush();
    expect(read()).toHaveLength(1);
    clock.advance(1);
    refusals.flush();
    expect(read()).toHaveLength(2);
  });

  it('without a flush, the next refusal after the interval writes the summary first, then itself', () => {
    const { refusals, clock, read } = setup();
    refusals.refused('invalid_api_key', '10.0.0.1');
    refusals.refused('invalid_api_key', '10.0.0.1');
    clock.advance(INTERVAL - 1);
    refusals.refused('invalid_api_key', '10.0.0.1');
    expect(read()).toHaveLength(1);
    clock.advance(1);
    refusals.refused('invalid_api_key', '10.0.0.1');
    expect(read()).toEqual([first('invalid_api_key', '10.0.0.1'), summary('invalid_api_key', '10.0.0.1', 2), first('invalid_api_key', '10.0.0.1')]);
  });

  it('flush(true) (shutdown) writes the summary before the interval ends and starts a new one', () => {
    const { refusals, clock, read } = setup();
    refusals.refused('server_shutting_down', '10.0.0.1');
    refusals.refused('server_shutting_down', '10.0.0.1');
    clock.advance(10);
    refusals.flush(true);
    expect(read()).toEqual([first('server_shutting_down', '10.0.0.1'), summary('server_shutting_down', '10.0.0.1', 1)]);
    refusals.refused('server_shutting_down', '10.0.0.1');
    expect(read()).toHaveLength(3);
    // The new interval began at the forced flush.
    clock.advance(INTERVAL - 1);
    refusals.refused('server_shutting_down', '10.0.0.1');
    refusals.flush();
    expect(read()).toHaveLength(3);
  });

  it('a flood from many sources is bounded: 1024 sources tracked, the rest counted in one warning', () => {
    const { refusals, clock, lines, read } = setup();
    for (let i = 0; i < 1024; i++) refusals.refused('invalid_api_key', `10.0.${i >> 8}.${i & 255}`);
    expect(lines).toHaveLength(1024);
    // Source 1025 onwards: not logged, counted (a tracked source is still counted as itself).
    for (let i = 0; i < 3000; i++) refusals.refused('invalid_api_key', `10.9.${i >> 8}.${i & 255}`);
    refusals.refused('invalid_api_key', '10.0.0.0');
    refusals.refused('invalid_api_key', '10.0.0.0');
    expect(lines).toHaveLength(1024);
    clock.advance(INTERVAL);
    refusals.flush();
    const out = read().slice(1024);
    expect(out).toEqual([
      summary('invalid_api_key', '10.0.0.0', 2),
      { level: 40, msg: 'upgrade refused (other sources)', event: 'upgrade_refused', reason: undefined, source: 'other', repeated: 3000, intervalMs: INTERVAL },
    ]);
    // The next interval tracks sources again, the overflow count starts over.
    refusals.refused('invalid_api_key', '10.9.0.0');
    expect(read().at(-1)).toEqual(first('invalid_api_key', '10.9.0.0'));
    clock.advance(INTERVAL);
    refusals.flush();
    expect(lines).toHaveLength(1024 + 3);
  });

  it('exactly at the bound: the 1024th source is logged, the 1025th is not', () => {
    const { refusals, lines } = setup();
    for (let i = 0; i < 1023; i++) refusals.refused('r', `s${i}`);
    refusals.refused('r', 's1023');
    expect(lines.at(-1)?.['source']).toBe('s1023');
    refusals.refused('r', 's1024');
    expect(lines).toHaveLength(1024);
  });

  it('a source with spaces in it (reasons are error codes, which have none) is summarised under the right reason and source', () => {
    const { refusals, clock, read } = setup();
    refusals.refused('invalid_request', 'a b c');
    refusals.refused('invalid_request', 'a b c');
    clock.advance(INTERVAL);
    refusals.flush();
    expect(read()).toEqual([first('invalid_request', 'a b c'), summary('invalid_request', 'a b c', 1)]);
  });

  it('the summary reports the interval it was configured with', () => {
    const { refusals, clock, read } = setup(5_000);
    refusals.refused('overloaded', '::1');
    refusals.refused('overloaded', '::1');
    clock.advance(5_000);
    refusals.flush();
    expect(read()[1]).toEqual(summary('overloaded', '::1', 1, 5_000));
  });
});
