import { closeSync, constants, existsSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { UsageRecord } from './ledger.js';

/** A usage record the SQLite file refused, with the id its row gets once written (replays skip it then). */
export interface JournalEntry {
  readonly id: string;
  readonly record: UsageRecord;
}

/** Default bound of the usage records kept in memory while the file refuses writes, and of their journal (bytes of JSON). */
export const UNWRITTEN_MAX_BYTES = 16 * 1024 * 1024;

/** The journal of a ledger file: beside it, so on the same volume and in the same backups. */
export const unwrittenJournalPath = (ledgerPath: string): string => `${ledgerPath}-unwritten.jsonl`;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** The fields the ledger writes and counts; a line lacking one is not a record this code wrote. */
function entryOf(v: unknown): JournalEntry | null {
  if (!isObject(v) || typeof v['id'] !== 'string' || v['id'] === '' || !isObject(v['record'])) return null;
  const r = v['record'];
  const texts = ['tenant', 'session', 'source', 'ref', 'model'].every((k) => typeof r[k] === 'string');
  if (!texts || !isInt(r['ts']) || !isInt(r['costNanos']) || !isInt(r['totalTokens'])) return null;
  // Checked above: the JSON is the record as JSON.stringify wrote it.
  return { id: v['id'], record: r as unknown as UsageRecord };
}

const lineOf = (e: JournalEntry): string => JSON.stringify({ id: e.id, record: e.record }) + '\n';

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Torn lines logged one by one at start; past them, one count (a binary file there is millions of "lines"). */
const TORN_LINES_LOGGED = 3;

/**
 * The SQLite ledger's records waiting to be written, also on disk: one JSON line each, fsync'd,
 * in a file beside the ledger's, so that an instance that dies (crash, kill -9, OOM) while records
 * wait does not take them with it; the next one replays them at start. SQLite fails for reasons
 * (SQLITE_BUSY, a locked or damaged file, an I/O error on the database) that leave an append-only
 * file writable; when this file fails too, the records are in memory only, as before it existed.
 *
 * Never larger than `maxBytes`. It holds every waiting record, or (`complete` false) some of them:
 * a write failed, or they did not fit. `mirror` then rewrites it from the waiting records.
 */
export class UnwrittenJournal {
  readonly path: string;
  readonly #maxBytes: number;
  readonly #onError: (message: string) => void;
  #fd: number | null = null;
  #bytes = 0;
  #complete = true;
  /** The last write failed (not a full file): the next `mirror` tries again even if nothing drained. */
  #failing = false;
  /** Logged once per episode: the failure, the file being full. */
  #saidFailing = false;
  #saidFull = false;

  constructor(path: string, maxBytes: number, onError: (message: string) => void) {
    this.path = path;
    this.#maxBytes = maxBytes;
    this.#onError = onError;
  }

  /** It holds every record waiting (what a crash would otherwise lose). */
  get complete(): boolean {
    return this.#complete;
  }

  get failing(): boolean {
    return this.#failing;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * The entries a previous instance left, in order. A line that does not parse (torn by a crash
   * during its append) is skipped and logged. Until `mirror` or `clear`, nothing is appended: the
   * file's end may be such a line.
   */
  read(): JournalEntry[] {
    if (!existsSync(this.path)) return [];
    this.#complete = false;
    this.#failing = true;
    const text = this.#readBounded();
    const entries: JournalEntry[] = [];
    const lines = text.split('\n');
    let torn = 0;
    lines.forEach((line, i) => {
      if (line === '') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = null;
      }
      const entry = entryOf(parsed);
      if (entry) {
        entries.push(entry);
        return;
      }
      torn++;
      if (torn <= TORN_LINES_LOGGED) this.#onError(`${this.path}: line ${i + 1} is not a whole usage record (torn by a crash while it was written?); skipped: ${line.slice(0, 200)}`);
    });
    if (torn > TORN_LINES_LOGGED) this.#onError(`${this.path}: ${torn} lines in all were not whole usage records and were skipped (the first ${TORN_LINES_LOGGED} logged above)`);
    return entries;
  }

  /**
   * The file's text, refused (start stops: they are spend the caps must see) unless it is a regular
   * file no larger than this journal ever grows. Until 2026-12-07 run read whatever was there: a FIFO
   * blocked the start until a writer came, /dev/zero behind a symlink read until memory ran out, and
   * check-config refused what run accepted (test/metering/redteam-17g-journal-start.test.ts).
   * Opened without blocking (a FIFO's open waits for a writer otherwise), then checked by its fd.
   */
  #readBounded(): string {
    const unreadable = (why: string): Error =>
      new Error(`${this.path}: the usage records a previous instance could not write are unreadable (${why}); fix or move the file away to start without them`);
    let fd: number;
    try {
      fd = openSync(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      throw unreadable(messageOf(err));
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw unreadable('not a regular file: the proxy writes that file only while the ledger file refuses writes');
      if (stat.size > this.#maxBytes) throw unreadable(`${stat.size} bytes, larger than the ${this.#maxBytes} this journal ever holds: not a file the proxy wrote`);
      return readFileSync(fd, 'utf8');
    } catch (err) {
      if (err instanceof Error && err.message.startsWith(`${this.path}: `)) throw err;
      throw unreadable(messageOf(err));
    } finally {
      closeSync(fd);
    }
  }

  /** Adds the newest waiting record (`entry`, last of them); fsync'd before returning. */
  append(entry: JournalEntry): void {
    if (!this.#complete) return; // the next mirror writes it with the others
    const line = lineOf(entry);
    const size = Buffer.byteLength(line);
    if (this.#bytes + size > this.#maxBytes) {
      this.#complete = false;
      this.#full();
      return;
    }
    try {
      this.#fd ??= openSync(this.path, 'a');
      writeSync(this.#fd, line);
      fsyncSync(this.#fd);
      this.#bytes += size;
      this.#saidFailing = false;
    } catch (err) {
      // A partial line would tear the next one: cut back to the last whole line.
      try {
        if (this.#fd !== null) ftruncateSync(this.#fd, this.#bytes);
      } catch {
        // The next mirror replaces the file.
      }
      this.#fail(err);
    }
  }

  /**
   * Replaces the file with the waiting records, oldest first, as many as fit (a new file renamed
   * over the old: a crash leaves one or the other whole). On failure the old file stays: a superset
   * or a prefix, never a torn line followed by others.
   */
  mirror(waiting: readonly JournalEntry[]): void {
    let text = '';
    let size = 0;
    let kept = 0;
    for (const entry of waiting) {
      const line = lineOf(entry);
      const n = Buffer.byteLength(line);
      if (size + n > this.#maxBytes) break;
      text += line;
      size += n;
      kept++;
    }
    const tmp = `${this.path}.tmp`;
    try {
      this.#closeFd();
      const fd = openSync(tmp, 'w');
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
      this.#syncDir();
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // Not made, or the directory refuses even that: the next mirror overwrites it.
      }
      this.#fail(err);
      return;
    }
    this.#bytes = size;
    this.#failing = false;
    this.#saidFailing = false;
    this.#complete = kept === waiting.length;
    if (this.#complete) this.#saidFull = false;
    else this.#full();
  }

  /** No record waits any more: the file goes. */
  clear(): void {
    this.#closeFd();
    try {
      if (existsSync(this.path)) unlinkSync(this.path);
    } catch (err) {
      // Its records are in the ledger file now (a replay skips them); the next write replaces it.
      this.#fail(err);
      return;
    }
    this.#bytes = 0;
    this.#complete = true;
    this.#failing = false;
    this.#saidFailing = false;
    this.#saidFull = false;
  }

  /** Shutdown: the file stays for the next start when records still wait. */
  close(): void {
    this.#closeFd();
  }

  #fail(err: unknown): void {
    this.#complete = false;
    this.#failing = true;
    if (this.#saidFailing) return;
    this.#saidFailing = true;
    this.#onError(`${this.path}: usage records waiting for the ledger file could not be kept on disk (${messageOf(err)}); in memory only, lost if the process dies before they are written`);
  }

  #full(): void {
    if (this.#saidFull) return;
    this.#saidFull = true;
    this.#onError(`${this.path}: full (${this.#maxBytes} bytes); newer usage records waiting for the ledger file are in memory only, lost if the process dies before they are written`);
  }

  #closeFd(): void {
    if (this.#fd === null) return;
    const fd = this.#fd;
    this.#fd = null;
    try {
      closeSync(fd);
    } catch {
      // Already unusable: nothing left to release.
    }
  }

  /** The rename's directory entry on disk (power loss); not every platform opens a directory. */
  #syncDir(): void {
    let fd: number | null = null;
    try {
      fd = openSync(dirname(this.path), 'r');
      fsyncSync(fd);
    } catch {
      // Best effort: the rename itself is already visible to any process.
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }
}
