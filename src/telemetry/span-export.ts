import type { Attributes } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import { background, type JobHandle } from '../background/thread.js';
import { BACKGROUND_IDLE_MS, IdleTimer } from '../background/idle.js';
import { SPAN_EXPORT_JOB, workerModules } from './span-export-worker.js';
import { estimateSpanBytes, type PlainSpan, type SpanSink } from './span-records.js';

/**
 * Span export off the event loop. The SDK's BatchSpanProcessor serialises (JSON or protobuf) and
 * sends each batch on the main thread, and starts a full batch synchronously inside `span.end()`:
 * a stall of several ms in the middle of relaying a frame. Here a finished span (a plain record,
 * span-records.ts; spans end at turn boundaries, not per frame) is queued; batches go
 * to a job on the background thread (background/thread.ts), which owns the OTLP exporter
 * (serialisation, compression, HTTP). The queue is bounded by count and by bytes: when either is
 * full, new spans are dropped and counted.
 */

export interface WorkerExportOptions {
  readonly protocol: 'http/protobuf' | 'http/json';
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly resourceAttributes: Attributes;
  readonly scope: InstrumentationScope;
  /** Spans waiting for the worker; beyond this, spans are dropped (and counted). */
  readonly maxQueueSize?: number;
  /**
   * Estimated bytes (span-records.ts `estimateSpanBytes`) of spans queued or handed to the worker and
   * not yet answered; beyond this, spans are dropped (and counted). A stalled collector holds both.
   */
  readonly maxQueueBytes?: number;
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

/** Default byte budget: 4096 spans of ~40 KB (events and captured content) were 160 MB and more. */
const DEFAULT_MAX_QUEUE_BYTES = 32 * 1024 * 1024;

/** A batch handed to the worker and not yet answered. */
interface InFlight {
  readonly spans: number;
  readonly bytes: number;
}

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
  readonly #maxBytes: number;
  /** Estimated bytes of `#queue` plus every batch in flight. */
  #bytes = 0;
  /** Each queued span's estimate, in queue order (so a batch's bytes need no second estimate). */
  #queueSizes: number[] = [];
  readonly #maxBatch: number;
  readonly #delayMs: number;
  readonly #timeoutMs: number;
  #queue: PlainSpan[] = [];
  readonly #inFlight = new Map<number, InFlight>();
  #nextId = 0;
  #timer: NodeJS.Timeout | null = null;
  #immediate: NodeJS.Immediate | null = null;
  #idleWaiters: (() => void)[] = [];
  #shutDown = false;
  #onShutdown: (() => void) | null = null;
  readonly #idle: IdleTimer;

  constructor(options: WorkerExportOptions) {
    this.#maxQueue = options.maxQueueSize ?? 4096;
    this.#maxBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
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

  /** Estimated bytes held for export: queued, and in flight to the worker. */
  get queuedBytes(): number {
    return this.#bytes;
  }

  emit(span: PlainSpan): void {
    if (this.#shutDown) return;
    if (this.#queue.length >= this.#maxQueue) {
      this.dropped++;
      return;
    }
    const bytes = estimateSpanBytes(span);
    if (this.#bytes + bytes > this.#maxBytes) {
      this.dropped++;
      return;
    }
    this.#bytes += bytes;
    this.#queue.push(span);
    this.#queueSizes.push(bytes);
    this.#schedule();
  }

  /** Takes the first `n` queued spans (all when fewer) with their estimated bytes. */
  #take(n: number): { readonly spans: PlainSpan[]; readonly bytes: number } {
    const all = this.#queue.length <= n;
    const spans = all ? this.#queue : this.#queue.slice(0, n);
    const sizes = all ? this.#queueSizes : this.#queueSizes.slice(0, n);
    this.#queue = all ? [] : this.#queue.slice(n);
    this.#queueSizes = all ? [] : this.#queueSizes.slice(n);
    let bytes = 0;
    for (const b of sizes) bytes += b;
    return { spans, bytes };
  }

  /** A batch is answered or lost: its bytes leave the budget. */
  #release(batch: InFlight): void {
    this.#bytes -= batch.bytes;
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
      const { spans, bytes } = this.#take(batch);
      const id = ++this.#nextId;
      const sent: InFlight = { spans: spans.length, bytes };
      this.#inFlight.set(id, sent);
      if (!this.#post({ kind: 'export', id, spans })) {
        this.#inFlight.delete(id);
        this.#release(sent);
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
    const sent = this.#inFlight.get(msg.id);
    if (sent === undefined) return;
    this.#inFlight.delete(msg.id);
    this.#release(sent);
    if (msg.ok) this.exported += sent.spans;
    else this.failed += sent.spans;
    if (this.#queue.length > 0) this.#flush();
    this.#checkIdle();
  }

  /** The job is gone (a crash: its batches are lost and counted; the next flush attaches it again). */
  #jobLost(job: JobHandle): void {
    if (this.#job !== job) return;
    this.#job = null;
    for (const sent of this.#inFlight.values()) {
      this.failed += sent.spans;
      this.#release(sent);
    }
    this.#inFlight.clear();
    if (this.#shutDown) {
      this.dropped += this.#queue.length;
      this.#queue = [];
      this.#queueSizes = [];
      this.#bytes = 0;
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
