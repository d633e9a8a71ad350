import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { SpanKind } from '@opentelemetry/api';
import { hrTime as now } from '@opentelemetry/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { background } from '../../src/background/thread.js';
import { WorkerSpanExport } from '../../src/telemetry/span-export.js';
import { telemetrySchema } from '../../src/telemetry/config.js';
import { TelemetrySdk } from '../../src/telemetry/sdk.js';
import { resolveSettings } from '../../src/telemetry/settings.js';
import { OpenSpan } from '../../src/telemetry/span-records.js';
import { testTls } from '../support/tls.js';

/**
 * Issue 13: span export runs in a worker thread behind a bounded queue. Spans reach a real OTLP/HTTP
 * receiver through the worker; a full queue drops and counts; a failing endpoint is counted, never
 * thrown; handing a span over never exports inline.
 */

interface Rx {
  readonly server: Server;
  readonly url: string;
  readonly bodies: string[];
}

/** An OTLP/HTTP receiver answering `status`; over TLS with `tls` (a certificate and its key). */
async function receiver(status = 200, tls?: { readonly cert: Buffer; readonly key: Buffer }): Promise<Rx> {
  const bodies: string[] = [];
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  };
  const server = tls ? createHttpsServer(tls, onRequest) : createServer(onRequest);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, bodies };
}

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

function setup(url: string, options: { maxQueueSize?: number; maxBatchSize?: number; idleDetachMs?: number } = {}) {
  const processor = new WorkerSpanExport({
    protocol: 'http/json',
    url,
    headers: { 'x-test': 'yes' },
    resourceAttributes: { 'service.name': 'span-export-test' },
    scope: { name: 'test' },
    scheduledDelayMs: 60_000,
    exportTimeoutMs: 5_000,
    ...options,
  });
  cleanup.push(() => processor.shutdown());
  /** Ends a span named `name` at once and hands it over. */
  const emit = (name: string) => processor.emit(new OpenSpan(name, SpanKind.INTERNAL, now(), {}).end(now()));
  return { processor, emit };
}

/** A processor exporting to a fresh receiver answering `status`; both closed after the test. */
async function exporting(options: { maxQueueSize?: number; maxBatchSize?: number; idleDetachMs?: number } = {}, status = 200) {
  const rx = await receiver(status);
  cleanup.push(() => new Promise((r) => rx.server.close(r)));
  return { rx, ...setup(rx.url, options) };
}

describe('span export in a worker thread', () => {
  it('delivers spans with their tree, attributes, events, links and resource to an OTLP/HTTP receiver', async () => {
    const { rx, processor } = await exporting();
    const root = new OpenSpan('root', SpanKind.INTERNAL, now(), { 'rtproxy.tenant.id': 'acme', n: 3 });
    root.addEvent('first_audio', now(), { k: 'v' });
    const child = new OpenSpan('child', SpanKind.CLIENT, now(), {}, root.ref, [root.ref]);
    processor.emit(child.end(now()));
    processor.emit(root.end(now()));
    // emit() exported nothing inline: the batch waits for the worker.
    expect(processor.exported).toBe(0);
    await processor.forceFlush();
    expect(processor.exported).toBe(2);
    const body = JSON.parse(rx.bodies.join('')) as {
      resourceSpans: { resource: { attributes: { key: string }[] }; scopeSpans: { spans: { name: string; spanId: string; parentSpanId?: string; attributes: { key: string }[]; events: { name: string }[]; links: { spanId: string }[] }[] }[] }[];
    };
    const spans = body.resourceSpans[0]!.scopeSpans[0]!.spans;
    const r = spans.find((s) => s.name === 'root')!;
    const c = spans.find((s) => s.name === 'child')!;
    expect(c.parentSpanId).toBe(r.spanId);
    expect(c.links[0]!.spanId).toBe(r.spanId);
    expect(r.attributes.map((a) => a.key)).toEqual(expect.arrayContaining(['rtproxy.tenant.id', 'n']));
    expect(r.events[0]!.name).toBe('first_audio');
    expect(body.resourceSpans[0]!.resource.attributes.map((a) => a.key)).toContain('service.name');
  });

  it('a full queue drops spans and counts them; the rest still arrive', async () => {
    const { processor, emit } = await exporting({ maxQueueSize: 3, maxBatchSize: 100 });
    for (let i = 0; i < 5; i++) emit(`s${i}`);
    expect(processor.dropped).toBe(2);
    await processor.forceFlush();
    expect(processor.exported).toBe(3);
  });

  it('hands spans to the worker a small batch per event-loop turn (no long main-thread task), and every span arrives', async () => {
    const { rx, processor, emit } = await exporting({ maxBatchSize: 512 });
    for (let i = 0; i < 300; i++) emit(`s${i}`);
    await processor.forceFlush();
    expect(processor.exported).toBe(300);
    // One export per batch handed over: at most 64 spans each, so 300 spans take 5 of them.
    const sizes = rx.bodies.map((b) => (JSON.parse(b) as { resourceSpans: { scopeSpans: { spans: unknown[] }[] }[] }).resourceSpans[0]!.scopeSpans[0]!.spans.length);
    expect(sizes.sort((a, b) => a - b)).toEqual([44, 64, 64, 64, 64]);
  });

  it('an endpoint that fails is counted as failed, and nothing throws into the caller', async () => {
    const { processor, emit } = await exporting({}, 400);
    emit('lost');
    await processor.forceFlush();
    expect(processor.failed).toBe(1);
    expect(processor.exported).toBe(0);
  });

  it.each([
    [
      'the background thread dies',
      {},
      async () => {
        await background.kill();
        expect(background.running).toBe(false);
      },
    ],
    [
      'nothing was exported for the idle period (the job goes, and the thread with it)',
      { idleDetachMs: 200 },
      () => vi.waitFor(() => expect(background.running).toBe(false), { timeout: 10_000, interval: 20 }),
    ],
  ])('when %s, the next spans go through a new thread', async (_when, options, threadGone) => {
    const { rx, processor, emit } = await exporting(options);
    emit('before');
    await processor.forceFlush();
    expect(processor.exported).toBe(1);
    expect(background.jobs).toBe(1);
    await threadGone();
    emit('after');
    await processor.forceFlush();
    expect(processor.exported).toBe(2);
    expect(processor.failed).toBe(0);
    expect(rx.bodies.join('')).toContain('"after"');
  });

  it("an idle detach closes the exporter's keep-alive connection while another job keeps the thread", async () => {
    const { rx, processor, emit } = await exporting({ idleDetachMs: 200 });
    const open = new Set<Socket>();
    rx.server.on('connection', (socket: Socket) => {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
    });
    // Another job (the SQLite checkpoint, in the proxy) holds the thread after span export goes.
    const other = background.attach({ source: 'return () => {};', init: null }, { message: () => {}, lost: () => {} });
    cleanup.push(async () => other.detach());
    emit('one');
    await processor.forceFlush();
    expect(processor.exported).toBe(1);
    expect(open.size).toBe(1);
    await vi.waitFor(() => expect(background.jobs).toBe(1), { timeout: 10_000, interval: 20 });
    expect(background.running).toBe(true);
    await vi.waitFor(() => expect(open.size).toBe(0), { timeout: 5_000, interval: 20 });
  });

  it('an https collector signed by the CA in OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE is trusted; without it the export fails', async () => {
    const tls = testTls();
    const rx = await receiver(200, { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) });
    cleanup.push(() => new Promise((r) => rx.server.close(r)));
    const exportOnce = async (caFile: string | null) => {
      // The thread copies the environment when it starts.
      await background.kill();
      if (caFile) process.env['OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE'] = caFile;
      else delete process.env['OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE'];
      const { processor, emit } = setup(rx.url);
      emit(caFile ? 'trusted' : 'untrusted');
      await processor.forceFlush();
      delete process.env['OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE'];
      await processor.shutdown();
      return { exported: processor.exported, failed: processor.failed };
    };
    expect(await exportOnce(null)).toEqual({ exported: 0, failed: 1 });
    expect(await exportOnce(join(tls.dir, 'ca.crt'))).toEqual({ exported: 1, failed: 0 });
    expect(rx.bodies.join('')).toContain('"trusted"');
  });

  it('a thread that cannot be started again counts the batch as failed; nothing throws from the export timer', async () => {
    const { processor, emit } = await exporting();
    await background.kill();
    const attach = vi.spyOn(background, 'attach').mockImplementation(() => {
      throw new Error('ERR_WORKER_INIT_FAILED');
    });
    cleanup.push(async () => attach.mockRestore());
    emit('stranded');
    await processor.forceFlush();
    expect(processor.failed).toBe(1);
    expect(processor.exported).toBe(0);
    attach.mockRestore();
    emit('later');
    await processor.forceFlush();
    expect(processor.exported).toBe(1);
  });

  it('the thread starts with the first batch, not with the processor; shutdown ends its job, and the thread with it', async () => {
    expect(background.running).toBe(false);
    const { processor, emit } = await exporting();
    emit('last');
    // Queued for the (60 s) delay: nothing was handed over yet, so no thread holds memory for it.
    expect(background.running).toBe(false);
    await processor.forceFlush();
    expect(background.jobs).toBe(1);
    await processor.shutdown();
    expect(processor.exported).toBe(1);
    expect(background.jobs).toBe(0);
    expect(background.running).toBe(false);
  });

  it('a processor that never exported shuts down without starting the thread', async () => {
    const { processor } = await exporting();
    await processor.shutdown();
    expect(background.running).toBe(false);
    expect(processor.exported + processor.failed + processor.dropped).toBe(0);
  });

  it('a stalled collector with large spans: queued and in-flight bytes stay under telemetry.traces.maxQueueBytes, and the rest are dropped and counted in the metric', async () => {
    // A collector that takes every request and answers none until the test is over.
    const held: ServerResponse[] = [];
    let stalling = true;
    const stalled = createServer((req, res) => {
      req.resume();
      if (stalling) held.push(res);
      else res.end('{}');
    });
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(stalled.address() as AddressInfo).port}/v1/traces`;
    const budget = 1024 * 1024;
    const settings = resolveSettings(telemetrySchema().parse({ traces: { endpoint: url, protocol: 'http/json', maxQueueBytes: budget } }), {});
    const sdk = new TelemetrySdk(settings);
    cleanup.push(async () => {
      // Unstall first, so the shutdown's flush is answered instead of waiting out its timeout.
      stalling = false;
      for (const res of held.splice(0)) res.end('{}');
      await sdk.shutdown();
      await new Promise((r) => stalled.close(r));
    });
    const processor = sdk.spanExport!;
    // ~40 KB each: captured content is kept whole (capped by captureContent.maxChars, not the span string limit).
    const content = 'x'.repeat(40_000);
    const emitLarge = (n: number) => {
      for (let i = 0; i < n; i++) processor.emit(new OpenSpan(`big${i}`, SpanKind.INTERNAL, now(), { 'gen_ai.input.messages': content }).end(now()));
    };
    emitLarge(100);
    expect(processor.queuedBytes).toBeLessThanOrEqual(budget);
    // 1 MiB holds 26 such spans; the count bound (4096) alone would have queued all 100.
    expect(processor.dropped).toBe(74);
    // The batch reaches the collector and hangs there: in flight, its bytes still held.
    await vi.waitFor(() => expect(held.length).toBeGreaterThan(0), { timeout: 10_000, interval: 20 });
    emitLarge(50);
    expect(processor.dropped).toBe(124);
    expect(processor.queuedBytes).toBeLessThanOrEqual(budget);
    expect(processor.queuedBytes).toBeGreaterThan(budget - 41_000);
    expect(await sdk.metricsText()).toMatch(/rtproxy_telemetry_spans_total\{outcome="dropped"[^}]*\} 124\b/);
  });
});
