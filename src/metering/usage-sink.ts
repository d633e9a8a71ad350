import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { UsageRecord } from './ledger.js';
import { formatUsd } from './money.js';

/** The JSON-lines shape of a usage record (export file and GET /admin/usage). */
export function usageLine(r: UsageRecord): string {
  return JSON.stringify({ ...r, ts: new Date(r.ts).toISOString(), costUsd: formatUsd(r.costNanos) }) + '\n';
}

/** Appends every usage record to a JSON-lines file (asynchronous writes, off the frame path). */
export class UsageFileSink {
  readonly #stream: WriteStream;
  #failed = false;

  constructor(path: string, log: Logger) {
    mkdirSync(dirname(path), { recursive: true });
    this.#stream = createWriteStream(path, { flags: 'a' });
    this.#stream.on('error', (err) => {
      if (!this.#failed) log.error({ err: err.message, path }, 'metering usage export failed');
      this.#failed = true;
    });
  }

  write(record: UsageRecord): void {
    if (!this.#failed) this.#stream.write(usageLine(record));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#stream.end(() => resolve()));
  }
}
