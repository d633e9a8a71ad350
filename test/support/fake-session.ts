import pino from 'pino';
import type { Clock, SessionContext } from '../../src/pipeline/filter.js';
import type { Report } from '../../src/pipeline/reports.js';
import { Conversation, type ItemMark } from '../../src/protocol/conversation.js';
import type { ProxyError } from '../../src/protocol/errors.js';
import type { Tenant } from '../../src/tenants/tenant.js';

/** A SessionContext for filter unit tests: records everything a filter does, with a settable clock. */
export class FakeSession implements SessionContext {
  readonly id = 'rps_test';
  readonly tenant: Tenant;
  readonly model: string;
  readonly query: ReadonlyMap<string, string>;
  readonly startedAt = 0;
  readonly log = pino({ level: 'silent' });
  /** Unit tests feed it what the relay core would (see `observe`). */
  readonly conversation = new Conversation();
  time = 0;
  readonly clock: Clock = { now: () => this.time, wall: () => 1_700_000_000_000 + this.time };
  readonly upstream: { type: string; [k: string]: unknown }[] = [];
  readonly client: { type: string; [k: string]: unknown }[] = [];
  readonly reports: Report[] = [];
  readonly cancelled: { responseId: string; by: string; notice: ProxyError }[] = [];
  closedWith: ProxyError | null = null;

  constructor(options: { tenant?: Partial<Tenant>; model?: string; query?: Record<string, string> } = {}) {
    this.tenant = { id: 'acme', name: 'Acme', policy: null, plan: null, limits: null, ...options.tenant };
    this.model = options.model ?? 'gpt-realtime';
    this.query = new Map(Object.entries(options.query ?? { model: this.model }));
  }

  markItem(itemId: string, mark: ItemMark): void {
    this.conversation.mark(itemId, mark);
  }
  sendUpstream(event: { readonly type: string }): void {
    this.upstream.push(event as { type: string });
  }
  sendClient(event: { readonly type: string }): void {
    this.client.push(event as { type: string });
  }
  close(error: ProxyError): void {
    this.closedWith = error;
  }
  report(report: Report): void {
    this.reports.push(report);
  }
  cancelResponse(responseId: string, by: string, notice: ProxyError): void {
    this.cancelled.push({ responseId, by, notice });
  }
  isSuppressed(responseId: string): boolean {
    return this.cancelled.some((c) => c.responseId === responseId);
  }
}
