import { Writable } from 'node:stream';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import type { ModuleDeps, ProxyModule } from '../../../src/app/module.js';
import type { FilterFactory } from '../../../src/pipeline/filter.js';
import type { Report } from '../../../src/pipeline/reports.js';
import { parseConfig } from '../../../src/config/load.js';
import type { ConfigInput } from '../../../src/config/schema.js';
import { createLogger } from '../../../src/logging.js';
import { systemClock } from '../../../src/main.js';
import { createMeteringModule } from '../../../src/metering/index.js';
import { createPoliciesModule } from '../../../src/policies/index.js';
import { ProxyServer } from '../../../src/server/server.js';
import { startSimulator, type SimulatorHandle, type SimulatorOptions } from '../../../src/simulator/index.js';
import { createTelemetryModule, type TelemetryModule, type TelemetryOptions } from '../../../src/telemetry/index.js';
import { TenantResolver } from '../../../src/tenants/resolver.js';
import { TestClient } from '../../support/client.js';
import { defaultKey } from '../../support/harness.js';
import { testTls } from '../../support/tls.js';

type TenantInput = NonNullable<ConfigInput['tenants']>[string];

export interface TelemetryProxyOptions {
  readonly tenants?: Record<string, Partial<Omit<TenantInput, 'keys'>>>;
  readonly config?: Omit<ConfigInput, 'tenants' | 'server' | 'upstream'>;
  readonly simulator?: SimulatorOptions;
  /** Telemetry options; spans go to an in-memory exporter unless `spanExporter` is given as null. */
  readonly telemetry?: Omit<TelemetryOptions, 'spanExporter'> & { spanExporter?: TelemetryOptions['spanExporter'] | null };
  /** Also serve wss:// with the test CA (`ca`, `proxy.tlsPort`): the SDK's translation client dials wss: only. */
  readonly tls?: boolean;
}

export interface TelemetryProxy {
  readonly port: number;
  readonly httpUrl: string;
  /** The admin listener (admin API, /metrics). */
  readonly adminUrl: string;
  readonly sim: SimulatorHandle;
  readonly spans: InMemorySpanExporter;
  readonly telemetry: TelemetryModule;
  readonly lines: string[];
  /** Every report published in any session (collected by a passive last-in-chain filter). */
  readonly reports: Report[];
  /** The wss:// port (null without `tls`), as the harness's ProxyHandle names it. */
  readonly proxy: { readonly tlsPort: number | null };
  readonly ca: string | null;
  key(tenant?: string): string;
  client(tenant?: string, query?: string): Promise<TestClient>;
  stop(): Promise<void>;
}

const SIM_KEY = 'sk-simulator-telemetry';

/**
 * The real proxy (server, relay, the three concerns in chain order) on loopback against the
 * embedded simulator, with the telemetry module's exporters injectable. Mirrors src/main.ts and
 * src/app/modules.ts, which take no telemetry test hooks.
 */
export async function startTelemetryProxy(options: TelemetryProxyOptions = {}): Promise<TelemetryProxy> {
  const sim = await startSimulator({ ...options.simulator, apiKey: SIM_KEY });
  const tenants: Record<string, TenantInput> = {};
  for (const [id, t] of Object.entries(options.tenants ?? { acme: {} })) tenants[id] = { ...t, keys: [{ key: defaultKey(id) }] };
  const tls = options.tls ? testTls() : null;
  const config = parseConfig(
    {
      ...options.config,
      server: { host: '127.0.0.1', port: 0, ...(tls ? { tls: { port: 0, certFile: tls.certFile, keyFile: tls.keyFile } } : {}) },
      upstream: { provider: 'simulator', url: sim.url, apiKey: SIM_KEY },
      logging: { level: 'debug' },
      admin: { port: 0, ...options.config?.admin },
      metering: { ledger: { path: ':memory:' }, ...options.config?.metering },
      policies: { watch: false, ...options.config?.policies },
      tenants,
    },
    '(telemetry test)',
    {},
  );
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(line);
      cb();
    },
  });
  const log = createLogger('debug', sink);
  const deps: ModuleDeps = { config, log, tenants: new TenantResolver(config), clock: systemClock, baseDir: process.cwd() };
  const spans = new InMemorySpanExporter();
  const { spanExporter, ...rest } = options.telemetry ?? {};
  const telemetry = await createTelemetryModule(deps, {
    env: {},
    ...rest,
    ...(spanExporter === null ? {} : { spanExporter: spanExporter ?? spans }),
  });
  const reports: Report[] = [];
  const spy: FilterFactory = { name: 'report-spy', wants: {}, create: () => ({ onReport: (r) => void reports.push(r) }) };
  const modules: ProxyModule[] = [telemetry, await createPoliciesModule(deps), await createMeteringModule(deps), { name: 'spy', filters: [spy] }];
  const server = new ProxyServer({ config, log, tenants: deps.tenants, modules, clock: systemClock });
  const { port, tlsPort, adminPort } = await server.listen();
  const clients: TestClient[] = [];
  return {
    port,
    httpUrl: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort ?? 0}`,
    sim,
    spans,
    telemetry,
    lines,
    reports,
    proxy: { tlsPort },
    ca: tls?.caCert ?? null,
    key: (tenant = 'acme') => defaultKey(tenant),
    async client(tenant = 'acme', query = 'model=gpt-realtime') {
      const c = new TestClient(`ws://127.0.0.1:${port}/v1/realtime?${query}`, { headers: { authorization: `Bearer ${defaultKey(tenant)}` } });
      clients.push(c);
      await c.opened;
      return c;
    },
    async stop() {
      for (const c of clients) c.ws.terminate();
      await server.shutdown(0);
      await sim.close();
    },
  };
}
