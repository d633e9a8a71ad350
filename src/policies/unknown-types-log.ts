import type { Logger } from 'pino';
import type { CompiledPolicy } from './compile.js';

/**
 * Unknown event / item types one session logs, one line per type and direction; past this they are
 * counted only (`rtproxy_guardrail_unknown_content_total`), and one line says so. Until 2026-12-06
 * a process-wide set of 1024 types, never reset: one tenant's 1024 made-up types silenced the line
 * for every session, and a type one tenant sent first was never logged for another.
 */
export const MAX_UNKNOWN_LOGGED_PER_SESSION = 16;

/** The log lines one session writes about event and content types not in the content-path table. */
export class UnknownTypesLog {
  /** `direction:type` of the unknown types this session logged (at most MAX_UNKNOWN_LOGGED_PER_SESSION). */
  #logged: Set<string> | null = null;
  #capLogged = false;

  /** The session's first line about each unknown type (and direction), up to MAX_UNKNOWN_LOGGED_PER_SESSION; then one line saying the rest are only counted. */
  log(log: Logger, type: string, direction: 'client' | 'server', policy: CompiledPolicy): void {
    const key = `${direction}:${type}`;
    const logged = (this.#logged ??= new Set());
    if (logged.has(key)) return;
    if (logged.size < MAX_UNKNOWN_LOGGED_PER_SESSION) {
      logged.add(key);
      log.warn({ eventType: type, direction, policy: policy.name, action: policy.unknownContentEvents }, 'event type not in the content-path table');
      return;
    }
    if (this.#capLogged) return;
    this.#capLogged = true;
    log.warn(
      { limit: MAX_UNKNOWN_LOGGED_PER_SESSION, policy: policy.name, action: policy.unknownContentEvents },
      'more event types not in the content-path table: the rest of this session\'s are counted (rtproxy_guardrail_unknown_content_total), not logged',
    );
  }
}
