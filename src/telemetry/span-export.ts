import type { Attributes } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import { background, type JobHandle } from '../background/thread.js';
import { BACKGROUND_IDLE_MS, IdleTimer } from '../background/idle.js';
import { SPAN_EXPORT_JOB, workerModules } from './span-export-worker.js';
import type { PlainSpan, SpanSink } from './span-records.js';

/**
 * Span export off the event loop. The SDK's BatchSpanProcessor serialises (JSON or protobuf) and
 * sends each batch on the main thread, and starts a full batch synchronously inside `span.end()`:
 * a stall of several ms in the middle of relaying a frame. Here a finished span (a plain record,
 * span-records.ts; spans end at turn boundaries, not per frame) is queued; batches go
 * to a job on the background thread (background/thread.ts), which owns the OTLP exporter
 * (serialisation, compression, HTTP). The queue is bounded: when it is full, spans are dropped and
 * counted.
 */

export interface WorkerExportOptions {
  readonly protocol: 'http/protobuf' | 'http/json';
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly resourceAttributes: Attributes;
  readonly scope: InstrumentationScope;
  /** Spans waiting for the worker; beyond this, spans are dropped (and counted). */
  readonly maxQueueSize?: number;
  readonly maxBatchSize?: number;
  /** A partial batch waits at most this long. */
  readonly scheduledDelayMs?: number;
  /** Bound on `forceFlush` / `shutdown` waits. */
  readonly exportTimeoutMs?: number;
  /** The job is detached after this long with nothing to export (attached again by the next batch). */
  readonly idleDetachMs?: number;
}

/** What the main thread sends the worker. */
export type ToWorker = { readonly kind: 'export'; readonly id: number; readonly spans: readonly PlainSpan[] } | { readonly kind: 'shutdown' };
/** What the worker answers. */
export type FromWorker = { readonly kind: 'done'; readonly id: number; readonly ok: boolean; readonly error: string | null } | { readonly kind: 'shutdown' };

export interface WorkerInit {
  readonly modules: ReturnType<typeof workerModules>;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly resourceAttributes: Attributes;
  readonly scope: InstrumentationScope;
}

/** Batches sent and not yet answered: more wait in the (bounded) queue. */
const MAX_IN_FLIGHT = 16;
/**
 * perf: spans handed to the worker per macrotask. `postMessage` clones its batch on the main thread;
 * a 256-span batch took several ms in one task, a stall every relayed frame behind it waited out.
 * Smaller batches, one per event-loop turn, keep every such task short.
 */
const POST_BATCH = 64;

/**
 * perf: a partial batch waits at most this long (OTEL_BSP_SCHEDULE_DELAY overrides it). Spans wait
 * on the main thread until posted; at 1,000 ms, under 500 paced governed sessions, they lived through
 * two scavenges (~0.8 s apart) and were promoted: the largest promotion site, 2.0 of ~22 MiB in 8 s
 * (`npm run bench -- --targets governed --sessions 500 --profile --heap-sample`). At 100 ms they left
 * the list (~19 MiB in all). The cost is a few more posts and HTTP requests per second, in the
 * background thread.
 */
const DEFAULT_DELAY_MS = 200;

export class WorkerSpanExport implements SpanSink {
  /** Spans handed to the exporter, dropped because the queue was full, or lost in a failed export. */
  exported = 0;
  dropped = 0;
  failed = 0;
  /**
   * Attached with the first batch, not with the processor, and detached after `idleDetachMs` with
   * nothing to export: an idle proxy does not keep the background thread (6–18 MB of RSS) for it.
   * Attached again by the next batch, as after a crash.
   */
  #job: JobHandle | null = null;
  readonly #init: WorkerInit;
  readonly #maxQueue: number;
  readonly #maxBatch: number;
  readonly #delayMs: number;
  readonly #timeoutMs: number;
  #queue: PlainSpan[] = [];
  readonly #inFlight = new Map<number, number>();
  #nextId = 0;
  #timer: NodeJS.Timeout | null = null;
  #immediate: NodeJS.Immediate | null = null;
  #idleWaiters: (() => void)[] = [];
  #shutDown = false;
  #onShutdown: (() => void) | null = null;
  readonly #idle: IdleTimer;

  constructor(options: WorkerExportOptions) {
    this.#maxQueue = options.maxQueueSize ?? 4096;
    this.#maxBatch = options.maxBatchSize ?? 256;
    this.#delayMs = options.scheduledDelayMs ?? DEFAULT_DELAY_MS;
    this.#timeoutMs = options.exportTimeoutMs ?? 30_000;
    this.#init = { modules: workerModules(options.protocol), url: options.url, headers: options.headers, resourceAttributes: options.resourceAttributes, scope: options.scope };
    this.#idle = new IdleTimer(options.idleDetachMs ?? BACKGROUND_IDLE_MS, () => this.#detachIdle());
  }

  /** Nothing queued or in flight since the last batch: the job goes (the thread with it, if it was the last). */
  #detachIdle(): void {
    if (this.#queue.length > 0 || this.#inFlight.size > 0) {
      this.#idle.touch();
      return;
    }
    const job = this.#job;
    this.#job = null;
    job?.detach();
  }

  #start(): JobHandle {
    const job: JobHandle = background.attach(
      { source: SPAN_EXPORT_JOB, init: this.#init },
      { message: (msg) => this.#onMessage(msg as FromWorker), lost: () => this.#jobLost(job) },
    );
    this.#job = job;
    return job;
  }

  emit(span: PlainSpan): void {
    if (this.#shutDown) return;
    if (this.#queue.length >= this.#maxQueue) {
      this.dropped++;
      return;
    }
    this.#queue.push(span);
    this.#schedule();
  }

  /** Never exports inside `emit`: a full batch waits for the next macrotask, a partial one for the delay. */
  #schedule(): void {
    if (this.#queue.length >= this.#maxBatch) {
      this.#flushNextTurn();
      return;
    }
    if (this.#timer === null) {
      this.#timer = setTimeout(() => this.#flush(), this.#delayMs);
      this.#timer.unref();
    }
  }

  #flush(): void {
    this.#immediate = null;
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const batch = Math.min(this.#maxBatch, POST_BATCH);
    if (this.#queue.length > 0 && this.#inFlight.size < MAX_IN_FLIGHT) {
      const spans = this.#queue.length <= batch ? this.#queue : this.#queue.slice(0, batch);
      this.#queue = spans === this.#queue ? [] : this.#queue.slice(batch);
      const id = ++this.#nextId;
      this.#inFlight.set(id, spans.length);
      if (!this.#post({ kind: 'export', id, spans })) {
        this.#inFlight.delete(id);
        this.failed += spans.length;
      }
    }
    // The rest goes one batch per event-loop turn.
    if (this.#queue.length > 0 && this.#inFlight.size < MAX_IN_FLIGHT) this.#flushNextTurn();
    this.#checkIdle();
  }

  /** False when the batch cannot reach the job: the thread could not start (it runs from a timer: nothing may throw). */
  #post(message: ToWorker): boolean {
    try {
      this.#idle.touch();
      return (this.#job ?? this.#start()).post(message);
    } catch {
      return false;
    }
  }

  #flushNextTurn(): void {
    if (this.#immediate === null) this.#immediate = setImmediate(() => this.#flush());
  }

  #onMessage(msg: FromWorker): void {
    if (msg.kind === 'shutdown') {
      this.#onShutdown?.();
      return;
    }
    const n = this.#inFlight.get(msg.id);
    if (n === undefined) return;
    this.#inFlight.delete(msg.id);
    if (msg.ok) this.exported += n;
    else this.failed += n;
    if (this.#queue.length > 0) this.#flush();
    this.#checkIdle();
  }

  /** The job is gone (a crash: its batches are lost and counted; the next flush attaches it again). */
  #jobLost(job: JobHandle): void {
    if (this.#job !== job) return;
    this.#job = null;
    for (const n of this.#inFlight.values()) this.failed += n;
    this.#inFlight.clear();
    if (this.#shutDown) {
      this.dropped += this.#queue.length;
      this.#queue = [];
      this.#onShutdown?.();
    } else if (this.#queue.length > 0) {
      this.#schedule();
    }
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#queue.length > 0 || this.#inFlight.size > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Sends everything queued and waits (bounded) until the worker has answered for it. */
  forceFlush(): Promise<void> {
    if (this.#shutDown) return Promise.resolve();
    this.#flush();
    if (this.#queue.length === 0 && this.#inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.#timeoutMs);
      timer.unref();
      this.#idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async shutdown(): Promise<void> {
    if (this.#shutDown) return;
    await this.forceFlush();
    this.#shutDown = true;
    this.#idle.cancel();
    const job = this.#job;
    if (job === null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.#timeoutMs);
      timer.unref();
      this.#onShutdown = () => {
        clearTimeout(timer);
        resolve();
      };
      if (!job.post({ kind: 'shutdown' } satisfies ToWorker)) resolve();
    });
    this.#job = null;
    job.detach();
  }
}
