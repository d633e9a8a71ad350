import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * The root logger. Lines are JSON; keys and audio never appear: the relay logs no frame contents,
 * and these paths are redacted as a second line of defence.
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
    },
    destination,
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
