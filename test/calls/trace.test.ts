import { Writable } from 'node:stream';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ProxyModule } from '../../src/app/module.js';
import { createCallsModule } from '../../src/calls/index.js';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging.js';
import { systemClock } from '../../src/main.js';
import { createMeteringModule } from '../../src/metering/index.js';
import { createPoliciesModule } from '../../src/policies/index.js';
import { ProxyServer } from '../../src/server/server.js';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { createTelemetryModule } from '../../src/telemetry/index.js';
import { TenantResolver } from '../../src/tenants/resolver.js';
import { defaultKey } from '../support/harness.js';
import { OFFER, post, say, types, until } from './support.js';

/** The real modules in src/app/modules.ts order, with the telemetry span exporter in memory. */
const SIM_KEY = 'sk-simulator-calls-trace';
let sim: SimulatorHandle;
let server: ProxyServer;
let httpUrl: string;
const spans = new InMemorySpanExporter();

beforeAll(async () => {
  sim = await startSimulator({ apiKey: SIM_KEY, timing: { firstAudioDelayMs: 20, deltaIntervalMs: 1 } });
  const config = parseConfig(
    {
      server: { host: '127.0.0.1', port: 0 },
      // Never a fixed port: the admin listener (/metrics) on an ephemeral one.
      admin: { port: 0 },
      upstream: { provider: 'simulator', url: sim.url, apiKey: SIM_KEY },
      logging: { level: 'debug' },
      metering: { ledger: { path: ':memory:' } },
      policies: { watch: false },
      calls: { enabled: true },
      tenants: { acme: { keys: [{ key: defaultKey('acme') }] } },
    },
    '(calls trace test)',
    {},
  );
  const log = createLogger('debug', new Writable({ write: (_c, _e, cb) => cb() }));
  const deps = { config, log, tenants: new TenantResolver(config), clock: systemClock, baseDir: process.cwd() };
  const telemetry = await createTelemetryModule(deps, { env: {}, spanExporter: spans });
  const policies = await createPoliciesModule(deps);
  const metering = await createMeteringModule(deps);
  const modules: ProxyModule[] = [telemetry, policies, metering];
  modules.push(await createCallsModule({ ...deps, registry: policies.registry, metering, filters: modules.flatMap((m) => m.filters) }));
  server = new ProxyServer({ config, log, tenants: deps.tenants, modules, clock: systemClock });
  const { port } = await server.listen();
  httpUrl = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  await server?.shutdown(0);
  await sim?.close();
});

it('one trace per turn on the sideband, with time to first audio from output_audio_buffer.started', async () => {
  const form = new FormData();
  form.set('sdp', OFFER);
  form.set('session', JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }));
  const res = await post(`${httpUrl}/v1/realtime/calls`, { key: defaultKey('acme'), body: form });
  expect(res.status).toBe(201);
  expect(res.text.startsWith('v=0')).toBe(true);
  const callId = res.headers.get('location')!.split('/').at(-1)!;
  const call = sim.calls.calls.get(callId)!;
  // Multipart: the proxy's key and the governed session went upstream, never the tenant key.
  expect(call.credential).toBe(SIM_KEY);
  await until(() => call.sidebands.length === 1, 'the sideband');
  say(call, 'say: one turn');
  await until(() => types(call).includes('response.done'), 'response.done');
  say(call, 'say: second turn');
  await until(() => types(call).filter((t) => t === 'response.done').length === 2, 'second response.done');
  // Hanging up ends the sideband session; its turn spans end with it.
  call.end();
  let roots: ReadableSpan[] = [];
  await until(() => (roots = spans.getFinishedSpans().filter((s) => s.name === 'invoke_agent')).length >= 2, 'two turn traces', 10_000);
  expect(new Set(roots.map((s) => s.spanContext().traceId)).size).toBe(roots.length);
  const responses = spans.getFinishedSpans().filter((s) => s.attributes['rtproxy.response.time_to_first_audio'] !== undefined);
  expect(responses.length).toBeGreaterThanOrEqual(2);
  for (const r of responses) expect(r.attributes['rtproxy.response.time_to_first_audio'] as number).toBeGreaterThan(0);
  expect(roots.every((s) => s.attributes['rtproxy.tenant.id'] === 'acme')).toBe(true);
});
