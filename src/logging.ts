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
