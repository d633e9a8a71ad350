import OpenAI from 'openai';
import { OpenAIRealtimeTranslationWS } from 'openai/realtime/translations/ws';
import { join } from 'node:path';
import { ADMIN_KEY } from '../metering/support.js';
import type { TranslatedFrame } from '../../src/simulator/index.js';
import { policyDir } from '../policies/support.js';
import { startTestProxy, type TestProxy, type TestProxyOptions } from '../support/harness.js';
import { tempDir } from '../support/temp-dir.js';

/*
 * A translation session opened through the proxy with `openai`'s own OpenAIRealtimeTranslationWS
 * (TLS on loopback: the SDK dials wss: only), every frame it receives kept in order.
 */

export type Received = { readonly type: string; readonly [key: string]: unknown };

export interface Session {
  readonly translation: OpenAIRealtimeTranslationWS;
  readonly frames: Received[];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Resolves with the first received frame of `type` (already received or still to come). */
  next(type: string): Promise<Received>;
}

/** A proxy serving wss:// with a test CA: the relay harness's TestProxy, or the telemetry tests' proxy. */
export type TranslationTarget = Pick<TestProxy, 'key' | 'ca'> & { readonly proxy: { readonly tlsPort: number | null } };

export async function openTranslation(tp: TranslationTarget, model = 'gpt-realtime-translate'): Promise<Session> {
  const client = new OpenAI({ apiKey: tp.key(), baseURL: `https://127.0.0.1:${tp.proxy.tlsPort}/v1` });
  const translation = await OpenAIRealtimeTranslationWS.create(client, { model, options: { ca: tp.ca! } });
  // Error events arrive on `event` too; the SDK also reports them here.
  translation.on('error', () => undefined);
  const frames: Received[] = [];
  const waiters: Array<{ type: string; resolve: (e: Received) => void }> = [];
  translation.on('event', (e) => {
    const ev = e as Received;
    frames.push(ev);
    for (const w of waiters.filter((x) => x.type === ev.type)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(ev);
    }
  });
  const ws = translation.socket.platformSocket;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  return {
    translation,
    frames,
    closed,
    next: (type) => {
      const seen = frames.find((f) => f.type === type);
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ type, resolve }));
    },
  };
}

/** A proxy with the admin key and a ledger in a fresh SQLite file (`metering` merged over it), for the translation tests that read usage. */
export function meteredProxy(options: TestProxyOptions & { metering?: Record<string, unknown> } = {}): Promise<TestProxy> {
  const { metering, ...rest } = options;
  return startTestProxy({
    ...rest,
    config: { ...rest.config, admin: { key: ADMIN_KEY }, metering: { ledger: { path: join(tempDir('rp-translate-'), 'ledger.sqlite') }, ...metering } },
  });
}

/** 200 ms of 24 kHz PCM16 silence (one translated frame), base64. */
export const SILENT_FRAME = Buffer.alloc(200 * 48).toString('base64');

/** Each frame's type, and its transcript delta where it has one. */
export const shownFrames = (frames: readonly Received[]): string[] => frames.map((f) => (f.type.endsWith('transcript.delta') ? `${f.type}: ${String(f['delta'])}` : f.type));

/**
 * A proxy (TLS on loopback) whose tenant `acme` runs the policy `translate.yaml` of `policyFiles`
 * (with any custom guardrail modules beside it), the simulator translating frame n as `said[n]` (the
 * last one after). `cleanups` gets its stop.
 */
export async function translatingProxy(policyFiles: Record<string, string>, said: readonly TranslatedFrame[], cleanups: Array<() => Promise<void>>): Promise<TestProxy> {
  const tp = await startTestProxy({
    tls: true,
    tenants: { acme: { policy: 'translate' } },
    config: { policies: { dir: policyDir(policyFiles), watch: false } },
    simulator: { translate: ({ frame }) => said[Math.min(frame, said.length - 1)]! },
  });
  cleanups.push(() => tp.stop());
  return tp;
}
