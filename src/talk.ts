import { writeFileSync } from 'node:fs';
import WebSocket from 'ws';

/**
 * `realtime-proxy talk`: one turn through the proxy with a tenant key — text in, the spoken answer
 * out to a WAV file (24 kHz mono PCM16), the transcript and any proxy error or notice on the terminal.
 */

export interface TalkOptions {
  /** ws:// or wss:// URL of the proxy's /v1/realtime endpoint. */
  readonly url: string;
  readonly key: string;
  readonly model: string;
  /** What the user says (typed). */
  readonly text: string;
  /** WAV file for the answer's audio. */
  readonly out: string;
  readonly voice?: string;
  readonly timeoutMs: number;
  readonly write: (line: string) => void;
}

export interface TalkResult {
  readonly transcript: string;
  readonly audioBytes: number;
  readonly status: string;
  /** Error events the proxy or upstream sent (guardrail blocks, caps). */
  readonly errors: readonly { readonly code: string | null; readonly message: string }[];
  /** Close code when the session was ended by the proxy, else null. */
  readonly closeCode: number | null;
}

const SAMPLE_RATE = 24_000;

/** A 44-byte RIFF header for mono PCM16 followed by the samples. */
export function wav(pcm: Buffer, sampleRate = SAMPLE_RATE): Buffer {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + pcm.length, 4);
  header.write('WAVE', 8, 'ascii');
  header.write('fmt ', 12, 'ascii');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([header, pcm]);
}

interface ServerEvent {
  readonly type?: unknown;
  readonly delta?: unknown;
  readonly error?: { readonly code?: unknown; readonly message?: unknown };
  /** A proxy notice (`rtproxy.notice`): what the proxy did to an event it forwarded, or to the answer. */
  readonly notice?: { readonly code?: unknown; readonly message?: unknown };
  readonly response?: { readonly status?: unknown };
}

export function talk(opts: TalkOptions): Promise<TalkResult> {
  const url = new URL(opts.url);
  if (!url.searchParams.has('model')) url.searchParams.set('model', opts.model);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${opts.key}` }, handshakeTimeout: opts.timeoutMs });
    const audio: Buffer[] = [];
    let audioBytes = 0;
    let transcript = '';
    const errors: { code: string | null; message: string }[] = [];
    let status: string | null = null;
    let settled = false;
    const finish = (closeCode: number | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const pcm = Buffer.concat(audio);
      writeFileSync(opts.out, wav(pcm));
      resolve({ transcript, audioBytes, status: status ?? 'incomplete', errors, closeCode });
      ws.close(1000);
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      ws.terminate();
      reject(new Error(`no complete answer within ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        let detail = body;
        try {
          const e = (JSON.parse(body) as { error?: { code?: string; message?: string } }).error;
          if (e) detail = `${e.code ?? ''}: ${e.message ?? ''}`;
        } catch {
          // not JSON: show as is
        }
        reject(new Error(`the proxy refused the session (HTTP ${res.statusCode}) ${detail}`));
      });
    });
    ws.on('error', (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`cannot reach the proxy at ${url.origin}: ${err.message}`));
    });
    ws.on('open', () => {
      ws.send(
        JSON.stringify({
          type: 'session.update',
          session: {
            type: 'realtime',
            output_modalities: ['audio'],
            audio: { output: { format: { type: 'audio/pcm', rate: SAMPLE_RATE }, ...(opts.voice ? { voice: opts.voice } : {}) } },
          },
        }),
      );
      ws.send(JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: opts.text }] } }));
      ws.send(JSON.stringify({ type: 'response.create' }));
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let event: ServerEvent;
      try {
        event = JSON.parse(data.toString()) as ServerEvent;
      } catch {
        return;
      }
      switch (event.type) {
        case 'response.output_audio.delta':
          if (typeof event.delta === 'string') {
            const chunk = Buffer.from(event.delta, 'base64');
            audio.push(chunk);
            audioBytes += chunk.length;
          }
          break;
        case 'response.output_audio_transcript.delta':
        case 'response.output_text.delta':
          if (typeof event.delta === 'string') transcript += event.delta;
          break;
        case 'error': {
          const code = typeof event.error?.code === 'string' ? event.error.code : null;
          const message = typeof event.error?.message === 'string' ? event.error.message : '';
          errors.push({ code, message });
          opts.write(`proxy error ${code ?? ''}: ${message}`);
          break;
        }
        case 'rtproxy.notice': {
          const code = typeof event.notice?.code === 'string' ? event.notice.code : '';
          const message = typeof event.notice?.message === 'string' ? event.notice.message : '';
          opts.write(`proxy notice ${code}: ${message}`);
          break;
        }
        case 'response.done':
          status = typeof event.response?.status === 'string' ? event.response.status : 'completed';
          finish(null);
          break;
      }
    });
    ws.on('close', (code) => finish(code === 1000 || code === 1005 ? null : code));
  });
}
