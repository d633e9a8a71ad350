import { describe, expect, it } from 'vitest';
import { capturedLog } from '../../test/support/captured-log.js';
import { FakeSession, LoggedSession } from '../../test/support/fake-session.js';
import { ProxyError } from '../protocol/errors.js';
import { ChainTemplate, QUEUED_FRAME_OVERHEAD_BYTES, type ChainSink } from './chain.js';
import { AdmissionTicket, closeWith, CONTINUE, DROP, reject, replace, type Admission, type AdmissionAsk, type AdmissionRequest, type Filter, type FilterFactory, type Verdict } from './filter.js';
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
  forwardInjected(frame: Frame, by: string): void {
    this.out.push(`injected by ${by}:${frame.type}:${frame.bytes.toString()}`);
  }
  reject(_d: 'client' | 'server', error: ProxyError): void {
    this.errors.push(error.code);
  }
  close(error: ProxyError): void {
    this.closed = error.code;
  }
  readonly stoppedFrames: string[] = [];
  stopped(direction: 'client' | 'server', frame: Frame, refusal: ProxyError | null, injectedBy: string | null): void {
    this.stoppedFrames.push(`${injectedBy === null ? direction : `injected by ${injectedBy}`}:${frame.type}:${refusal?.code ?? 'dropped'}`);
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
    // The sink hears of each frame that stopped, with the refusal the client got (the view reads it).
    expect(sink.stoppedFrames).toEqual(['client:b:dropped', 'client:c:session_locked']);
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
    expect(sink.stoppedFrames).toEqual(['client:x:policy_violation']);
  });

  it('the client gone: every filter is told in chain order (a throw is logged, the next still told); awaiting while any filter awaits', () => {
    const told: string[] = [];
    let awaiting = true;
    const chain = new ChainTemplate([
      factory('a', {}, { onClientGone: () => void told.push('a') }),
      factory('thrower', {}, { onClientGone: () => { throw new Error('bug'); }, awaitingUpstream: () => { throw new Error('bug'); } }),
      factory('b', {}, { onClientGone: () => void told.push('b'), awaitingUpstream: () => awaiting }),
      factory('none', {}, {}),
    ]).instantiate(new FakeSession(), new RecordingSink());
    chain.clientGone();
    expect(told).toEqual(['a', 'b']);
    expect(chain.awaitingUpstream()).toBe(true);
    awaiting = false;
    expect(chain.awaitingUpstream()).toBe(false);
    awaiting = true;
    chain.close({ initiator: 'client', code: 1000, reason: '' });
    // Closed: nothing awaits any more, nobody is told.
    expect(chain.awaitingUpstream()).toBe(false);
    chain.clientGone();
    expect(told).toEqual(['a', 'b']);
  });

  it('the upstream ended: filters settle in upstream-frame order (a throw is logged, the next still asked) until one ends the session', () => {
    const asked: string[] = [];
    const ask = (name: string, error: ProxyError | null = null): FilterFactory => factory(name, {}, { onUpstreamEnd: () => (asked.push(name), error) });
    const session = new LoggedSession();
    const chain = new ChainTemplate([
      ask('first'),
      ask('stops', new ProxyError('policy_violation')),
      factory('thrower', {}, { onUpstreamEnd: () => { throw new Error('bug'); } }),
      factory('none', {}, {}),
      ask('last'),
    ]).instantiate(session, new RecordingSink());
    // Upstream frames meet the filters last to first: so does the upstream's end; 'first' is not asked past the error.
    expect(chain.upstreamEnded()?.code).toBe('policy_violation');
    expect(asked).toEqual(['last', 'stops']);
    expect(session.lines.some((l) => l['msg'] === 'onUpstreamEnd threw' && l['filter'] === 'thrower')).toBe(true);
    chain.close({ initiator: 'upstream', code: 1006, reason: '' });
    // Closed: nobody is asked.
    expect(chain.upstreamEnded()).toBeNull();
    expect(asked).toEqual(['last', 'stops']);
  });

  it('the upstream closed: the first filter that can learn why is waited for (a throw or a rejection is logged and counts as nothing)', async () => {
    const asked: string[] = [];
    const learns = (name: string, answer: () => Promise<ProxyError | null> | null): FilterFactory => factory(name, {}, { onUpstreamClosed: (code) => (asked.push(`${name}:${code}`), answer()) });
    const session = new LoggedSession();
    const chain = new ChainTemplate([
      factory('thrower', {}, { onUpstreamClosed: () => { throw new Error('bug'); } }),
      learns('nothing', () => null),
      learns('knows', () => Promise.resolve(new ProxyError('budget_exceeded', { close: 'limitExceeded' }))),
      learns('after', () => Promise.resolve(new ProxyError('policy_violation'))),
    ]).instantiate(session, new RecordingSink());
    expect((await chain.upstreamClosed(1000))?.code).toBe('budget_exceeded');
    expect(asked).toEqual(['nothing:1000', 'knows:1000']);
    expect(session.lines.some((l) => l['msg'] === 'onUpstreamClosed threw' && l['filter'] === 'thrower')).toBe(true);

    const failing = new ChainTemplate([learns('rejects', () => Promise.reject(new Error('store down')))]).instantiate(session, new RecordingSink());
    expect(await failing.upstreamClosed(1000)).toBeNull();
    expect(session.lines.some((l) => l['msg'] === 'onUpstreamClosed failed' && l['filter'] === 'rejects')).toBe(true);
    // Nobody can learn anything: null at once (the close goes on in the same turn); closed: nobody is asked.
    expect(new ChainTemplate([factory('none', {}, {})]).instantiate(session, new RecordingSink()).upstreamClosed(1000)).toBeNull();
    chain.close({ initiator: 'upstream', code: 1000, reason: '' });
    expect(chain.upstreamClosed(1000)).toBeNull();
    expect(asked).toEqual(['nothing:1000', 'knows:1000', 'rejects:1000']);
  });

  it('a frame a server-side filter stops is reported stopped on that side; a forwarded frame is not', () => {
    const sink = new RecordingSink();
    const chain = new ChainTemplate([
      factory('f', { server: ['s', 'kept'] }, { onServer: (f) => (f.type === 's' ? DROP : CONTINUE) }),
    ]).instantiate(new FakeSession(), sink);
    chain.fromServer(ev('kept'));
    chain.fromServer(ev('s'));
    expect(sink.out).toEqual(['server:kept:{"type":"kept"}']);
    expect(sink.stoppedFrames).toEqual(['server:s:dropped']);
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

  describe('a client event a filter makes (inject)', () => {
    const mk = (n: string, seen: string[], verdict: () => Verdict | Promise<Verdict> = () => CONTINUE): FilterFactory =>
      factory(n, { client: '*' }, { onClient: (f) => (seen.push(`${n}:${f.type}`), verdict()) });

    it('runs through the filters after its maker only, then leaves as injected (forwardInjected)', () => {
      const seen: string[] = [];
      const sink = new RecordingSink();
      const chain = new ChainTemplate([mk('a', seen), mk('maker', seen), mk('b', seen), mk('c', seen)]).instantiate(new FakeSession(), sink);
      chain.inject(ev('response.create'), 'maker');
      expect(seen).toEqual(['b:response.create', 'c:response.create']);
      expect(sink.out).toEqual(['injected by maker:response.create:{"type":"response.create"}']);
      // Made by the last filter: nothing runs, it leaves at once.
      chain.inject(ev('response.create'), 'c');
      expect(sink.out).toHaveLength(2);
      // Made by no filter of the chain: every filter decides on it.
      seen.length = 0;
      chain.inject(ev('response.create'), 'relay');
      expect(seen).toEqual(['a:response.create', 'maker:response.create', 'b:response.create', 'c:response.create']);
      expect(sink.out.at(-1)).toBe('injected by relay:response.create:{"type":"response.create"}');
    });

    it('each filter is told who made it (onClient\'s injectedBy), the client\'s own frames null: also behind an async verdict', async () => {
      const told: string[] = [];
      let release!: (v: Verdict) => void;
      const tell = (n: string): FilterFactory => factory(n, { client: '*' }, { onClient: (f, by) => (told.push(`${n}:${f.type}:${by ?? 'client'}`), CONTINUE) });
      const chain = new ChainTemplate([
        tell('locks'),
        factory('slow', { client: ['slow'] }, { onClient: () => new Promise<Verdict>((r) => (release = r)) }),
        tell('meter'),
      ]).instantiate(new FakeSession(), new RecordingSink());
      chain.fromClient(ev('session.update'));
      chain.inject(ev('session.update'), 'locks');
      chain.inject(ev('session.update'), 'client_secret');
      chain.fromClient(ev('slow'));
      chain.inject(ev('session.update'), 'locks');
      release(CONTINUE);
      await new Promise((r) => setTimeout(r, 0));
      expect(told).toEqual([
        'locks:session.update:client',
        'meter:session.update:client',
        'meter:session.update:locks',
        'locks:session.update:client_secret',
        'meter:session.update:client_secret',
        'locks:slow:client',
        'meter:slow:client',
        'meter:session.update:locks',
      ]);
    });

    it('a later filter refusing it: the client is told, and the sink hears it stopped as the maker\'s (not a client create)', () => {
      const seen: string[] = [];
      const sink = new RecordingSink();
      const chain = new ChainTemplate([mk('maker', seen), mk('meter', seen, () => reject(new ProxyError('budget_exceeded')))]).instantiate(new FakeSession(), sink);
      chain.inject(ev('response.create'), 'maker');
      expect(sink.out).toEqual([]);
      expect(sink.errors).toEqual(['budget_exceeded']);
      expect(sink.stoppedFrames).toEqual(['injected by maker:response.create:budget_exceeded']);
    });

    it('waits in order behind a frame on an async verdict, and resumes from the filter after its maker', async () => {
      const seen: string[] = [];
      let release!: (v: Verdict) => void;
      const sink = new RecordingSink();
      const chain = new ChainTemplate([
        mk('maker', seen),
        factory('slow', { client: ['slow'] }, { onClient: () => new Promise<Verdict>((r) => (release = r)) }),
        mk('meter', seen),
      ]).instantiate(new FakeSession(), sink);
      chain.fromClient(ev('slow'));
      chain.inject(ev('response.create'), 'maker');
      chain.fromClient(ev('after'));
      expect(chain.queued('client')).toBe(2);
      release(CONTINUE);
      await new Promise((r) => setTimeout(r, 0));
      expect(sink.out.map((o) => o.split(':').slice(0, 2).join(':'))).toEqual(['client:slow', 'injected by maker:response.create', 'client:after']);
      // The maker saw the client's frames, never its own.
      expect(seen).toEqual(['maker:slow', 'meter:slow', 'meter:response.create', 'maker:after', 'meter:after']);
    });
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

  it('`onRequest` types reach a filter only while its session asks for them, in run order, and stop when it stops', () => {
    const seen: string[] = [];
    const mk = (n: string, wants: FilterFactory['wants']): FilterFactory =>
      factory(n, wants, {
        onClient: (f) => (seen.push(`${n}>${f.type}`), CONTINUE),
        onServer: (f) => (seen.push(`<${n}:${f.type}`), CONTINUE),
      });
    const sink = new RecordingSink();
    const chain = new ChainTemplate([
      mk('first', { server: ['response.output_audio.delta'] }),
      mk('meter', { client: ['response.create'], onRequest: { client: ['input_audio_buffer.append'], server: ['response.output_audio.delta'] } }),
      mk('last', { client: ['input_audio_buffer.append'] }),
    ]).instantiate(new FakeSession(), sink);
    const append = ev('input_audio_buffer.append');
    chain.fromClient(append);
    chain.fromServer(ev('response.output_audio.delta'));
    expect(seen).toEqual(['last>input_audio_buffer.append', '<first:response.output_audio.delta']);
    seen.length = 0;
    chain.watch('meter', 'client', 'input_audio_buffer.append', false); // stopping what was never asked for: nothing happens
    chain.watch('meter', 'client', 'input_audio_buffer.append', true);
    chain.watch('meter', 'client', 'input_audio_buffer.append', true); // asking twice is asking once
    // Other types keep their static routes while a type is asked for.
    chain.fromClient(ev('response.create'));
    expect(seen).toEqual(['meter>response.create']);
    seen.length = 0;
    chain.watch('meter', 'server', 'response.output_audio.delta', true);
    chain.fromClient(append);
    chain.fromServer(ev('response.output_audio.delta'));
    // Declared order client-side, reverse server-side, as for static wants.
    expect(seen).toEqual(['meter>input_audio_buffer.append', 'last>input_audio_buffer.append', '<meter:response.output_audio.delta', '<first:response.output_audio.delta']);
    seen.length = 0;
    chain.watch('meter', 'client', 'input_audio_buffer.append', false);
    chain.fromClient(append);
    chain.fromServer(ev('response.output_audio.delta'));
    expect(seen).toEqual(['last>input_audio_buffer.append', '<meter:response.output_audio.delta', '<first:response.output_audio.delta']);
    chain.watch('meter', 'server', 'response.output_audio.delta', false);
    expect(chain.bypasses('server', 'response.output_audio.delta')).toBe(false); // `first` wants it statically
    expect(sink.out).toHaveLength(7);
  });

  it('an audio type no filter wants bypasses until a filter asks for it; only declared types may be asked for', () => {
    const chain = new ChainTemplate([
      factory('meter', { client: ['response.create'], onRequest: { client: ['input_audio_buffer.append', 'input_audio_buffer.commit'] } }, { onClient: () => DROP }),
    ]).instantiate(new FakeSession(), new RecordingSink());
    // Two types asked for at once: stopping one keeps the other.
    chain.watch('meter', 'client', 'input_audio_buffer.commit', true);
    chain.watch('meter', 'client', 'input_audio_buffer.append', true);
    chain.watch('meter', 'client', 'input_audio_buffer.append', false);
    expect(chain.bypasses('client', 'input_audio_buffer.commit')).toBe(false);
    chain.watch('meter', 'client', 'input_audio_buffer.commit', false);
    expect(chain.bypasses('client', 'input_audio_buffer.commit')).toBe(true);
    expect(chain.bypasses('client', 'input_audio_buffer.append')).toBe(true);
    chain.watch('meter', 'client', 'input_audio_buffer.append', true);
    expect(chain.bypasses('client', 'input_audio_buffer.append')).toBe(false);
    chain.fromClient(ev('input_audio_buffer.append'));
    expect((chain.sink as RecordingSink).out).toEqual([]);
    chain.watch('meter', 'client', 'input_audio_buffer.append', false);
    expect(chain.bypasses('client', 'input_audio_buffer.append')).toBe(true);
    expect(() => chain.watch('meter', 'client', 'session.update', true)).toThrow(/did not declare client session.update/);
    expect(() => chain.watch('meter', 'server', 'input_audio_buffer.append', true)).toThrow(/did not declare server/);
    expect(() => chain.watch('nobody', 'client', 'input_audio_buffer.append', true)).toThrow(/nobody/);
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

/** A session whose log lines are kept (level, message and the fields a test names). */
const loggedSession = (): LoggedSession => new LoggedSession({ level: 'debug' });

const tick = () => new Promise((r) => setTimeout(r, 0));
const verdicts = (reports: Report[]) => reports.filter((r) => r.kind === 'verdict');

describe('admission', () => {
  const request = (model = 'm1'): AdmissionAsk => ({ tenant: new FakeSession().tenant, model, query: new Map([['model', model], ['x', '1']]) });
  const admitting = (name: string, decide: (r: AdmissionRequest) => Admission | Promise<Admission>, seen?: string[]): FilterFactory => ({
    name,
    wants: {},
    create: () => ({}),
    admit: (r) => (seen?.push(`${name}:${r.model}:${r.query.get('model')}`), decide(r)),
  });

  it('runs in chain order; the first refusal wins and later factories are not asked', () => {
    const seen: string[] = [];
    const refusal = new ProxyError('model_not_allowed');
    const t = new ChainTemplate([
      admitting('a', () => null, seen),
      { name: 'no-admit', wants: {}, create: () => ({}) },
      admitting('b', () => refusal, seen),
      admitting('c', () => null, seen),
    ]);
    expect(t.admit(request())).toBe(refusal);
    expect(seen).toEqual(['a:m1:m1', 'b:m1:m1']);
  });

  it('a model rewrite reaches the later factories and the result, with the query updated; the request itself is not changed', () => {
    const seen: string[] = [];
    const req = request('old');
    const t = new ChainTemplate([admitting('alias', () => ({ model: 'new' }), seen), admitting('after', () => null, seen), admitting('same', () => ({ model: 'new' }), seen)]);
    const out = t.admit(req) as AdmissionRequest;
    expect(seen).toEqual(['alias:old:old', 'after:new:new', 'same:new:new']);
    expect(out.model).toBe('new');
    expect([...out.query]).toEqual([['model', 'new'], ['x', '1']]);
    expect(out.tenant).toBe(req.tenant);
    expect(req.model).toBe('old');
    expect(req.query.get('model')).toBe('old');
  });

  it('is synchronous while every factory answers synchronously (the upgrade then stays inside uWS), and returns the request as is, with its ticket, when nothing changes', () => {
    const req = request();
    const tickets: AdmissionTicket[] = [];
    const out = new ChainTemplate([admitting('a', (r) => (tickets.push(r.ticket), null)), admitting('b', (r) => (tickets.push(r.ticket), { model: 'm1' }))]).admit(req) as AdmissionRequest;
    expect(out).toEqual({ ...req, ticket: expect.any(AdmissionTicket) });
    expect(out.query).toBe(req.query);
    // One ticket for the whole admission: every factory saw the one returned.
    expect(tickets).toEqual([out.ticket, out.ticket]);
    expect(tickets[0]).toBe(out.ticket);
    const none = new ChainTemplate([]).admit(req) as AdmissionRequest;
    expect(none).toEqual({ ...req, ticket: expect.any(AdmissionTicket) });
    // Each admission its own ticket.
    expect(none.ticket).not.toBe(out.ticket);
  });

  it('a refusal or a throw gives back, by the ticket, what the factories before it took; an admitted request is left to its caller', async () => {
    const withdrawn: AdmissionTicket[] = [];
    const taking = (name: string): FilterFactory => ({ ...admitting(name, () => null), withdraw: (r) => withdrawn.push(r.ticket) });
    const refusal = new ProxyError('model_not_allowed');
    const seen: AdmissionTicket[] = [];
    expect(new ChainTemplate([taking('a'), admitting('b', (r) => (seen.push(r.ticket), refusal))]).admit(request())).toBe(refusal);
    expect(withdrawn).toEqual([seen[0]]);
    expect(withdrawn[0]).toBe(seen[0]);
    expect(await new ChainTemplate([taking('a'), admitting('b', (r) => (seen.push(r.ticket), Promise.resolve(refusal)))]).admit(request())).toBe(refusal);
    expect(withdrawn[1]).toBe(seen[1]);
    const boom = new Error('boom');
    expect(() =>
      new ChainTemplate([
        taking('a'),
        admitting('b', (r) => {
          seen.push(r.ticket);
          throw boom;
        }),
      ]).admit(request()),
    ).toThrow(boom);
    expect(withdrawn[2]).toBe(seen[2]);
    await expect(new ChainTemplate([taking('a'), admitting('b', (r) => (seen.push(r.ticket), Promise.reject(boom)))]).admit(request())).rejects.toBe(boom);
    expect(withdrawn[3]).toBe(seen[3]);
    expect(withdrawn).toHaveLength(4);
    // Admitted: nothing given back here (the caller opens a session with it, or withdraws it).
    const admitted = new ChainTemplate([taking('a'), admitting('b', () => Promise.resolve(null))]).admit(request());
    expect(await admitted).toMatchObject({ model: 'm1' });
    expect(withdrawn).toHaveLength(4);
  });

  it('a create that throws closes the filters made before it (what they took goes back), then throws', () => {
    const closed: string[] = [];
    const t = new ChainTemplate([
      { name: 'a', wants: {}, create: () => ({ onClose: (info) => void closed.push(`a:${info.initiator}:${info.code}`) }) },
      {
        name: 'b',
        wants: {},
        create: () => {
          throw new Error('b cannot start');
        },
      },
      { name: 'c', wants: {}, create: () => ({ onClose: () => void closed.push('c') }) },
    ]);
    const sink: ChainSink = { forward: () => undefined, forwardInjected: () => undefined, reject: () => undefined, close: () => undefined, stopped: () => undefined };
    expect(() => t.instantiate(new FakeSession(), sink)).toThrow('b cannot start');
    expect(closed).toEqual(['a:proxy:1011']);
  });

  it('an async answer pauses admission; the factories after it run once it settles, with its rewrite', async () => {
    const seen: string[] = [];
    const t = new ChainTemplate([admitting('sync', () => null, seen), admitting('async', () => Promise.resolve({ model: 'm2' }), seen), admitting('after', () => null, seen)]);
    const pending = t.admit(request());
    expect(pending).toBeInstanceOf(Promise);
    expect(seen).toEqual(['sync:m1:m1', 'async:m1:m1']);
    const out = (await pending) as AdmissionRequest;
    expect(seen).toEqual(['sync:m1:m1', 'async:m1:m1', 'after:m2:m2']);
    expect(out.model).toBe('m2');
    expect(out.query.get('model')).toBe('m2');
  });

  it('an async refusal wins, and the factories after it are not asked', async () => {
    const seen: string[] = [];
    const refusal = new ProxyError('model_not_allowed');
    const t = new ChainTemplate([admitting('async', () => Promise.resolve(refusal), seen), admitting('after', () => null, seen)]);
    expect(await t.admit(request())).toBe(refusal);
    expect(seen).toEqual(['async:m1:m1']);
    // After an async admit, a later sync refusal still wins.
    const later = new ChainTemplate([admitting('async', () => Promise.resolve(null)), admitting('refuses', () => refusal)]);
    expect(await later.admit(request())).toBe(refusal);
  });
});

describe('verdicts, one by one', () => {
  it('a replaced frame goes on through the filters that wanted the original, and the next filter sees the replacement', () => {
    const seen: string[] = [];
    const reports: Report[] = [];
    const sink = new RecordingSink();
    const chain = new ChainTemplate([
      observer(reports),
      factory('rewrite', { client: ['a'] }, { onClient: () => replace(ev('b', { by: 'rewrite' })) }),
      factory('next', { client: ['a'] }, { onClient: (f) => (seen.push(`${f.type}:${f.bytes.toString()}`), CONTINUE) }),
      factory('wants-b-only', { client: ['b'] }, { onClient: (f) => (seen.push(`b-only:${f.type}`), CONTINUE) }),
    ]).instantiate(new FakeSession(), sink);
    chain.fromClient(ev('a'));
    expect(seen).toEqual(['b:{"type":"b","by":"rewrite"}']);
    expect(sink.out).toEqual(['client:b:{"type":"b","by":"rewrite"}']);
    expect(verdicts(reports)).toEqual([{ kind: 'verdict', filter: 'rewrite', direction: 'client', eventType: 'a', verdict: 'replace', code: null }]);
  });

  it('drop and reject stop the frame: later filters never see it; each verdict is reported with its code', () => {
    const seen: string[] = [];
    const reports: Report[] = [];
    const sink = new RecordingSink();
    const chain = new ChainTemplate([
      observer(reports),
      factory('first', { server: '*' }, { onServer: (f) => (seen.push(`first:${f.type}`), CONTINUE) }),
      factory('stopper', { server: ['dropme', 'rejectme'] }, { onServer: (f) => (f.type === 'dropme' ? DROP : reject(new ProxyError('guardrail_blocked'))) }),
    ]).instantiate(new FakeSession(), sink);
    chain.fromServer(ev('dropme'));
    chain.fromServer(ev('rejectme'));
    chain.fromServer(ev('other'));
    // Server order is reversed: `stopper` runs before `first`.
    expect(seen).toEqual(['first:other']);
    expect(sink.out).toEqual(['server:other:{"type":"other"}']);
    expect(sink.errors).toEqual(['guardrail_blocked']);
    expect(verdicts(reports)).toEqual([
      { kind: 'verdict', filter: 'stopper', direction: 'server', eventType: 'dropme', verdict: 'drop', code: null },
      { kind: 'verdict', filter: 'stopper', direction: 'server', eventType: 'rejectme', verdict: 'reject', code: 'guardrail_blocked' },
    ]);
  });

  it('a close verdict ends the session: the sink closes with its error, nothing is forwarded or rejected', () => {
    const reports: Report[] = [];
    const sink = new RecordingSink();
    const chain = new ChainTemplate([observer(reports), factory('closer', { client: '*' }, { onClient: () => closeWith(new ProxyError('governance_failed')) })]).instantiate(new FakeSession(), sink);
    chain.fromClient(ev('x'));
    expect(sink.closed).toBe('governance_failed');
    expect(sink.out).toEqual([]);
    expect(sink.errors).toEqual([]);
    expect(verdicts(reports)).toEqual([{ kind: 'verdict', filter: 'closer', direction: 'client', eventType: 'x', verdict: 'close', code: 'governance_failed' }]);
  });

  it('a reject that does not close the session is a reject, not a close', () => {
    const sink = new RecordingSink();
    const chain = new ChainTemplate([factory('f', { client: '*' }, { onClient: () => reject(new ProxyError('session_locked')) })]).instantiate(new FakeSession(), sink);
    chain.fromClient(ev('x'));
    expect(sink.closed).toBeNull();
    expect(sink.errors).toEqual(['session_locked']);
  });
});

describe('async verdicts', () => {
  it('after an async verdict the rest of the filters run, in order, with the frame it returned', async () => {
    const seen: string[] = [];
    let release!: (v: Verdict) => void;
    const sink = new RecordingSink();
    const chain = new ChainTemplate([
      factory('before', { client: '*' }, { onClient: (f) => (seen.push(`before:${f.type}`), CONTINUE) }),
      factory('slow', { client: ['slow'] }, { onClient: () => new Promise<Verdict>((r) => (release = r)) }),
      factory('after', { client: '*' }, { onClient: (f) => (seen.push(`after:${f.type}`), CONTINUE) }),
    ]).instantiate(new FakeSession(), sink);
    chain.fromClient(ev('slow'));
    chain.fromClient(ev('queued'));
    chain.fromServer(ev('server-side'));
    expect(seen).toEqual(['before:slow']);
    expect(chain.queued('client')).toBe(1);
    expect(chain.queued('server')).toBe(0);
    // The bytes waiting, and each queued frame's overhead, count toward the session's memory budget, per direction.
    expect(chain.queuedBytes('client')).toBe(Buffer.byteLength('{"type":"queued"}') + QUEUED_FRAME_OVERHEAD_BYTES);
    expect(chain.queuedBytes('server')).toBe(0);
    release(replace(ev('slow', { checked: true })));
    await tick();
    expect(seen).toEqual(['before:slow', 'after:slow', 'before:queued', 'after:queued']);
    expect(sink.out).toEqual(['server:server-side:{"type":"server-side"}', 'client:slow:{"type":"slow","checked":true}', 'client:queued:{"type":"queued"}']);
    expect(chain.queued('client')).toBe(0);
    expect(chain.queuedBytes('client')).toBe(0);
  });

  it('counts the frames of a type waiting in a direction: the one an async verdict is awaited for and those queued behind it (the relay bounds response.creates in flight by it)', async () => {
    const releases: ((v: Verdict) => void)[] = [];
    const sink = new RecordingSink();
    const chain = new ChainTemplate([factory('slow', { client: ['response.create'] }, { onClient: () => new Promise<Verdict>((r) => releases.push(r)) })]).instantiate(new FakeSession(), sink);
    expect(chain.waiting('client', 'response.create')).toBe(0);
    chain.fromClient(ev('response.create', { n: 1 }));
    chain.fromClient(ev('session.update'));
    chain.fromClient(ev('response.create', { n: 2 }));
    expect(chain.waiting('client', 'response.create')).toBe(2);
    expect(chain.waiting('client', 'session.update')).toBe(1);
    expect(chain.waiting('server', 'response.create')).toBe(0);
    releases.shift()!(CONTINUE);
    await tick();
    // The second create is the one awaited now; the update behind the first has left.
    expect(chain.waiting('client', 'response.create')).toBe(1);
    expect(chain.waiting('client', 'session.update')).toBe(0);
    releases.shift()!(CONTINUE);
    await tick();
    expect(chain.waiting('client', 'response.create')).toBe(0);
    expect(sink.out).toHaveLength(3);
  });

  it('an async drop or reject stops the frame; the queue behind it still drains, including behind a second async verdict', async () => {
    const releases: ((v: Verdict) => void)[] = [];
    const sink = new RecordingSink();
    const chain = new ChainTemplate([factory('slow', { server: ['slow'] }, { onServer: () => new Promise<Verdict>((r) => releases.push(r)) })]).instantiate(new FakeSession(), sink);
    chain.fromServer(ev('slow', { n: 1 }));
    chain.fromServer(ev('slow', { n: 2 }));
    chain.fromServer(ev('fast'));
    expect(chain.queued('server')).toBe(2);
    expect(chain.queuedBytes('server')).toBe(Buffer.byteLength('{"type":"slow","n":2}{"type":"fast"}') + 2 * QUEUED_FRAME_OVERHEAD_BYTES);
    expect(chain.queuedBytes('client')).toBe(0);
    releases[0]!(DROP);
    await tick();
    // The second slow frame is waiting again: `fast` stays queued behind it.
    expect(sink.out).toEqual([]);
    expect(chain.queued('server')).toBe(1);
    expect(chain.queuedBytes('server')).toBe(Buffer.byteLength('{"type":"fast"}') + QUEUED_FRAME_OVERHEAD_BYTES);
    expect(chain.bypasses('server', 'never-wanted')).toBe(false);
    releases[1]!(reject(new ProxyError('guardrail_blocked')));
    await tick();
    expect(sink.errors).toEqual(['guardrail_blocked']);
    expect(sink.out).toEqual(['server:fast:{"type":"fast"}']);
    expect(chain.bypasses('server', 'never-wanted')).toBe(true);
  });

  it('a filter whose promise rejects is a failing filter: reported, and treated per its fail mode', async () => {
    const reports: Report[] = [];
    const sink = new RecordingSink();
    const chain = new ChainTemplate([
      observer(reports),
      factory('open', { client: ['o'] }, { onClient: () => Promise.reject(new Error('bug')) }, 'open'),
      factory('closed', { client: ['c'] }, { onClient: () => Promise.reject(new Error('bug')) }),
    ]).instantiate(new FakeSession(), sink);
    chain.fromClient(ev('o'));
    await tick();
    chain.fromClient(ev('c', { event_id: 'evt_c' }));
    await tick();
    expect(sink.out).toEqual(['client:o:{"type":"o"}']);
    expect(sink.errors).toEqual(['internal_error']);
    expect(reports.filter((r) => r.kind === 'filter_error')).toEqual([
      { kind: 'filter_error', filter: 'open', direction: 'client', eventType: 'o' },
      { kind: 'filter_error', filter: 'closed', direction: 'client', eventType: 'c' },
    ]);
  });

  it('start runs each filter\'s onStart once, in chain order; a failing one ends the session unless it fails open', () => {
    const order: string[] = [];
    const reports: Report[] = [];
    const sink = new RecordingSink();
    const chain = new ChainTemplate([
      observer(reports),
      factory('first', {}, { onStart: () => void order.push('first') }),
      factory('none', {}, {}),
      factory('open', {}, { onStart: () => { order.push('open'); throw new Error('bug'); } }, 'open'),
      factory('last', {}, { onStart: () => void order.push('last') }),
    ]).instantiate(new FakeSession(), sink);
    chain.start();
    expect(order).toEqual(['first', 'open', 'last']);
    expect(sink.closed).toBeNull();
    expect(reports).toEqual([{ kind: 'filter_error', filter: 'open', direction: 'client', eventType: 'session.start' }]);

    const closing = new RecordingSink();
    const later: string[] = [];
    const { log, lines } = capturedLog('debug');
    const failed = new ChainTemplate([
      factory('closed', {}, { onStart: () => { throw new Error('bug'); } }),
      factory('after', {}, { onStart: () => void later.push('after') }),
    ]).instantiate(new FakeSession({ log }), closing);
    failed.start();
    expect(closing.closed).toBe('internal_error');
    expect(lines).toEqual([expect.objectContaining({ msg: 'filter start failed', filter: 'closed', err: expect.objectContaining({ message: 'bug' }) })]);
    // The sink's close ends the chain in a real session; a chain already closed starts nothing more.
    failed.close({ initiator: 'proxy', code: 1011, reason: '' });
    failed.start();
    expect(later).toEqual(['after']);
  });

  it('a session closed while a verdict is pending forwards nothing more, and ignores new frames', async () => {
    let release!: (v: Verdict) => void;
    const sink = new RecordingSink();
    const chain = new ChainTemplate([factory('slow', { client: ['slow'] }, { onClient: () => new Promise<Verdict>((r) => (release = r)) })]).instantiate(new FakeSession(), sink);
    chain.fromClient(ev('slow'));
    chain.fromClient(ev('queued'));
    chain.close({ initiator: 'client', code: 1000, reason: '' });
    expect(chain.closed).toBe(true);
    release(CONTINUE);
    await tick();
    chain.fromClient(ev('late'));
    chain.fromServer(ev('late'));
    expect(sink.out).toEqual([]);
    expect(chain.bypasses('client', 'anything')).toBe(false);
  });
});

describe('failures inside filters never escape', () => {
  it('a throwing fail-closed filter answers internal_error with the event id of a frame it parsed, and none for an unparsed one', () => {
    const errors: ProxyError[] = [];
    const sink: ChainSink = { forward: () => undefined, forwardInjected: () => undefined, reject: (_d, e) => void errors.push(e), close: () => undefined, stopped: () => undefined };
    const chain = new ChainTemplate([
      factory('reads-then-throws', { client: ['read'] }, { onClient: (f) => { f.json(); throw new Error('bug'); } }),
      factory('throws', { client: ['blind'] }, { onClient: () => { throw new Error('bug'); } }),
    ]).instantiate(new FakeSession(), sink);
    chain.fromClient(new Frame('read', Buffer.from('{"type":"read","event_id":"evt_7"}')));
    chain.fromClient(new Frame('read', Buffer.from('{"type":"read","event_id":7}')));
    chain.fromClient(new Frame('blind', Buffer.from('{"type":"blind","event_id":"evt_8"}')));
    expect(errors.map((e) => [e.code, e.eventId])).toEqual([
      ['internal_error', 'evt_7'],
      ['internal_error', null],
      ['internal_error', null],
    ]);
  });

  it('a filter failure is logged with the filter and the event type', () => {
    const session = loggedSession();
    const chain = new ChainTemplate([factory('buggy', { client: '*' }, { onClient: () => { throw new Error('bug'); } })]).instantiate(session, new RecordingSink());
    chain.fromClient(ev('x'));
    expect(session.lines).toMatchObject([{ level: 50, filter: 'buggy', eventType: 'x', msg: 'filter failed', err: { message: 'bug' } }]);
  });

  it('an upstream frame that is not JSON is dropped with a warning, not blamed on the filter', () => {
    const reports: Report[] = [];
    const session = loggedSession();
    const sink = new RecordingSink();
    const chain = new ChainTemplate([observer(reports), factory('reader', { server: '*' }, { onServer: (f) => (f.json(), CONTINUE) })]).instantiate(session, sink);
    chain.fromServer(new Frame('response.done', Buffer.from('{"type":"response.done",')));
    expect(sink.out).toEqual([]);
    expect(sink.errors).toEqual([]);
    // Charged to the relay's parser, not to the filter that happened to read the frame first.
    expect(reports).toEqual([{ kind: 'verdict', filter: 'relay', direction: 'server', eventType: 'response.done', verdict: 'drop', code: null }]);
    expect(session.lines).toMatchObject([{ level: 40, eventType: 'response.done', msg: 'malformed upstream frame dropped' }]);
  });

  it('a client frame that is not JSON gets invalid_json naming its type, even from a fail-open filter', () => {
    const errors: ProxyError[] = [];
    const chain = new ChainTemplate([factory('reader', { client: '*' }, { onClient: (f) => (f.json(), CONTINUE) }, 'open')]).instantiate(new FakeSession(), {
      forward: () => undefined,
      forwardInjected: () => undefined,
      reject: (_d, e) => void errors.push(e),
      close: () => undefined,
      stopped: () => undefined,
    });
    chain.fromClient(Frame.fromClient('session.update', Buffer.from('{"type":"session.update", ')));
    expect(errors.map((e) => [e.code, e.message])).toEqual([['invalid_json', 'The session.update event is not valid JSON.']]);
  });

  it('a client frame that is not JSON is a verdict of the relay (the parser), not of the fail-open filter that read it first; a filter\'s own verdicts keep its name', () => {
    const reports: Report[] = [];
    const chain = new ChainTemplate([
      observer(reports),
      factory('telemetry', { client: '*' }, { onClient: (f) => (f.json(), CONTINUE) }, 'open'),
      factory('guard', { client: '*' }, { onClient: () => ({ kind: 'reject', error: new ProxyError('guardrail_blocked') }) }),
    ]).instantiate(new FakeSession(), new RecordingSink());
    chain.fromClient(Frame.fromClient('conversation.item.create', Buffer.from('{"type":"conversation.item.create","item":{')));
    chain.fromClient(Frame.fromClient('session.update', Buffer.from('{"type":"session.update","event_id":"e1","session":{"instructions":"a","instructions":"b"}}')));
    chain.fromClient(ev('conversation.item.create'));
    expect(verdicts(reports).map((r) => r.kind === 'verdict' && [r.filter, r.eventType, r.verdict, r.code])).toEqual([
      ['relay', 'conversation.item.create', 'reject', 'invalid_json'],
      ['relay', 'session.update', 'reject', 'invalid_event'],
      ['guard', 'conversation.item.create', 'reject', 'guardrail_blocked'],
    ]);
  });

  it('a client frame with two readings is refused as invalid_event at the repeated member', () => {
    const errors: ProxyError[] = [];
    const chain = new ChainTemplate([factory('reader', { client: '*' }, { onClient: (f) => (f.json(), CONTINUE) }, 'open')]).instantiate(new FakeSession(), {
      forward: () => undefined,
      forwardInjected: () => undefined,
      reject: (_d, e) => void errors.push(e),
      close: () => undefined,
      stopped: () => undefined,
    });
    chain.fromClient(Frame.fromClient('session.update', Buffer.from('{"type":"session.update","event_id":"e1","session":{"instructions":"a","instructions":"b"}}')));
    expect(errors.map((e) => [e.code, e.param, e.eventId])).toEqual([['invalid_event', 'session.instructions', 'e1']]);
  });

  it('a throwing onReport, summary or onClose is logged; the other filters still get theirs', () => {
    const session = loggedSession();
    const got: string[] = [];
    let closes = 0;
    const chain = new ChainTemplate([
      factory('bad', {}, {
        onReport: () => { throw new Error('r'); },
        summary: () => { throw new Error('s'); },
        onClose: () => { throw new Error('c'); },
      }),
      factory('good', {}, { onReport: (r) => void got.push(r.kind), summary: () => ({ ok: true }), onClose: () => void closes++ }),
    ]).instantiate(session, new RecordingSink());
    chain.report({ kind: 'upstream_connected', ms: 1 });
    expect(chain.summaries()).toEqual({ ok: true });
    chain.close({ initiator: 'upstream', code: 1000, reason: '' });
    expect(got).toEqual(['upstream_connected']);
    expect(closes).toBe(1);
    expect(session.lines.map((l) => [l['level'], l['msg']])).toEqual([
      [50, 'onReport threw'],
      [50, 'summary threw'],
      [50, 'onClose threw'],
    ]);
    expect(session.lines[0]).toMatchObject({ report: 'upstream_connected', err: { message: 'r' } });
    expect(session.lines[1]).toMatchObject({ err: { message: 's' } });
    expect(session.lines[2]).toMatchObject({ err: { message: 'c' } });
  });
});

describe('dispatch', () => {
  it('a filter sees only the directions and types it asked for, and a filter without the handler is skipped', () => {
    const seen: string[] = [];
    const sink = new RecordingSink();
    const chain = new ChainTemplate([
      factory('client-a', { client: ['a'] }, { onClient: (f) => (seen.push(`client-a:${f.type}`), CONTINUE), onServer: (f) => (seen.push(`client-a<${f.type}`), CONTINUE) }),
      factory('server-all', { server: '*' }, { onClient: (f) => (seen.push(`server-all:${f.type}`), CONTINUE), onServer: (f) => (seen.push(`server-all<${f.type}`), CONTINUE) }),
      factory('all-but', { client: { allBut: ['a'] }, server: { allBut: ['b'] } }, { onClient: (f) => (seen.push(`all-but:${f.type}`), CONTINUE), onServer: (f) => (seen.push(`all-but<${f.type}`), CONTINUE) }),
      factory('no-handler', { client: '*', server: '*' }, {}),
    ]).instantiate(new FakeSession(), sink);
    chain.fromClient(ev('a'));
    chain.fromClient(ev('b'));
    chain.fromServer(ev('a'));
    chain.fromServer(ev('b'));
    expect(seen).toEqual(['client-a:a', 'all-but:b', 'all-but<a', 'server-all<a', 'server-all<b']);
    expect(sink.out).toHaveLength(4);
    expect(chain.bypasses('client', 'a')).toBe(false);
    expect(chain.bypasses('server', 'b')).toBe(false);
  });

  it('a type only an allBut filter excludes bypasses; one a list filter names does not', () => {
    const chain = new ChainTemplate([
      factory('list', { client: ['a'] }, { onClient: () => CONTINUE }),
      factory('all-but', { client: { allBut: ['x'] } }, { onClient: () => CONTINUE }),
    ]).instantiate(new FakeSession(), new RecordingSink());
    expect(chain.bypasses('client', 'x')).toBe(true);
    expect(chain.bypasses('client', 'a')).toBe(false);
    expect(chain.bypasses('client', 'unnamed')).toBe(false);
    const listOnly = new ChainTemplate([factory('list', { client: ['a'] }, { onClient: () => CONTINUE })]).instantiate(new FakeSession(), new RecordingSink());
    expect(listOnly.bypasses('client', 'unnamed')).toBe(true);
    expect(listOnly.bypasses('client', 'a')).toBe(false);
    expect(listOnly.bypasses('server', 'a')).toBe(true);
  });
});
