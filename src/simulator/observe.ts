/**
 * A test hook: observers see every event the simulator sends, as sent. The test suite installs one
 * (test/support/setup.ts, when RTPROXY_SIM_CONTRACT_DIR is set) that validates each event against
 * the `openai` package's types. Without observers the cost is one length check per event.
 */
export type SentEventObserver = (event: unknown) => void;

const observers: SentEventObserver[] = [];

/** Adds an observer; returns its removal. */
export function observeSentEvents(observer: SentEventObserver): () => void {
  observers.push(observer);
  return () => {
    const i = observers.indexOf(observer);
    if (i >= 0) observers.splice(i, 1);
  };
}

export function notifySent(event: unknown): void {
  if (observers.length === 0) return;
  for (const o of observers) o(event);
}
