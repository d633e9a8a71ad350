import pino, { type Level, type Logger } from 'pino';
import { AudioMeter } from '../../src/pipeline/audio-meter.js';
import type { AdmissionTicket, Clock, Direction, Filter, SessionContext, Verdict } from '../../src/pipeline/filter.js';
import { Frame } from '../../src/pipeline/frame.js';
import type { Report } from '../../src/pipeline/reports.js';
import { Conversation, type ItemMark } from '../../src/protocol/conversation.js';
import type { ProxyError } from '../../src/protocol/errors.js';
import type { RealtimeClientEvent, RealtimeServerEvent } from '../../src/protocol/events.js';
import type { Tenant } from '../../src/tenants/tenant.js';
import { capturedLog, type LogLine } from './captured-log.js';

/** A SessionContext for filter unit tests: records everything a filter does, with a settable clock. */
export class FakeSession implements SessionContext {
  readonly id = 'rps_test';
  readonly tenant: Tenant;
  readonly model: string;
  readonly query: ReadonlyMap<string, string>;
  readonly startedAt = 0;
  readonly log: Logger;
  /** Unit tests feed it what the relay core would (see `fromServer` / `fromClient`). */
  readonly conversation = new Conversation();
  time = 0;
  readonly clock: Clock = { now: () => this.time, wall: () => 1_700_000_000_000 + this.time };
  /** What the filter sent, as plain records (for assertions on any member). */
  readonly upstream: { type: string; [k: string]: unknown }[] = [];
  readonly client: { type: string; [k: string]: unknown }[] = [];
  readonly reports: Report[] = [];
  readonly cancelled: { responseId: string; by: string; notice: ProxyError }[] = [];
  closedWith: ProxyError | null = null;
  readonly audio = new AudioMeter((r) => this.reports.push(r));

  readonly watchesGovernedCall: boolean;
  /** The admission the session opens with (what the factories' admit took for it), or null. */
  readonly admission: AdmissionTicket | null;

  constructor(options: { tenant?: Partial<Tenant>; model?: string; query?: Record<string, string>; log?: Logger; watchesGovernedCall?: boolean; admission?: AdmissionTicket } = {}) {
    this.log = options.log ?? pino({ level: 'silent' });
    this.watchesGovernedCall = options.watchesGovernedCall === true;
    this.admission = options.admission ?? null;
    this.tenant = { id: 'acme', name: 'Acme', policy: null, plan: null, limits: null, ...options.tenant };
    this.model = options.model ?? 'gpt-realtime';
    this.query = new Map(Object.entries(options.query ?? { model: this.model }));
  }

  /** As the relay core does: the conversation view learns a server frame before the filter sees it. */
  fromServer(filter: Filter, frame: Frame): Verdict | Promise<Verdict> {
    this.conversation.observeServer(frame);
    return filter.onServer!(frame);
  }

  /**
   * As the relay core does: the conversation view learns a client frame as it is forwarded (after
   * the filter); an event of a stamped type (`Conversation.stamps`) leaves with an event_id of its
   * own, reported as `stamped` (to the filter too, as the chain does) and, for a create, `create_sent`.
   */
  fromClient(filter: Filter, frame: Frame): Verdict | Promise<Verdict> {
    const send = (f: Frame): void => {
      // The relay counts input audio as it leaves (SessionContext.audio).
      // As the relay does: another event carrying a waiting create's event_id leaves with a fresh one.
      if (f.type === 'input_audio_buffer.append') {
        this.audio.input(this.conversation.unambiguousAudio(f.wireBytes(), () => this.nextEventId()) ?? f.wireBytes(), this.time);
        return;
      }
      if (!Conversation.stamps(f.type)) {
        this.conversation.observeClient(this.conversation.unambiguous(f, () => this.nextEventId()), false);
        return;
      }
      const stamped = this.conversation.stamp(f, () => this.nextEventId());
      this.conversation.observeClient(stamped.frame, false);
      if (stamped.eventId === null) return;
      if (f.type === 'response.create') this.report({ kind: 'create_sent', eventId: stamped.eventId });
      const report: Report = { kind: 'stamped', eventType: f.type, eventId: stamped.eventId, clientEventId: stamped.own };
      this.report(report);
      filter.onReport?.(report);
    };
    const forwarded = (v: Verdict): Verdict => {
      if (v.kind === 'continue') send(frame);
      else if (v.kind === 'replace') send(v.frame);
      // As the chain does (`ChainSink.stopped`): the view hears of a client frame a filter stopped.
      else this.conversation.clientStopped(frame, v.kind === 'drop' ? null : v.error);
      return v;
    };
    const verdict = filter.onClient!(frame);
    return verdict instanceof Promise ? verdict.then(forwarded) : forwarded(verdict);
  }

  /** The event_id the last client event sent with this id of its own left with (an upstream error about it names that one). */
  upstreamIdOf(clientEventId: string): string {
    const r = this.reports.findLast((x) => x.kind === 'stamped' && x.clientEventId === clientEventId);
    if (r?.kind !== 'stamped') throw new Error(`no client event with event_id ${clientEventId} was stamped`);
    return r.eventId;
  }

  #eventSeq = 0;
  nextEventId(): string {
    return `event_proxy_${this.id.slice(-8)}_${(++this.#eventSeq).toString(36)}`;
  }

  markItem(itemId: string, mark: ItemMark): void {
    this.conversation.mark(itemId, mark);
  }
  sendUpstream(event: RealtimeClientEvent): void {
    this.upstream.push({ ...event });
    // As the relay does: the conversation view sees what the proxy injects, as it leaves.
    this.conversation.observeClient(Frame.fromEvent(event), true);
  }
  sendClient(event: RealtimeServerEvent): void {
    this.client.push({ ...event });
  }
  /** Recorded as the relay sends it by default (`policies.notices: event`). */
  notify(notice: ProxyError): void {
    this.client.push({ ...notice.toNotice(this.nextEventId()) });
  }
  /** Errors thrown by timer callbacks (the relay would end the session with internal_error). */
  readonly timerFailures: unknown[] = [];
  setTimer(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      try {
        fn();
      } catch (err) {
        this.timerFailures.push(err);
      }
    }, ms);
    timer.unref();
    return timer;
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
  /** `filter direction type` entries a filter asked to see (SessionContext.watch). */
  readonly watched = new Set<string>();
  watch(filter: string, direction: Direction, type: string, on: boolean): void {
    const key = `${filter} ${direction} ${type}`;
    if (on) this.watched.add(key);
    else this.watched.delete(key);
  }
}

/** A FakeSession whose log lines are kept, parsed (the filters' warnings and decision lines). */
export class LoggedSession extends FakeSession {
  readonly lines: LogLine[];

  constructor(options: ConstructorParameters<typeof FakeSession>[0] & { level?: Level } = {}) {
    const { log, lines } = capturedLog(options.level ?? 'info');
    super({ ...options, log });
    this.lines = lines;
  }
}
