import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/metering/sqlite-ledger.js';
import { UNWRITTEN_MAX_BYTES, unwrittenJournalPath } from '../../src/metering/unwritten-journal.js';
import { tempDir } from '../support/temp-dir.js';

/*
 * The unwritten-records journal (`<ledger>-unwritten.jsonl`) is read at start, before the proxy
 * serves. check-config refuses one that is not a regular file, but run read whatever was there:
 * a FIFO (or a symlink to one, or to /dev/zero) blocked the whole start in readFileSync until some
 * writer came (or read until memory ran out), and a journal of garbage lines (a binary file copied
 * over it, a disk error) logged one line per garbage line: a 16 MiB file of newlines-and-junk wrote
 * millions of log lines before the first session. Both are bounded now: the journal is opened
 * without blocking and refused unless a regular file no larger than what the ledger ever writes,
 * and at most a few torn lines are logged, then one count.
 */

const JOURNAL_MAX_BYTES = 64 * 1024;

describe('redteam 17g: the journal read at start', () => {
  it('a FIFO in the journal place is refused at start, as check-config refuses it (not read)', async () => {
    const path = join(tempDir('rp-redteam-17g-fifo-'), 'ledger.sqlite');
    const journal = unwrittenJournalPath(path);
    expect(spawnSync('mkfifo', [journal]).status).toBe(0);
    // A writer that opens the FIFO and writes one record line: without it the old code blocked
    // forever in readFileSync (the test would hang); with it the old code started on what it read.
    const line = JSON.stringify({ id: 'r1', record: { tenant: 'acme', session: 's', source: 'response', ref: 'x', model: 'm', ts: 1, costNanos: 7, totalTokens: 1 } });
    const writer = spawn('sh', ['-c', `printf '%s\\n' '${line}' > "$1"`, 'sh', journal], { stdio: 'ignore' });
    const writerDone = new Promise<void>((resolve) => writer.once('exit', () => resolve()));
    let refused: unknown = null;
    try {
      const ledger = new SqliteLedger(path, { unwrittenMaxBytes: JOURNAL_MAX_BYTES });
      await ledger.close();
    } catch (err) {
      refused = err;
    } finally {
      // Refused without opening it for reading: release the writer still waiting for a reader.
      if (writer.exitCode === null) {
        const { openSync, closeSync, constants } = await import('node:fs');
        closeSync(openSync(journal, constants.O_RDONLY | constants.O_NONBLOCK));
        writer.kill('SIGKILL');
      }
      await writerDone;
    }
    // Before the fix: null (the ledger opened on the FIFO's content).
    expect(String(refused)).toMatch(/not a regular file/);
  });

  it('a journal larger than the ledger ever writes is refused, not read whole into memory', async () => {
    const path = join(tempDir('rp-redteam-17g-big-'), 'ledger.sqlite');
    writeFileSync(unwrittenJournalPath(path), Buffer.alloc(JOURNAL_MAX_BYTES * 4, 0x41));
    let refused: unknown = null;
    try {
      const ledger = new SqliteLedger(path, { unwrittenMaxBytes: JOURNAL_MAX_BYTES });
      await ledger.close();
    } catch (err) {
      refused = err;
    }
    // Before the fix: null (read whole; one skipped line logged).
    expect(String(refused)).toMatch(/larger than/);
  });

  it('a journal of garbage lines logs a bounded number of lines, then a count', async () => {
    const path = join(tempDir('rp-redteam-17g-junk-'), 'ledger.sqlite');
    const garbageLines = 20_000;
    writeFileSync(unwrittenJournalPath(path), 'x\n'.repeat(garbageLines));
    const logged: string[] = [];
    const ledger = new SqliteLedger(path, { unwrittenMaxBytes: JOURNAL_MAX_BYTES, onError: (m) => logged.push(m) });
    await ledger.close();
    // Before the fix: 20,000 (one log line per garbage line).
    expect(logged.length).toBeLessThanOrEqual(10);
    expect(logged.join('\n')).toContain(String(garbageLines));
  });
});

describe('redteam 17g: check-config and run agree on an oversized journal', () => {
  it('check-config refuses a journal larger than the proxy ever writes, naming it', () => {
    const dir = tempDir('rp-redteam-17g-cli-');
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'policies/default.yaml'), 'description: permissive\n');
    writeFileSync(join(dir, 'proxy.yaml'), 'server: { host: 127.0.0.1, port: 0, workers: 1 }\nadmin: { port: null }\nupstream: { provider: simulator }\nmetering: { ledger: { path: ledger.db } }\n');
    writeFileSync(join(dir, 'ledger.db-unwritten.jsonl'), Buffer.alloc(UNWRITTEN_MAX_BYTES + 1, 0x0a));
    const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
    const check = spawnSync(process.execPath, [bin, 'check-config', '--config', join(dir, 'proxy.yaml')], { encoding: 'utf8', env, timeout: 30_000 });
    // Before the fix: status 0 ("ok"), and run then read the whole file at start.
    expect(check.status).toBe(1);
    expect(check.stderr).toContain('  - metering.ledger.path: ');
    expect(check.stderr).toMatch(/ledger\.db-unwritten\.jsonl \(usage records left unwritten by a previous instance\) is \d+ bytes, larger than/);
  }, 60_000);
});
