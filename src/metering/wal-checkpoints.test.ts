import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { record } from '../../test/metering/ledger-contract.js';
import { background, type JobEvents, type JobHandle } from '../background/thread.js';
import { SqliteLedger } from './sqlite-ledger.js';
import { checkpointJob, WalCheckpoints } from './wal-checkpoints.js';
import { tempDir } from '../../test/support/temp-dir.js';

/**
 * The checkpoint job's lifetime: started by the first write, stopped (a final checkpoint, then
 * detached) after a quiet period, started again by the next write. With a stand-in for the
 * background thread, so each step's order is the test's to choose; the last test runs the real one.
 */

interface FakeJob {
  readonly events: JobEvents;
  readonly posted: unknown[];
  detached: boolean;
}

function fakeThread() {
  const jobs: FakeJob[] = [];
  const attach = vi.spyOn(background, 'attach').mockImplementation((_job, events): JobHandle => {
    const job: FakeJob = { events, posted: [], detached: false };
    jobs.push(job);
    return {
      get attached() {
        return !job.detached;
      },
      post: (body) => {
        if (job.detached) return false;
        job.posted.push(body);
        return true;
      },
      detach: () => {
        job.detached = true;
      },
    };
  });
  return { jobs, attach };
}

const restore: (() => void)[] = [];
afterEach(() => {
  for (const r of restore.splice(0)) r();
});

function checkpoints(idleMs = 50, withOnError = true) {
  const fake = fakeThread();
  restore.push(() => fake.attach.mockRestore());
  const fallBack = vi.fn();
  const errors: string[] = [];
  const wal = new WalCheckpoints({ path: '/unused.sqlite', intervalMs: 10, idleMs, fallBack, ...(withOnError ? { onError: (m: string) => errors.push(m) } : {}) });
  restore.push(() => void wal.close());
  return { ...fake, wal, fallBack, errors };
}

describe('WAL checkpoints: the job follows the writes', () => {
  it('the first write starts the job, later writes reuse it', () => {
    const { wal, jobs } = checkpoints(60_000);
    expect(jobs).toHaveLength(0);
    wal.wrote();
    wal.wrote();
    expect(jobs).toHaveLength(1);
  });

  it('after a quiet period the job folds the log in and is detached once it answers; the next write starts a new one', async () => {
    const { wal, jobs, errors } = checkpoints();
    wal.wrote();
    await vi.waitFor(() => expect(jobs[0]!.posted).toEqual(['close']));
    expect(jobs[0]!.detached).toBe(false);
    // An error about the final checkpoint is reported; only its `closed` ends the stop.
    jobs[0]!.events.message({ error: 'database is locked' });
    expect(jobs[0]!.detached).toBe(false);
    jobs[0]!.events.message({ closed: true });
    expect(jobs[0]!.detached).toBe(true);
    expect(errors).toEqual(['checkpoint: database is locked']);
    wal.wrote();
    expect(jobs).toHaveLength(2);
  });

  it('writes keep the job: no stop while they come more often than the quiet period', async () => {
    const { wal, jobs } = checkpoints(100);
    wal.wrote();
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 40));
      wal.wrote();
    }
    expect(jobs[0]!.posted).toEqual([]);
    await vi.waitFor(() => expect(jobs[0]!.posted).toEqual(['close']));
  });

  it('a write during the final checkpoint starts a new job once the old one is gone, never two at once', async () => {
    const { wal, jobs } = checkpoints();
    wal.wrote();
    await vi.waitFor(() => expect(jobs[0]!.posted).toEqual(['close']));
    wal.wrote();
    expect(jobs).toHaveLength(1);
    jobs[0]!.events.message({ closed: true });
    expect(jobs[0]!.detached).toBe(true);
    expect(jobs).toHaveLength(2);
    // That write is accounted for: the new job's own idle stop starts no third one.
    await vi.waitFor(() => expect(jobs[1]!.posted).toEqual(['close']));
    jobs[1]!.events.message({ closed: true });
    expect(jobs).toHaveLength(2);
  });

  it('a job lost during its final checkpoint ends the stop and hands over to SQLite for good, even with a write waiting', async () => {
    const { wal, jobs, fallBack, errors } = checkpoints();
    wal.wrote();
    await vi.waitFor(() => expect(jobs[0]!.posted).toEqual(['close']));
    wal.wrote();
    jobs[0]!.events.lost('the background thread exited');
    expect(fallBack).toHaveBeenCalledTimes(1);
    expect(errors).toEqual(['checkpoint worker: the background thread exited']);
    wal.wrote();
    expect(jobs).toHaveLength(1);
    await wal.close();
    expect(fallBack).toHaveBeenCalledTimes(1);
  });

  it('close during an idle stop waits for that stop; nothing starts after close', async () => {
    const { wal, jobs } = checkpoints();
    wal.wrote();
    await vi.waitFor(() => expect(jobs[0]!.posted).toEqual(['close']));
    let closed = false;
    const closing = wal.close().then(() => (closed = true));
    await Promise.resolve();
    expect(closed).toBe(false);
    jobs[0]!.events.message({ closed: true });
    await closing;
    expect(jobs[0]!.posted).toEqual(['close']);
    wal.wrote();
    expect(jobs).toHaveLength(1);
  });

  it('a job that never answers its final checkpoint is detached after a bound', async () => {
    const { wal, jobs } = checkpoints(60_000);
    wal.wrote();
    const started = performance.now();
    await wal.close();
    expect(jobs[0]!.posted).toEqual(['close']);
    expect(jobs[0]!.detached).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1900);
  });

  it('a job lost while it runs hands over to SQLite; a loss after close does not touch the closed file', async () => {
    const running = checkpoints(60_000);
    running.wal.wrote();
    running.jobs[0]!.events.lost('the background thread exited');
    expect(running.fallBack).toHaveBeenCalledTimes(1);
    expect(running.errors).toEqual(['checkpoint worker: the background thread exited']);
    await running.wal.close();

    const closing = checkpoints(60_000);
    closing.wal.wrote();
    const closed = closing.wal.close();
    closing.jobs[0]!.events.lost('the background thread exited');
    await closed;
    expect(closing.fallBack).not.toHaveBeenCalled();
    expect(closing.errors).toEqual(['checkpoint worker: the background thread exited']);
  });

  it('without onError, reports and losses are dropped, never thrown', () => {
    const { wal, jobs, fallBack } = checkpoints(60_000, false);
    wal.wrote();
    expect(() => jobs[0]!.events.message({ error: 'database is locked' })).not.toThrow();
    // A stray `closed` with no stop waiting is ignored.
    expect(() => jobs[0]!.events.message({ closed: true })).not.toThrow();
    expect(jobs[0]!.detached).toBe(false);
    expect(() => jobs[0]!.events.lost('the background thread exited')).not.toThrow();
    expect(fallBack).toHaveBeenCalledTimes(1);
  });

  it('a job that cannot start hands over to SQLite once, and is not tried again', () => {
    const { wal, attach, fallBack, errors } = checkpoints();
    attach.mockImplementation(() => {
      throw new Error('ERR_WORKER_INIT_FAILED');
    });
    wal.wrote();
    wal.wrote();
    expect(attach).toHaveBeenCalledTimes(1);
    expect(fallBack).toHaveBeenCalledTimes(1);
    expect(errors).toEqual(['checkpoint worker not started: ERR_WORKER_INIT_FAILED']);
  });

  it('checkpoint errors the job reports reach onError; the job goes on', () => {
    const { wal, jobs, errors } = checkpoints(60_000);
    wal.wrote();
    jobs[0]!.events.message({ error: 'database is locked' });
    expect(errors).toEqual(['checkpoint: database is locked']);
    expect(jobs[0]!.detached).toBe(false);
  });
});

describe('WAL checkpoints on the real background thread', () => {
  it('an idle ledger lets the thread go with the log folded in, and its next write brings it back', async () => {
    const path = join(tempDir('rp-wal-'), 'm.sqlite');
    const l = new SqliteLedger(path, { checkpointIntervalMs: 10, checkpointIdleMs: 200 });
    restore.push(() => void l.close());
    l.settle(null, record({ ref: 'a' }));
    expect(background.jobs).toBe(1);
    await vi.waitFor(() => expect(background.running).toBe(false), { timeout: 10_000, interval: 20 });
    // The final checkpoint was a TRUNCATE: the log is empty and the file holds the row.
    expect(existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0).toBe(0);
    l.settle(null, record({ ref: 'b' }));
    expect(background.jobs).toBe(1);
    await l.close();
    expect(background.running).toBe(false);
  });

  it('a job detached without its final checkpoint stops checkpointing while another job keeps the thread', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-walcp-'));
    const path = join(dir, 'x.sqlite');
    const db = new Database(path);
    restore.push(() => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    });
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE t (v TEXT)');
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const fill = () => {
      for (let i = 0; i < 200; i++) insert.run('x'.repeat(1000));
    };
    const none: JobEvents = { message: () => {}, lost: () => {} };
    const keeper = background.attach({ source: 'return () => {};', init: null }, none);
    restore.push(() => keeper.detach());
    const job = background.attach(checkpointJob(path, 20), none);
    fill();
    const before = statSync(path).size;
    // The job's checkpoints copy the log into the file.
    await vi.waitFor(() => expect(statSync(path).size).toBeGreaterThan(before), { timeout: 5_000, interval: 20 });
    job.detach();
    await new Promise((r) => setTimeout(r, 200));
    const after = statSync(path).size;
    fill();
    await new Promise((r) => setTimeout(r, 300));
    expect(statSync(path).size).toBe(after);
  });
});
