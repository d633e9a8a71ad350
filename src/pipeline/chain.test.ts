import { describe, expect, it } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import { ProxyError } from '../protocol/errors.js';
import { ChainTemplate, type ChainSink } from './chain.js';
import { CONTINUE, DROP, reject, replace, type Filter, type FilterFactory, type Verdict } from './filter.js';
import { Frame } from './frame.js';
import type { Report } from './reports.js';

/** A filter that only listens to reports, as telemetry does. */
function observer(into: Report[]): FilterFactory {
  return { name: 'observer', wants: {}, create: () => ({ onReport: (r) => into.push(r) }) };
}

class RecordingSink implements ChainSink {
  readonly out: string[] = [];
  readonly errors: string[] = [];
  closed: string | null = null;
  forward(direction: 'client' | 'server', frame: Frame): void {
    this.out.push(`${direction}:${frame.type}:${frame.bytes.toString()}`);
  }
  reject(_d: 'client' | 'server', error: ProxyError): void {
    this.errors.push(error.code);
  }
  close(error: ProxyError): void {
    this.closed = error.code;
  }
}

const ev = (type: string, extra: Record<string, unknown> = {}) => Frame.fromEvent({ type, ...extra });

function factory(name: string, wants: FilterFactory['wants'], filter: Filter, failMode?: 'open' | 'closed'): FilterFactory {
  return { name, wants, create: () => filter, ...(failMode ? { failMode } : {}) };
}

describe('filter chain', () => {
  it('runs client frames in declared order and server frames in reverse', () => {
    const seen: string[] = [];
    const mk = (n: string): FilterFactory =>
      factory(n, { client: '*', server: '*' }, {
        onClient: () => (seen.push(`${n}>`), CONTINUE),
        onServer: () => (seen.push(`<${n}`), CONTINUE),
      });
    const sink = new RecordingSink();
    const chain = new ChainTemplate([mk('a'), mk('b'), mk('c')]).instantiate(new FakeSession(), sink);
    chain.fromClient(ev('x'));
    chain.fromServer(ev('y'));
    expect(seen).toEqual(['a>', 'b>', 'c>', '<c', '<b', '<a']);
    expect(sink.out).toEqual(['client:x:{"type":"x"}', 'server:y:{"type":"y"}']);
  });

  it('does not call filters for types they did not ask for, and forwards the original bytes', () => {
    let calls = 0;
    const chain = new ChainTemplate([factory('f', { client: ['response.create'] }, { onClient: () => (calls++, CONTINUE) })]).instantiate(
      new FakeSession(),
      new RecordingSink(),
    );
    const bytes = Buffer.from('{"type":"input_audio_buffer.append","audio":"AAAA"}');
    const frame = new Frame('input_audio_buffer.append', bytes);
    const sink = chain.sink as RecordingSink;
    chain.fromClient(frame);
    expect(calls).toBe(0);
    expect(frame.parsed).toBe(false);
    expect(sink.out[0]).toBe(`client:input_audio_buffer.append:${bytes.toString()}`);
    chain.fromClient(ev('response.create'));
    expect(calls).toBe(1);
  });

  it('applies replace, drop and reject verdicts and reports them', () => {
    const reports: Report[] = [];
    const sink = new RecordingSink();
    const chain = new ChainTemplate([
      observer(reports),
      factory('rewriter', { client: ['a'] }, { onClient: () => replace(ev('a', { rewritten: true })) }),
      factory('dropper', { client: ['b'] }, { onClient: () => DROP }),
      factory('rejecter', { client: ['c'] }, { onClient: () => reject(new ProxyError('session_locked')) }),
    ]).instantiate(new FakeSession(), sink);
    chain.fromClient(ev('a'));
    chain.fromClient(ev('b'));
    chain.fromClient(ev('c'));
    expect(sink.out).toEqual(['client:a:{"type":"a","rewritten":true}']);
    expect(sink.errors).toEqual(['session_locked']);
    expect(reports.map((r) => (r.kind === 'verdict' ? `${r.filter}:${r.verdict}` : r.kind))).toEqual([
      'rewriter:replace',
      'dropper:drop',
      'rejecter:reject',
    ]);
  });

  it('a reject whose error closes the session becomes a close', () => {
    const sink = new RecordingSink();
    const chain = new ChainTemplate([factory('f', { client: '*' }, { onClient: () => reject(new ProxyError('policy_violation')) })]).instantiate(
      new FakeSession(),
      sink,
    );
    chain.fromClient(ev('x'));
    expect(sink.closed).toBe('policy_violation');
  });

  it('queues later frames in order behind an async verdict', async () => {
    let release!: (v: Verdict) => void;
    const sink = new RecordingSink();
    const chain = new ChainTemplate([
      factory('slow', { client: ['slow'] }, { onClient: () => new Promise<Verdict>((r) => (release = r)) }),
      factory('after', { client: '*' }, { onClient: () => CONTINUE }),
    ]).instantiate(new FakeSession(), sink);
    chain.fromClient(ev('first'));
    chain.fromClient(ev('slow'));
    chain.fromClient(ev('third'));
    chain.fromClient(ev('fourth'));
    expect(sink.out.map((o) => o.split(':')[1])).toEqual(['first']);
    expect(chain.queued('client')).toBe(2);
    release(CONTINUE);
    await new Promise((r) => setTimeout(r, 0));
    expect(sink.out.map((o) => o.split(':')[1])).toEqual(['first', 'slow', 'third', 'fourth']);
    chain.fromServer(ev('server-unaffected'));
    expect(sink.out.at(-1)).toContain('server-unaffected');
  });

  it('`allBut` wants every type except those listed; a type no filter wants bypasses only while nothing queues', async () => {
    const seen: string[] = [];
    let release!: (v: Verdict) => void;
    const chain = new ChainTemplate([
      factory('observer', { client: { allBut: ['input_audio_buffer.append'] } }, { onClient: (f) => (seen.push(f.type), CONTINUE) }),
      factory('slow', { client: ['slow'] }, { onClient: () => new Promise<Verdict>((r) => (release = r)) }),
    ]).instantiate(new FakeSession(), new RecordingSink());
    expect(chain.bypasses('client', 'input_audio_buffer.append')).toBe(true);
    expect(chain.bypasses('client', 'response.create')).toBe(false);
    expect(chain.bypasses('client', 'some.future_event')).toBe(false);
    expect(chain.bypasses('server', 'response.output_audio.delta')).toBe(true);
    chain.fromClient(ev('input_audio_buffer.append'));
    chain.fromClient(ev('some.future_event'));
    chain.fromClient(ev('slow'));
    expect(seen).toEqual(['some.future_event', 'slow']);
    // Behind an async verdict, even a type nobody wants must queue (order is kept).
    expect(chain.bypasses('client', 'input_audio_buffer.append')).toBe(false);
    release(CONTINUE);
    await new Promise((r) => setTimeout(r, 0));
    expect(chain.bypasses('client', 'input_audio_buffer.append')).toBe(true);
  });

  it('treats a throwing filter per its fail mode and never throws into the relay', () => {
    const reports: Report[] = [];
    const sink = new RecordingSink();
    const boom = (): Verdict => {
      throw new Error('bug');
    };
    const chain = new ChainTemplate([
      observer(reports),
      factory('open', { client: ['o'] }, { onClient: boom }, 'open'),
      factory('closed', { client: ['c'] }, { onClient: boom }),
    ]).instantiate(new FakeSession(), sink);
    chain.fromClient(ev('o'));
    chain.fromClient(ev('c'));
    expect(sink.out).toEqual(['client:o:{"type":"o"}']);
    expect(sink.errors).toEqual(['internal_error']);
    expect(reports.filter((r) => r.kind === 'filter_error')).toHaveLength(2);
  });

  it('delivers reports to filters, merges summaries and runs onClose once', () => {
    const got: string[] = [];
    let closes = 0;
    const chain = new ChainTemplate([
      factory('a', {}, { onReport: (r) => got.push(r.kind), onClose: () => closes++, summary: () => ({ a: 1 }) }),
      factory('b', {}, { summary: () => ({ b: 'two' }) }),
    ]).instantiate(new FakeSession(), new RecordingSink());
    chain.report({ kind: 'upstream_connected', ms: 3 });
    chain.close({ initiator: 'client', code: 1000, reason: '' });
    chain.close({ initiator: 'client', code: 1000, reason: '' });
    expect(got).toEqual(['upstream_connected']);
    expect(closes).toBe(1);
    expect(chain.summaries()).toEqual({ a: 1, b: 'two' });
  });

  it('refuses duplicate filter names at build time', () => {
    expect(() => new ChainTemplate([factory('x', {}, {}), factory('x', {}, {})])).toThrow(/twice/);
  });

  it('answers a frame that sniffs but does not parse with invalid_json, whatever the filter', () => {
    const sink = new RecordingSink();
    const chain = new ChainTemplate([factory('reader', { client: ['session.update'] }, { onClient: (f) => (f.json(), CONTINUE) })]).instantiate(
      new FakeSession(),
      sink,
    );
    chain.fromClient(new Frame('session.update', Buffer.from('{"type":"session.update", ')));
    expect(sink.errors).toEqual(['invalid_json']);
    expect(sink.out).toEqual([]);
  });
});
