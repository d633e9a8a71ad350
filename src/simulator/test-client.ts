import WebSocket from 'ws';

export type AnyEvent = { type: string; [key: string]: unknown };

export interface TestClient {
  readonly ws: WebSocket;
  /** Every server event so far, parsed, in order. */
  readonly events: AnyEvent[];
  /** Raw text of every server frame, in order. */
  readonly raw: string[];
  send(event: unknown): void;
  /** Resolves with the first event (from `from`, default: the next unseen one) matching. */
  waitFor(match: string | ((e: AnyEvent) => boolean), timeoutMs?: number): Promise<AnyEvent>;
  readonly closed: Promise<{ code: number; reason: string }>;
  close(code?: number): Promise<{ code: number; reason: string }>;
}

/** A plain `ws` client for simulator tests: collects events and waits for them by type. */
export async function connectClient(url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<TestClient> {
  const { protocols, ...wsOptions } = options;
  const ws = new WebSocket(url, protocols ?? [], wsOptions);
  const events: AnyEvent[] = [];
  const raw: string[] = [];
  let cursor = 0;
  const waiters: Array<() => void> = [];
  ws.on('message', (data) => {
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(new Uint8Array(data)).toString('utf8');
    raw.push(text);
    events.push(JSON.parse(text) as AnyEvent);
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString('utf8') });
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.on('error', () => {});
  return {
    ws,
    events,
    raw,
    closed,
    send(event) {
      ws.send(typeof event === 'string' ? event : JSON.stringify(event));
    },
    waitFor(match, timeoutMs = 5000) {
      const pred = typeof match === 'string' ? (e: AnyEvent) => e.type === match : match;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${typeof match === 'string' ? match : 'event'}; got ${events.slice(cursor).map((e) => e.type).join(', ')}`)), timeoutMs);
        const check = (): void => {
          while (cursor < events.length) {
            const e = events[cursor++]!;
            if (pred(e)) {
              clearTimeout(timer);
              resolve(e);
              return;
            }
          }
          if (ws.readyState === WebSocket.CLOSED) {
            clearTimeout(timer);
            reject(new Error(`socket closed while waiting for ${typeof match === 'string' ? match : 'event'}`));
            return;
          }
          waiters.push(check);
        };
        check();
      });
    },
    async close(code = 1000) {
      if (ws.readyState === WebSocket.OPEN) ws.close(code);
      return closed;
    },
  };
}
