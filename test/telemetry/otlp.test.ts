import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * The real exporters over loopback: the proxy is built by the production wiring (createModules via
 * the shared harness) and exports to an OTLP/HTTP receiver written here.
 */

interface Received {
  readonly path: string;
  readonly contentType: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

async function receiver(): Promise<{ server: Server; url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', contentType: req.headers['content-type'] ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      const json = (req.headers['content-type'] ?? '').includes('json');
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean; arrayValue?: unknown };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: OtlpAttribute[];
  links?: { spanId: string }[];
}
interface OtlpTraces {
  resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

const attr = (attrs: OtlpAttribute[], key: string) => {
  const v = attrs.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : undefined) ?? v?.doubleValue ?? v?.boolValue;
};

let proxy: TestProxy | null = null;
let rx: Server | null = null;
afterEach(async () => {
  await proxy?.stop();
  proxy = null;
  await new Promise<void>((resolve) => (rx ? rx.close(() => resolve()) : resolve()));
  rx = null;
});

async function oneTurn(p: TestProxy): Promise<void> {
  const c = await p.client();
  await c.next('session.created');
  c.say('say:Exporting.');
  await c.next('response.done');
  c.close();
  await c.closed;
}

describe('OTLP/HTTP export (loopback receiver)', () => {
  it('http/json: the turn trace arrives with resource, span tree, attributes and configured headers', async () => {
    const r = await receiver();
    rx = r.server;
    proxy = await startTestProxy({
      config: {
        telemetry: {
          serviceName: 'rtproxy-e2e',
          traces: { endpoint: `${r.url}/v1/traces`, protocol: 'http/json', headers: { 'x-tenant-export': 'yes' } },
          metrics: { otlp: { enabled: true, endpoint: `${r.url}/v1/metrics`, protocol: 'http/json' } },
        },
      },
    });
    await oneTurn(proxy);
    await proxy.stop(); // flushes the batch processor and the metric reader
    proxy = null;
    const traces = r.received.filter((x) => x.path === '/v1/traces');
    expect(traces.length).toBeGreaterThan(0);
    expect(traces[0]!.contentType).toContain('application/json');
    expect(traces[0]!.headers['x-tenant-export']).toBe('yes');
    const spans: OtlpSpan[] = [];
    let resource: OtlpAttribute[] = [];
    for (const t of traces) {
      const body = JSON.parse(t.body.toString('utf8')) as OtlpTraces;
      for (const rs of body.resourceSpans) {
        resource = rs.resource.attributes;
        for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
    }
    expect(attr(resource, 'service.name')).toBe('rtproxy-e2e');
    expect(String(attr(resource, 'service.version'))).toMatch(/^\d+\.\d+\.\d+/);
    const root = spans.find((s) => s.name === 'invoke_agent')!;
    const connect = spans.find((s) => s.name === 'rtproxy.session.connect')!;
    expect(root).toBeDefined();
    expect(connect).toBeDefined();
    expect(root.links?.[0]?.spanId).toBe(connect.spanId);
    const children = spans.filter((s) => s.traceId === root.traceId && s !== root);
    expect(children.map((s) => s.name)).toEqual(['realtime_inference gpt-realtime']);
    expect(children[0]!.parentSpanId).toBe(root.spanId);
    expect(children[0]!.kind).toBe(3); // SPAN_KIND_CLIENT
    expect(attr(root.attributes, 'gen_ai.agent.invocation.end_reason')).toBe('completed');
    expect(attr(root.attributes, 'rtproxy.tenant.id')).toBe('acme');
    expect(attr(children[0]!.attributes, 'gen_ai.usage.output_tokens')).toBeGreaterThan(0);
    expect(attr(children[0]!.attributes, 'gen_ai.response.id')).toMatch(/^resp_/);

    const metrics = r.received.filter((x) => x.path === '/v1/metrics');
    expect(metrics.length).toBeGreaterThan(0);
    expect(metrics.map((m) => m.body.toString('utf8')).join('')).toContain('"rtproxy.turns"');
  });

  it('http/protobuf (the default protocol) via OTEL_* style endpoint config', async () => {
    const r = await receiver();
    rx = r.server;
    proxy = await startTestProxy({ config: { telemetry: { traces: { endpoint: `${r.url}/v1/traces` } } } });
    await oneTurn(proxy);
    await proxy.stop();
    proxy = null;
    const traces = r.received.filter((x) => x.path === '/v1/traces');
    expect(traces.length).toBeGreaterThan(0);
    expect(traces[0]!.contentType).toBe('application/x-protobuf');
    const raw = Buffer.concat(traces.map((t) => t.body)).toString('latin1');
    // Protobuf strings are stored verbatim: span names and attribute keys are visible.
    expect(raw).toContain('invoke_agent');
    expect(raw).toContain('realtime_inference gpt-realtime');
    expect(raw).toContain('gen_ai.usage.input_tokens');
  });

  it('Prometheus on a separate port when configured; the proxy port then has no /metrics', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    proxy = await startTestProxy({ config: { telemetry: { metrics: { prometheus: { port, host: '127.0.0.1' } } } } });
    await oneTurn(proxy);
    let text = '';
    for (let i = 0; i < 50 && !text.includes('rtproxy_turns_total'); i++) {
      text = await fetch(`http://127.0.0.1:${port}/metrics`).then((res) => res.text(), () => '');
      if (!text.includes('rtproxy_turns_total')) await new Promise((res) => setTimeout(res, 20));
    }
    expect(text).toContain('rtproxy_turns_total{');
    expect((await fetch(`${proxy.httpUrl}/metrics`)).status).toBe(404);
  });

  it('telemetry.enabled: false adds no filter and no route', async () => {
    proxy = await startTestProxy({ config: { telemetry: { enabled: false } } });
    expect((await fetch(`${proxy.httpUrl}/metrics`)).status).toBe(404);
    const ready = proxy.logs.find((l) => l.msg === 'realtime proxy listening');
    expect(ready?.['filters']).not.toContain('telemetry');
    await oneTurn(proxy);
    expect(proxy.logs.some((l) => l.msg === 'turn end')).toBe(false);
  });
});
