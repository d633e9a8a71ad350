import { CloseCode, ErrorCatalogue, ProxyError, type CloseCodeName, type ProxyErrorCode } from '../protocol/errors.js';
import type { AppUpdateSeen } from './responses-hold.js';
import type { CallEndReason } from './store.js';

/** How long a client socket whose upstream closed waits for the call's record (one read) before passing the close on as it came. */
export const END_REASON_READ_MS = 1000;

/** The error a governing sideband ends its call with, as the call's store record keeps it (CallRecord.endedByProxy). */
export function endReasonOf(error: ProxyError): CallEndReason {
  return { code: error.code, message: error.message, closeCode: error.closeCode ?? CloseCode.internalError, ...(error.details ? { details: error.details } : {}) };
}

const closeNames = new Map<number, CloseCodeName>(Object.entries(CloseCode).map(([name, code]) => [code, name as CloseCodeName]));
const isErrorCode = (code: unknown): code is ProxyErrorCode => typeof code === 'string' && Object.hasOwn(ErrorCatalogue, code);
const isDetail = (v: unknown): boolean => v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

/**
 * The error a client socket on the call ends with, from its record's `endedByProxy` (written by
 * another process, possibly another version): null when absent, cleared, or not one the proxy
 * makes (an unknown code or close code), and the socket ends as the upstream closed it.
 */
export function errorOfEndReason(reason: unknown): ProxyError | null {
  if (reason === null || typeof reason !== 'object') return null;
  const { code, message, closeCode, details } = reason as Record<string, unknown>;
  const close = typeof closeCode === 'number' ? closeNames.get(closeCode) : undefined;
  if (!isErrorCode(code) || typeof message !== 'string' || close === undefined) return null;
  const facts = details !== null && typeof details === 'object' && !Array.isArray(details) && Object.values(details).every(isDetail) ? (details as Record<string, string | number | boolean | null>) : undefined;
  return new ProxyError(code, { message, close, ...(facts ? { details: facts } : {}) });
}

/** Longer than any event id the upstream gives: a recorded answer's id past it is not read. */
const MAX_EVENT_ID_CHARS = 256;

/** The app's update as another process recorded it (CallRecord.appUpdate), or null when absent or not one this version reads. */
export function appUpdateOf(recorded: unknown): AppUpdateSeen | null {
  if (recorded === null || typeof recorded !== 'object') return null;
  const { choice, turnDetection, answerEventId } = recorded as Record<string, unknown>;
  if (choice === null || typeof choice !== 'object') return null;
  const { kind, createResponse } = choice as Record<string, unknown>;
  const detection = turnDetection === null ? null : turnDetection !== undefined && typeof turnDetection === 'object' && !Array.isArray(turnDetection) ? (turnDetection as Record<string, unknown>) : undefined;
  const answer = typeof answerEventId === 'string' && answerEventId.length <= MAX_EVENT_ID_CHARS ? { answerEventId } : {};
  const seen = (c: AppUpdateSeen['choice']): AppUpdateSeen => (detection === undefined ? { choice: c, ...answer } : { choice: c, turnDetection: detection, ...answer });
  if (kind === 'untouched' || kind === 'off') return seen({ kind });
  if (kind === 'set' && (createResponse === null || typeof createResponse === 'boolean')) return seen({ kind, createResponse });
  return null;
}
