import pino from 'pino';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { systemClock } from '../../src/main.js';
import { ChainTemplate } from '../../src/pipeline/chain.js';
import type { Clock, Filter, FilterFactory, SessionContext, Verdict } from '../../src/pipeline/filter.js';
import type { Frame } from '../../src/pipeline/frame.js';
import { ProxyError } from '../../src/protocol/errors.js';
import type { MemoryBudget } from '../../src/server/memory-budget.js';
import { RelaySession, type ClientSocket } from '../../src/relay/session.js';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import type { Tenant } from '../../src/tenants/tenant.js';
import { TenantResolver } from '../../src/tenants/resolver.js';
import { upstreamTarget } from '../../src/upstream/dial.js';
import { scriptedUpstream, sessionCreated, type ScriptedUpstream } from '../resilience/support/faulty-upstream.js';

/**
 * The relay core on its own: a RelaySession between a fake client socket (the four uWS calls the
 * client link makes, every frame recorded) and the real simulator upstream (or a scripted one), with
 * a chain of test filters. Used by test/relay/session-core.test.ts and the mutation survivors' tests.
 */

const SIM_KEY = 'sk-simulator-core';

/** What the client link needs of a uWS socket; every frame the client would read is kept, parsed. */
export class FakeClient {
  readonly frames: Record<string, unknown>[] = [];
  ended: { code: number; reason: string } | null = null;
  /** What getBufferedAmount answers, and what send answers (1 written, 0 backpressure). */
  buffered = 0;
  answer = 1;
  /** Set: the next send throws it (a socket call failing inside the flush). */
  throwOnSend: Error | null = null;
  send(data: Buffer | string): number {
    if (this.throwOnSend) throw this.throwOnSend;
    this.frames.push(JSON.parse(typeof data === 'string' ? data : data.toString('utf8')) as Record<string, unknown>);
    return this.answer;
  }
  cork(fn: () => void): this {
    fn();
    return this;
  }
  getBufferedAmount(): number {
    return this.buffered;
  }
  end(code: number, reason: string): void {
    this.ended = { code, reason };
  }
  types(): string[] {
    return this.frames.map((f) => String(f['type']));
  }
}

/** A test filter: sees what `wants` names, decides with `decide`, reaches its session through `ctx`. */
export function filterOf(wants: FilterFactory['wants'], decide: (ctx: SessionContext, direction: 'client' | 'server', frame: Frame) => Verdict | Promise<Verdict>): { factory: FilterFactory; ctx: () => SessionContext } {
  let ctx: SessionContext | null = null;
  const factory: FilterFactory = {
    name: 'test',
    wants,
    create: (c): Filter => {
      ctx = c;
      return { onClient: (f) => decide(c, 'client', f), onServer: (f) => decide(c, 'server', f) };
    },
  };
  return { factory, ctx: () => ctx! };
}

/** A filter that records every report the chain hears. */
export function reportsFilter(reports: Record<string, unknown>[]): FilterFactory {
  return { name: 'reports', wants: {}, create: () => ({ onReport: (r) => void reports.push(r as unknown as Record<string, unknown>) }) };
}

export interface OpenOptions {
  callId?: string;
  /** A call's sideband: ends the call before the session closes (SessionInit.endCallFirst). */
  endCallFirst?: (error: ProxyError, drain: () => Promise<void>) => Promise<void> | null;
  backpressure?: Record<string, number>;
  upstreamUrl?: string;
  onInjectedEventError?: string;
  /** Metering on with this linger; off when absent. */
  lingerMs?: number;
  maxFrameBytes?: number;
  maxJsonDepth?: number;
  budget?: MemoryBudget;
  /** More query parameters (the session's `?call_id=`, say). */
  query?: Record<string, string>;
  secretSession?: Record<string, unknown>;
  clock?: Clock;
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  /** `policies.notices` (default event). */
  notices?: 'event' | 'error' | 'off';
  /** The session's log records, parsed (debug and up); silent when absent. */
  logs?: Record<string, unknown>[];
}

export interface OpenedSession {
  session: RelaySession;
  client: FakeClient;
  ended: Promise<void>;
  /** How many times the session called its onEnded (the server's session-end bookkeeping): once. */
  timesEnded: () => number;
}

export interface RelaySessionFixture {
  /** The simulator upstream (started before the file's tests). */
  readonly sim: SimulatorHandle;
  /** A started session with `factories` as its chain; closed after the test if still open. */
  open(factories: FilterFactory[], options?: OpenOptions): OpenedSession;
  /** Every event the simulator's last connection received, parsed. */
  upstreamReceived(): Record<string, unknown>[];
  /**
   * A scripted upstream (closed after the test) that starts `resp_<n>` on each `response.create` and
   * ends it (cancelled) `doneAfterCancel` ms after a `response.cancel`, a few deltas first; never when
   * null: the test then drives its last connection itself. `received`: every event, parsed.
   */
  respondingUpstream(doneAfterCancel?: number | null): Promise<RespondingUpstream>;
}

export interface RespondingUpstream extends ScriptedUpstream {
  readonly received: Record<string, unknown>[];
}

/** Registers the file's hooks (the simulator, closing each test's sessions): call at the top of a test file. */
export function relaySessionFixture(): RelaySessionFixture {
  let sim: SimulatorHandle | null = null;
  beforeAll(async () => {
    sim = await startSimulator({ apiKey: SIM_KEY });
  });
  afterAll(async () => {
    await sim?.close();
  });
  const sessions: RelaySession[] = [];
  const upstreams: ScriptedUpstream[] = [];
  afterEach(async () => {
    for (const s of sessions.splice(0)) if (!s.ended) s.close(new ProxyError('server_shutting_down'));
    for (const u of upstreams.splice(0)) await u.close();
  });
  const started = (): SimulatorHandle => {
    if (!sim) throw new Error('the simulator starts in beforeAll');
    return sim;
  };

  function open(factories: FilterFactory[], options: OpenOptions = {}): OpenedSession {
    const server: Record<string, unknown> = {
      ...(options.backpressure ? { backpressure: options.backpressure } : {}),
      ...(options.maxFrameBytes !== undefined ? { maxFrameBytes: options.maxFrameBytes } : {}),
      ...(options.maxJsonDepth !== undefined ? { maxJsonDepth: options.maxJsonDepth } : {}),
    };
    const config = parseConfig(
      {
        upstream: {
          provider: 'openai',
          url: options.upstreamUrl ?? started().url,
          apiKey: SIM_KEY,
          allowCallId: true,
          ...(options.onInjectedEventError ? { onInjectedEventError: options.onInjectedEventError } : {}),
          ...(options.pingIntervalMs !== undefined ? { pingIntervalMs: options.pingIntervalMs } : {}),
          ...(options.pongTimeoutMs !== undefined ? { pongTimeoutMs: options.pongTimeoutMs } : {}),
        },
        ...(Object.keys(server).length > 0 ? { server } : {}),
        // Metering on only when a test sets the linger (no metering filter: the core only reads its linger setting).
        metering: options.lingerMs !== undefined ? { enabled: true, lingerAfterClientCloseMs: options.lingerMs } : { enabled: false },
        ...(options.notices ? { policies: { notices: options.notices } } : {}),
        tenants: { acme: { keys: [{ key: 'rpk_core_test_key_0123456789' }] } },
      },
      '(session core test)',
      {},
    );
    const tenant = new TenantResolver(config).tenants.get('acme') as Tenant;
    const query = new Map([['model', 'gpt-realtime'], ...Object.entries(options.query ?? {})]);
    const client = new FakeClient();
    let onEnded!: () => void;
    const ended = new Promise<void>((r) => (onEnded = r));
    let timesEnded = 0;
    const session = new RelaySession(
      {
        id: `rps_core${sessions.length}`,
        tenant,
        model: 'gpt-realtime',
        query,
        // The upstream is dialled with the model alone (a call_id would make the simulator a call's sideband).
        target: upstreamTarget(config.upstream, new Map([['model', 'gpt-realtime']]), new Map()),
        config,
        template: new ChainTemplate(factories),
        clock: options.clock ?? systemClock,
        log: options.logs ? pino({ level: 'debug' }, { write: (line: string) => void options.logs!.push(JSON.parse(line) as Record<string, unknown>) }) : pino({ level: 'silent' }),
        onEnded: () => {
          timesEnded++;
          onEnded();
        },
        ...(options.callId ? { callId: options.callId } : {}),
        ...(options.endCallFirst ? { endCallFirst: options.endCallFirst } : {}),
        ...(options.budget ? { budget: options.budget } : {}),
        ...(options.secretSession ? { secretSession: options.secretSession } : {}),
      },
      client as unknown as ClientSocket,
    );
    sessions.push(session);
    session.start();
    return { session, client, ended, timesEnded: () => timesEnded };
  }

  async function respondingUpstream(doneAfterCancel: number | null = null): Promise<RespondingUpstream> {
    const received: Record<string, unknown>[] = [];
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      let n = 0;
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as Record<string, unknown>;
        received.push(ev);
        if (ev['type'] === 'response.create') {
          n++;
          ws.send(JSON.stringify({ type: 'response.created', event_id: `evt_rc${n}`, response: { id: `resp_${n}`, object: 'realtime.response', status: 'in_progress', output: [] } }));
        }
        if (ev['type'] === 'response.cancel' && doneAfterCancel !== null) {
          const id = String(ev['response_id']);
          // A cancelled response still streams a little before its response.done.
          for (let d = 0; d < 2; d++) ws.send(JSON.stringify({ type: 'response.output_text.delta', event_id: `evt_d${d}_${id}`, response_id: id, item_id: 'item_x', output_index: 0, content_index: 0, delta: 'x' }));
          setTimeout(() => ws.send(JSON.stringify({ type: 'response.done', event_id: `evt_done_${id}`, response: { id, object: 'realtime.response', status: 'cancelled', output: [], usage: null } })), doneAfterCancel);
        }
      });
    });
    upstreams.push(up);
    return Object.assign(up, { received });
  }

  return {
    get sim() {
      return started();
    },
    open,
    respondingUpstream,
    upstreamReceived: () => started().connections.at(-1)!.received.map((r) => r.event as Record<string, unknown>),
  };
}

/** A client frame as uWS hands it over. */
export function send(session: RelaySession, event: Record<string, unknown>): void {
  const bytes = Buffer.from(JSON.stringify(event));
  session.onClientMessage(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), false);
}

/** Raw client bytes (text unless `binary`) as uWS hands them over. */
export function sendRaw(session: RelaySession, text: string | Buffer, binary = false): void {
  const copy = new Uint8Array(Buffer.byteLength(text));
  copy.set(Buffer.isBuffer(text) ? text : Buffer.from(text));
  session.onClientMessage(copy.buffer, binary);
}

export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A user message, then a response.create. */
export function say(session: RelaySession, text: string): void {
  send(session, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  send(session, { type: 'response.create' });
}

export const responseIdOf = (client: FakeClient): string | null =>
  (client.frames.find((f) => f['type'] === 'response.created')?.['response'] as { id?: string } | undefined)?.id ?? null;
