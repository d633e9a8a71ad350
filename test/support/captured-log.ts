import pino, { type Level, type Logger } from 'pino';

/** One parsed pino line, as an operator's log shipper would see it. */
export type LogLine = Record<string, unknown>;

/** A pino logger whose lines are kept, parsed, in `lines` (tests assert on what operators read). */
export function capturedLog(level: Level = 'info'): { readonly log: Logger; readonly lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { log, lines };
}
