import { createRequire } from 'node:module';

/**
 * The span-export job of the background thread (see span-export.ts and background/thread.ts): owns
 * the OTLP trace exporter, so serialisation, compression and HTTP never run on the proxy's event
 * loop. It receives plain span records and answers each batch with its outcome.
 *
 * The job is source text in plain JavaScript, so it starts the same way from the TypeScript sources
 * (tsx, vitest) and from the compiled build; the modules it loads are resolved here, next to this
 * file, and passed in as absolute paths.
 */

const require = createRequire(import.meta.url);

/** Absolute paths of the packages the worker loads (CommonJS builds). */
export function workerModules(protocol: 'http/protobuf' | 'http/json'): { readonly exporter: string; readonly resources: string } {
  return {
    exporter: require.resolve(protocol === 'http/json' ? '@opentelemetry/exporter-trace-otlp-http' : '@opentelemetry/exporter-trace-otlp-proto'),
    resources: require.resolve('@opentelemetry/resources'),
  };
}

export const SPAN_EXPORT_JOB = String.raw`
const { OTLPTraceExporter } = require(init.modules.exporter);
const { resourceFromAttributes } = require(init.modules.resources);
// The exporter's HTTP agent is made here so the job can close its keep-alive socket when it is
// detached (the thread may go on for another job). TLS files from the OTEL_EXPORTER_OTLP_* variables,
// as the exporter's own agent would read them.
const tlsFile = (name) => {
  const path = process.env['OTEL_EXPORTER_OTLP_TRACES_' + name] || process.env['OTEL_EXPORTER_OTLP_' + name];
  if (!path) return undefined;
  try {
    return require('node:fs').readFileSync(path);
  } catch {
    return undefined;
  }
};
let agent = null;
const agentFor = (protocol) => {
  if (protocol === 'http:') return (agent = new (require('node:http').Agent)({ keepAlive: true }));
  return (agent = new (require('node:https').Agent)({ keepAlive: true, ca: tlsFile('CERTIFICATE'), cert: tlsFile('CLIENT_CERTIFICATE'), key: tlsFile('CLIENT_KEY') }));
};
const exporter = new OTLPTraceExporter({ url: init.url, headers: Object.assign({}, init.headers), httpAgentOptions: agentFor });
const resource = resourceFromAttributes(init.resourceAttributes);

// A ReadableSpan view of a plain record (span-records.ts), the fields the OTLP transformer reads:
// the thread's copy of readableSpan() there. Every span is sampled (trace flags 1), nothing remote.
const scope = init.scope;
function readable(p) {
  const ctx = { traceId: p.traceId, spanId: p.spanId, traceFlags: 1 };
  let s = p.endTime[0] - p.startTime[0];
  let ns = p.endTime[1] - p.startTime[1];
  if (ns < 0) { s -= 1; ns += 1e9; }
  return {
    name: p.name,
    kind: p.kind,
    spanContext: () => ctx,
    parentSpanContext: p.parentSpanId === null ? undefined : { traceId: p.traceId, spanId: p.parentSpanId, traceFlags: 1, isRemote: false },
    startTime: p.startTime,
    endTime: p.endTime,
    status: p.status,
    attributes: p.attributes,
    links: p.links.map((l) => ({ context: { traceId: l.traceId, spanId: l.spanId, traceFlags: 1 }, attributes: {}, droppedAttributesCount: 0 })),
    events: p.events,
    duration: [s, ns],
    ended: true,
    resource,
    instrumentationScope: scope,
    droppedAttributesCount: 0,
    droppedEventsCount: p.droppedEventsCount,
    droppedLinksCount: 0,
  };
}

const handle = (msg) => {
  if (msg.kind === 'shutdown') {
    exporter.shutdown().finally(() => send({ kind: 'shutdown' }));
    return;
  }
  try {
    exporter.export(msg.spans.map(readable), (result) => {
      send({ kind: 'done', id: msg.id, ok: result.code === 0, error: result.error ? String(result.error.message) : null });
    });
  } catch (err) {
    send({ kind: 'done', id: msg.id, ok: false, error: String(err && err.message) });
  }
};
// Detached (idle, or after shutdown): nothing is in flight; the pooled socket goes with the job.
handle.close = () => {
  if (agent) agent.destroy();
};
return handle;
`;
