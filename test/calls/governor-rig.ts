import type pino from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { CallGovernors, type GovernorDeps, type Sideband, type SidebandInit } from '../../src/calls/governor.js';
import { SqliteCallStore, type CallRecord, type CallStore } from '../../src/calls/store.js';
import { ProxyError } from '../../src/protocol/errors.js';
import { TenantResolver } from '../../src/tenants/resolver.js';
import type { Tenant } from '../../src/tenants/tenant.js';
import { capturedLog } from '../support/captured-log.js';

/**
 * The call governors without sockets (src/calls/governor.test.ts and its mutation-survivor tests): fake
 * sidebands that end when told, a SQLite store in memory (or the test's), the control requests the
 * upstream got (hang-ups), the log lines, and a wall clock the test moves.
 */

/** A sideband that ends when told: by the proxy (`close`) or by the upstream (`endBy`). */
export class FakeSideband implements Sideband {
  readonly id: string;
  readonly log: pino.Logger;
  ended = false;
  started = false;
  closedWith: string | null = null;
  closedError: ProxyError | null = null;
  #record: Record<string, unknown> = {};

  constructor(readonly init: SidebandInit) {
    this.id = init.id;
    this.log = init.log;
  }
  /** The call as the governor started this sideband for it. */
  get call(): SidebandInit['call'] {
    return this.init.call;
  }
  start(): void {
    this.started = true;
  }
  readonly ticks: number[] = [];
  /** Set: tick() throws (a bug in the sideband's deadline checks). */
  tickThrows = false;
  tick(now: number): void {
    if (this.tickThrows) throw new Error('tick bug');
    this.ticks.push(now);
  }
  failed: string[] = [];
  fail(what: string, _err: unknown): void {
    this.failed.push(what);
    this.close(new ProxyError('internal_error', { close: 'internalError' }));
  }
  endRecord(): Record<string, unknown> {
    return this.#record;
  }
  /** What `idle` waits on (the test resolves it), and the bounds it was given. */
  busy: Promise<void> | null = null;
  readonly idleWaits: number[] = [];
  idle(timeoutMs: number): Promise<void> {
    this.idleWaits.push(timeoutMs);
    return this.busy ?? Promise.resolve();
  }
  /** Set: close() only records; the sideband ends when `finish()` is called (a response lingering). */
  lingers = false;
  close(error: ProxyError): void {
    this.closedWith = error.code;
    this.closedError = error;
    if (!this.lingers) this.finish();
  }
  finish(): void {
    this.#end({ initiator: 'proxy', upstreamCloseCode: 1000 });
  }
  /** The upstream ended the sideband with `code`. */
  endBy(code: number): void {
    this.#end({ initiator: 'upstream', upstreamCloseCode: code });
  }
  #end(record: Record<string, unknown>): void {
    if (this.ended) return;
    this.ended = true;
    this.#record = record;
    this.init.onEnded(this);
  }
}

export const TENANTS = { acme: { keys: [{ key: 'rpk_test_acme_0123456789abcdef' }] } };
export const tenants: ReadonlyMap<string, Tenant> = new TenantResolver(parseConfig({ upstream: { provider: 'simulator' }, tenants: TENANTS }, '(governor rig)', {})).tenants;
export const record = (tenant = 'acme', expiresAtMs = 10_000_000): CallRecord => ({ tenant, model: 'gpt-realtime', kind: 'webrtc', expiresAtMs });
export type Control = (n: number) => Promise<{ status: number; headers: Headers; body: Buffer }>;
export const answer = (status: number) => Promise.resolve({ status, headers: new Headers(), body: Buffer.alloc(0) });

export interface RigOptions {
  onShutdown?: 'hangup' | 'handover';
  onCap?: 'hangup' | 'cancel';
  maxSessions?: number;
  store?: CallStore;
  /** The upstream's answer to the n-th control request (default: 200). */
  control?: Control;
  /** Builds the fake sideband (default: a plain FakeSideband). */
  openSideband?: (init: SidebandInit) => FakeSideband;
  admitTakenOver?: GovernorDeps['admitTakenOver'];
  /** No openSideband: the governor builds RelaySessions (from its template); `sidebands` stays empty. */
  relay?: boolean;
}

/** Governors on a fake upstream. The test closes them (`governors.close()`). */
export function governorRig(options: RigOptions = {}) {
  const config = parseConfig(
    {
      server: { maxSessions: options.maxSessions ?? 100 },
      upstream: { provider: 'simulator' },
      calls: { enabled: true, leaseSec: 30, onShutdown: options.onShutdown ?? 'hangup', onCap: options.onCap ?? 'hangup' },
      tenants: TENANTS,
    },
    '(governor rig)',
    {},
  );
  let wall = 1_000_000;
  const store = options.store ?? new SqliteCallStore(':memory:');
  const hangups: string[] = [];
  const sidebands = new Map<string, FakeSideband>();
  const all: FakeSideband[] = [];
  const { log, lines } = capturedLog('debug');
  /** The calls whose client sockets were told why the proxy ends them (`ending`), with how many control requests had gone out then. */
  const told: string[] = [];
  const governors = new CallGovernors({
    config,
    log,
    clock: { now: () => wall, wall: () => wall },
    upstream: {
      control: (callId: string, action: string) => {
        hangups.push(`${action}:${callId}`);
        return options.control ? options.control(hangups.length) : answer(200);
      },
      sidebandTarget: () => {
        throw new Error('not dialled in these tests');
      },
    },
    store,
    tenant: (id) => tenants.get(id),
    ending: (callId, error) => told.push(`${callId}:${error.code}:${error.closeCode}:after ${hangups.length} control requests`),
    ...(options.admitTakenOver ? { admitTakenOver: options.admitTakenOver } : {}),
    ...(options.relay
      ? {}
      : {
          openSideband: (init: SidebandInit) => {
            const s = options.openSideband ? options.openSideband(init) : new FakeSideband(init);
            sidebands.set(init.call.callId, s);
            all.push(s);
            return s;
          },
        }),
  });
  /** Starts governing an acme call without a lease in the store. */
  const start = (callId: string): Sideband => governors.start({ callId, tenant: tenants.get('acme')!, model: 'gpt-realtime', kind: 'webrtc' });
  /** As the calls module does: the call bound and leased to this instance, then its sideband started. */
  const govern = async (callId: string, expiresAtMs = 10_000_000): Promise<FakeSideband> => {
    await store.putCall(callId, record('acme', expiresAtMs), governors.lease(), wall);
    start(callId);
    return sidebands.get(callId)!;
  };
  /** A call bound to a crashed instance whose lease lapsed. */
  const orphan = (callId: string, tenant = 'acme') => store.putCall(callId, record(tenant), { owner: 'gov_dead', untilMs: wall - 1 }, wall);
  /** Who may claim the call now (another instance sweeping). */
  const claimable = async () => (await store.claimLapsed('gov_next', wall + 30_000, wall, 10)).map((c) => c.callId);
  const hangupWhy = (callId: string) => lines.filter((l) => l['event'] === 'call_hangup' && l['call'] === callId).map((l) => l['why']);
  return { governors, store, hangups, told, sidebands, all, lines, start, govern, orphan, claimable, hangupWhy, advance: (ms: number) => (wall += ms), wall: () => wall };
}

export const flush = () => new Promise((r) => setTimeout(r, 0));
