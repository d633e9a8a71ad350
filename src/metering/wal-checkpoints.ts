import { createRequire } from 'node:module';
import { IdleTimer } from '../background/idle.js';
import { background, type BackgroundJob, type JobHandle } from '../background/thread.js';

/*
 * WAL checkpoints copy the log into the database file and fsync it: milliseconds on a real disk.
 * Run on the event loop (SQLite's auto-checkpoint) they would stall every session's audio, so the
 * ledger's connection never checkpoints and a job on the background thread (background/thread.ts)
 * with its own connection does, passively, once a second. Plain JavaScript source: it needs no
 * TypeScript loader in the thread. A connection that cannot open loses the job (reported).
 */
const CHECKPOINT_JOB = `
const Database = require(init.module);
// Opened at the first checkpoint, as a separate worker thread's start used to give the file time.
let db = null;
const open = () => {
  if (db) return true;
  try {
    db = new Database(init.path);
    db.pragma('busy_timeout = 5000');
    return true;
  } catch (e) {
    clearInterval(timer);
    fail(e);
    return false;
  }
};
const run = (mode) => { if (!open()) return; try { db.pragma('wal_checkpoint(' + mode + ')'); } catch (e) { send({ error: String(e && e.message || e) }); } };
const timer = setInterval(() => run('PASSIVE'), init.intervalMs);
const handle = (m) => {
  if (m !== 'close') return;
  clearInterval(timer);
  if (!open()) return;
  run('TRUNCATE');
  db.close();
  db = null;
  send({ closed: true });
};
// Detached without its final checkpoint (it did not answer in time) while the thread goes on for
// another job: the timer and the connection go with the job.
handle.close = () => {
  clearInterval(timer);
  if (db) db.close();
};
return handle;
`;

/** The checkpoint job for the database file at `path`, checkpointing every `intervalMs`. */
export function checkpointJob(path: string, intervalMs: number): BackgroundJob {
  return { source: CHECKPOINT_JOB, init: { module: createRequire(import.meta.url).resolve('better-sqlite3'), path, intervalMs } };
}

/** Bound on the job's final checkpoint (an idle stop or the ledger's close). */
const STOP_WAIT_MS = 2000;

export interface WalCheckpointOptions {
  readonly path: string;
  readonly intervalMs: number;
  /** Without a write for this long, the job folds the log in and goes (the next write starts it again). */
  readonly idleMs: number;
  /** SQLite's own auto-checkpoint takes over: the job could not start, or was lost. */
  readonly fallBack: () => void;
  readonly onError?: ((message: string) => void) | undefined;
}

/**
 * The checkpoint job of one SQLite file. It starts with the first write (after open, or after an
 * idle stop), not with the file: a ledger that settles nothing has no log to fold, and an idle
 * proxy does not keep the background thread (6–18 MB of RSS) for it. After `idleMs` without a write
 * it runs a final TRUNCATE checkpoint, closes its connection and is detached.
 */
export class WalCheckpoints {
  readonly #options: WalCheckpointOptions;
  readonly #idle: IdleTimer;
  #job: JobHandle | null = null;
  /** A stop in progress (the final checkpoint asked for), and what ends it. */
  #stopping: Promise<void> | null = null;
  #stopped: (() => void) | null = null;
  #wroteWhileStopping = false;
  /** SQLite's auto-checkpoint took over for good. */
  #fellBack = false;
  #closed = false;

  constructor(options: WalCheckpointOptions) {
    this.#options = options;
    this.#idle = new IdleTimer(options.idleMs, () => void this.#stop());
  }

  /** After every committed write. */
  wrote(): void {
    if (this.#fellBack || this.#closed) return;
    this.#idle.touch();
    if (this.#job !== null) return;
    if (this.#stopping !== null) this.#wroteWhileStopping = true;
    else this.#attach();
  }

  /** After the ledger closed its own connection: the final checkpoint folds the log into the file. */
  close(): Promise<void> {
    this.#closed = true;
    this.#idle.cancel();
    return this.#stop();
  }

  #attach(): void {
    const { path, intervalMs, onError } = this.#options;
    try {
      this.#job = background.attach(
        checkpointJob(path, intervalMs),
        {
          message: (m) => {
            const reply = m as { error?: string; closed?: boolean };
            if (reply.error) onError?.(`checkpoint: ${reply.error}`);
            if (reply.closed) this.#stopped?.();
          },
          lost: (reason) => {
            // The handle stays: once fallen back nothing posts to it, and a stop finds it detached.
            this.#fallBack(`checkpoint worker: ${reason}`);
            // A lost job has nothing to fold in: a stop waiting for it ends now (and starts no other).
            this.#stopped?.();
          },
        },
      );
    } catch (err) {
      this.#fallBack(`checkpoint worker not started: ${(err as Error).message}`);
    }
  }

  #fallBack(message: string): void {
    this.#fellBack = true;
    this.#idle.cancel();
    if (!this.#closed) this.#options.fallBack();
    this.#options.onError?.(message);
  }

  /** The job's final checkpoint, bounded; then it is detached (the thread ends with its last job). */
  #stop(): Promise<void> {
    if (this.#stopping !== null) return this.#stopping;
    const job = this.#job;
    if (job === null) return Promise.resolve();
    this.#job = null;
    let resolve!: () => void;
    this.#stopping = new Promise<void>((r) => (resolve = r));
    const stopping = this.#stopping;
    const timer = setTimeout(() => this.#stopped?.(), STOP_WAIT_MS);
    this.#stopped = () => {
      this.#stopped = null;
      this.#stopping = null;
      clearTimeout(timer);
      job.detach();
      resolve();
      if (this.#wroteWhileStopping) {
        this.#wroteWhileStopping = false;
        if (!this.#closed && !this.#fellBack) this.#attach();
      }
    };
    if (!job.post('close')) this.#stopped();
    return stopping;
  }
}
