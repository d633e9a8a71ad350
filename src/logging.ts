import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Longest string a top-level log field keeps. Fields such as an unknown event type, a close reason
 * or a model name come from clients and the upstream; a frame may be 16 MiB, and one field of it
 * would make a 16 MiB log line (and carry whatever text the client put there). Captured
 * transcripts are exempt: redacted and capped by `captureContent.maxChars` already.
 */
export const LOG_STRING_LIMIT = 1024;
const UNCAPPED_FIELDS: ReadonlySet<string> = new Set(['inputTranscript', 'outputTranscript']);

/**
 * Longest string a session logger's binding keeps (the `model` a client names in the URL or a
 * call's session). Bindings are written on every line of the session and pino's log formatter
 * (capLogFields) never sees them: until 2026-12-06 a 12 000-character `?model=` (admitted with
 * `metering.fallbackPrice`) was repeated whole on each of its session's lines.
 */
export const LOG_BINDING_LIMIT = 256;

/** A client-named value fit to be a child logger's binding: cut at LOG_BINDING_LIMIT, marked like capLogFields. */
export function capLogBinding(value: string): string {
  return value.length <= LOG_BINDING_LIMIT ? value : `${value.slice(0, LOG_BINDING_LIMIT)}… [${value.length} chars]`;
}

/** pino's log formatter: the object itself when nothing is too long (the common case), else a copy with long strings cut. */
export function capLogFields(obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | null = null;
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    if (typeof v !== 'string' || v.length <= LOG_STRING_LIMIT || UNCAPPED_FIELDS.has(key)) continue;
    out ??= { ...obj };
    out[key] = `${v.slice(0, LOG_STRING_LIMIT)}… [${v.length} chars]`;
  }
  return out ?? obj;
}

let stdoutErrorsIgnored = false;

/**
 * The log destination of every process of the proxy (single process, primary, relay worker): its
 * stdout written as a Node stream. Not pino's default (sonic-boom 4), whose exit hook writes what is
 * still buffered synchronously and retries a write failing EPIPE forever: a process whose stdout's
 * reader had gone (`realtime-proxy run | head -1`, a dead log shipper, a relay worker's dead
 * primary) hung in process.exit() once its drain ended, holding its ports (until 2026-12-07:
 * test/ops/redteam-21-closed-stdout.test.ts, test/ops/redteam-21-orphaned-worker.test.ts). A line
 * written after the reader has gone is dropped: nobody reads it.
 */
export function stdoutDestination(): DestinationStream {
  if (!stdoutErrorsIgnored) {
    stdoutErrorsIgnored = true;
    process.stdout.on('error', () => {
      // EPIPE: the reader is gone; the process goes on without its log lines.
    });
  }
  return { write: (line: string) => void process.stdout.write(line) };
}

/**
 * The root logger, on stdout unless told otherwise (stdoutDestination). Lines are JSON; keys and
 * audio never appear: the relay logs no frame contents, and these paths are redacted as a second
 * line of defence.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'realtime-proxy' },
      redact: {
        paths: ['authorization', 'headers.authorization', 'headers["api-key"]', 'apiKey', 'key', '*.apiKey', 'audio', 'delta', '*.audio', '*.delta'],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { log: capLogFields },
    },
    destination ?? stdoutDestination(),
  );
}

/** Query parameters whose values are credentials (Azure `api-key`, signed URLs, tokens). */
const SECRET_PARAMS = /^(api[-_]?key|key|token|access[-_]?token|sig|signature|password|secret|auth|authorization|code)$/i;

/**
 * A URL safe to log: userinfo (`user:password@`) and credential-like query values replaced by
 * `[redacted]`. Anything that does not parse as a URL is logged as `[unparseable url]`, not verbatim.
 */
export function redactUrl(raw: string | null | undefined): string | null {
  if (raw === null || raw === undefined) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return '[unparseable url]';
  }
  if (url.username) url.username = 'redacted';
  if (url.password) url.password = 'redacted';
  for (const key of [...url.searchParams.keys()]) if (SECRET_PARAMS.test(key)) url.searchParams.set(key, 'redacted');
  return url.toString();
}
