import { connect } from 'node:net';
import WebSocket from 'ws';

/** One frame as the client received it: raw bytes, nothing parsed. */
export interface RawFrame {
  readonly data: Buffer;
  readonly binary: boolean;
}

/**
 * A client that records every byte it receives without interpreting it (a hostile upstream may
 * send anything; the assertion is on what reached the client). UTF-8 validation stays on, as in
 * every compliant client: invalid text fails the connection (1007 on our side).
 */
export class RawClient {
  readonly ws: WebSocket;
  readonly frames: RawFrame[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly refused: Promise<number>;
  readonly errors: Error[] = [];

  constructor(url: string, headers: Record<string, string>) {
    this.ws = new WebSocket(url, { headers, maxPayload: 256 * 1024 * 1024 });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
    this.refused = new Promise((resolve) => {
      this.ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
      });
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })));
    this.ws.on('error', (err) => this.errors.push(err));
    this.ws.on('message', (data, binary) => this.frames.push({ data: data as Buffer, binary }));
  }

  /** Every text frame parsed as JSON (throws if one is not: that itself is a finding). */
  events(): { type: string; [k: string]: unknown }[] {
    return this.frames.map((f) => JSON.parse(f.data.toString('utf8')) as { type: string });
  }

  errorCodes(): string[] {
    return this.events()
      .filter((e) => e.type === 'error')
      .map((e) => (e['error'] as { code: string }).code);
  }

  async waitFor(pred: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; frames: ${this.frames.map((f) => f.data.toString('utf8').slice(0, 120)).join(' | ')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** Sends raw request bytes on a fresh TCP connection; resolves with the status line (or '' on close). */
export function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(request));
    let got = '';
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) {
        resolve(got.split('\r\n')[0]!);
        s.destroy();
      }
    });
    s.on('error', () => resolve(got.split('\r\n')[0] ?? ''));
    s.on('close', () => resolve(got.split('\r\n')[0] ?? ''));
  });
}

export function upgradeRequest(path: string, headerLines: readonly string[]): string {
  return [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    ...headerLines,
    '',
    '',
  ].join('\r\n');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export { heldBytes } from '../support/heap.js';
