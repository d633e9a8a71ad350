import { Worker } from 'node:worker_threads';

/**
 * One thread for the proxy's background jobs (span export, the SQLite WAL checkpoint): work that
 * must not run on the event loop (serialisation, compression, HTTP, fsync) but is small. Each
 * Node worker thread costs ~10 MB of RSS for its own isolate and runtime, whatever it runs, so the
 * jobs share one instead of starting one each.
 *
 * A job is plain JavaScript source: the body of a function of `(require, init, send, fail)` that
 * returns the job's message handler; `fail(error)` ends the job from its own callbacks (timers).
 * The handler may carry a `close()`, called when the job is detached while the thread goes on
 * (what the job holds beyond its handler, such as keep-alive sockets, would outlive it otherwise).
 * The thread starts with the first job and ends with the last. A job that throws (starting or
 * handling a message) is lost alone; if the thread itself dies, every job is lost and each owner
 * decides what to do (span export attaches again on demand, the checkpoint hands the work back to
 * SQLite's auto-checkpoint).
 */

export interface BackgroundJob {
  /** `(require, init, send, fail) => (message) => void`, as a function body (see DISPATCHER). */
  readonly source: string;
  /** Structured-cloneable data for the job (attach throws otherwise, and nothing is attached). */
  readonly init: unknown;
}

export interface JobEvents {
  message(body: unknown): void;
  /** The job is gone (it threw, or the thread died): nothing more is delivered or sent. */
  lost(reason: string): void;
}

export interface JobHandle {
  readonly attached: boolean;
  /** Sends a message to the job; false when the job is gone. */
  post(body: unknown): boolean;
  /** Ends the job (the thread ends with its last job; otherwise the handler's `close()`, if any, ends what the job runs by itself). */
  detach(): void;
}

/** Limits of the shared thread: it holds a few span batches at a time, the checkpoint next to nothing. */
const RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 } as const;

type ToThread =
  | { readonly job: number; readonly attach: { readonly source: string; readonly init: unknown } }
  | { readonly job: number; readonly body: unknown }
  | { readonly job: number; readonly detach: true };
type FromThread = { readonly job: number; readonly body: unknown } | { readonly job: number; readonly failed: string };

const DISPATCHER = String.raw`
'use strict';
const { parentPort } = require('node:worker_threads');
const jobs = new Map();
const fail = (job, err) => {
  jobs.delete(job);
  parentPort.postMessage({ job, failed: String((err && err.message) || err) });
};
parentPort.on('message', (msg) => {
  const job = msg.job;
  if (msg.attach) {
    try {
      const start = new Function('require', 'init', 'send', 'fail', msg.attach.source);
      const send = (body) => { if (jobs.has(job)) parentPort.postMessage({ job, body }); };
      jobs.set(job, null);
      const handler = start(require, msg.attach.init, send, (err) => { if (jobs.has(job)) fail(job, err); });
      if (typeof handler !== 'function') throw new Error('the job returned no message handler');
      if (jobs.has(job)) jobs.set(job, handler);
    } catch (err) {
      fail(job, err);
    }
    return;
  }
  if (msg.detach) {
    const handler = jobs.get(job);
    jobs.delete(job);
    if (handler && typeof handler.close === 'function') {
      try {
        handler.close();
      } catch {
        // The job is gone either way.
      }
    }
    return;
  }
  const handler = jobs.get(job);
  if (!handler) return;
  try {
    handler(msg.body);
  } catch (err) {
    fail(job, err);
  }
});
`;

/** Runs an owner's callback from a worker event: a bug there must not take the proxy down. */
function safely(call: () => void): void {
  try {
    call();
  } catch {
    // The owner's state is its own; the thread and the other jobs go on.
  }
}

interface Attached {
  readonly events: JobEvents;
  detached: boolean;
}

class BackgroundThread {
  #worker: Worker | null = null;
  readonly #jobs = new Map<number, Attached>();
  #nextJob = 0;

  attach(job: BackgroundJob, events: JobEvents): JobHandle {
    const id = ++this.#nextJob;
    const entry: Attached = { events, detached: false };
    const worker = this.#worker ?? this.#start();
    try {
      worker.postMessage({ job: id, attach: { source: job.source, init: job.init } } satisfies ToThread);
    } catch (err) {
      // `init` could not be cloned: nothing was attached, and a thread started for it alone ends.
      if (this.#jobs.size === 0 && this.#worker === worker) {
        this.#worker = null;
        void worker.terminate();
      }
      throw err;
    }
    this.#jobs.set(id, entry);
    return {
      get attached() {
        return !entry.detached;
      },
      post: (body) => {
        // A job on a thread that died was marked detached with it (#gone).
        if (entry.detached) return false;
        try {
          worker.postMessage({ job: id, body } satisfies ToThread);
          return true;
        } catch {
          return false;
        }
      },
      detach: () => {
        if (entry.detached) return;
        entry.detached = true;
        this.#jobs.delete(id);
        if (this.#jobs.size === 0) {
          this.#worker = null;
          void worker.terminate();
        } else {
          // The thread drops the job's handler and calls its close(): what the job runs by itself (timers, sockets) ends there.
          worker.postMessage({ job: id, detach: true } satisfies ToThread);
        }
      },
    };
  }

  /** Jobs attached now (the thread runs while this is above zero). */
  get jobs(): number {
    return this.#jobs.size;
  }

  get running(): boolean {
    return this.#worker !== null;
  }

  #start(): Worker {
    const worker = new Worker(DISPATCHER, { eval: true, resourceLimits: RESOURCE_LIMITS });
    // Background work never keeps the process alive.
    worker.unref();
    let reason = 'the background thread exited';
    worker.on('message', (msg: FromThread) => this.#onMessage(msg));
    worker.on('error', (err: Error) => (reason = `the background thread failed: ${err.message}`));
    worker.on('exit', () => this.#gone(worker, reason));
    this.#worker = worker;
    return worker;
  }

  #onMessage(msg: FromThread): void {
    const entry = this.#jobs.get(msg.job);
    if (!entry || entry.detached) return;
    if ('failed' in msg) {
      entry.detached = true;
      this.#jobs.delete(msg.job);
      safely(() => entry.events.lost(msg.failed));
      return;
    }
    safely(() => entry.events.message(msg.body));
  }

  /** The thread ended without being asked: its jobs are lost. */
  #gone(worker: Worker, reason: string): void {
    if (this.#worker !== worker) return;
    this.#worker = null;
    const lost = [...this.#jobs.values()];
    this.#jobs.clear();
    for (const entry of lost) {
      entry.detached = true;
      safely(() => entry.events.lost(reason));
    }
  }

  /** Ends the thread as a crash would (tests). */
  async kill(): Promise<void> {
    await this.#worker?.terminate();
  }
}

/** The process's background thread. */
export const background = new BackgroundThread();
