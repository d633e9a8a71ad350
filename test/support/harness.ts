import { Writable } from 'node:stream';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { startProxy, type ProxyHandle, type StartOptions } from '../../src/main.js';
import type { SimulatorHandle, SimulatorOptions } from '../../src/simulator/index.js';
import { TestClient, type ClientOptions } from './client.js';
import { testTls } from './tls.js';

export { TestClient, appendEvents, speechThenSilence } from './client.js';

type TenantInput = NonNullable<ConfigInput['tenants']>[string];

export interface TestTenantInput extends Partial<Omit<TenantInput, 'keys'>> {
  /** The tenant's proxy key (default `rpk_test_<id>_0123456789abcdef`). */
  readonly key?: string;
}

export interface TestProxyOptions {
  /** Tenants by id; default one tenant `acme`. */
  readonly tenants?: Record<string, TestTenantInput>;
  /** Extra config, shallow-merged per top-level section (server, upstream, metering, policies, telemetry, …). */
  readonly config?: Omit<ConfigInput, 'tenants'>;
  readonly simulator?: SimulatorOptions;
  /** Also serve wss:// with a generated test CA (`ca` on the handle). */
  readonly tls?: boolean;
  readonly start?: Omit<StartOptions, 'logDestination' | 'simulator'>;
  /** Environment for `${VAR}` references in the config (default: none). */
  readonly env?: NodeJS.ProcessEnv;
}

export interface LogRecord {
  readonly level: number;
  readonly msg?: string;
  readonly [key: string]: unknown;
}

export interface TestProxy {
  readonly proxy: ProxyHandle;
  readonly port: number;
  /** ws://127.0.0.1:PORT/v1/realtime?model=gpt-realtime */
  readonly url: string;
  /** wss://127.0.0.1:TLSPORT/v1/realtime?model=gpt-realtime, or null without `tls`. */
  readonly wssUrl: string | null;
  readonly httpUrl: string;
  /** http://127.0.0.1:ADMINPORT: the admin listener (admin API, /metrics). */
  readonly adminUrl: string;
  readonly ca: string | null;
  readonly logs: LogRecord[];
  /** The raw log output (every line), for "never appears in logs" assertions. */
  logText(): string;
  /** The embedded simulator (throws when the proxy relays elsewhere). */
  readonly sim: SimulatorHandle;
  key(tenant?: string): string;
  /** A connected raw client authenticating with the tenant key as a bearer header. */
  client(options?: { tenant?: string; query?: string; clientOptions?: ClientOptions }): Promise<TestClient>;
  stop(): Promise<void>;
}

export const defaultKey = (tenant: string) => `rpk_test_${tenant}_0123456789abcdef`;

/** Starts the real proxy on loopback with the embedded simulator as upstream and captured logs. */
export async function startTestProxy(options: TestProxyOptions = {}): Promise<TestProxy> {
  const tenantsIn = options.tenants ?? { acme: {} };
  const keys = new Map<string, string>();
  const tenants: Record<string, TenantInput> = {};
  for (const [id, t] of Object.entries(tenantsIn)) {
    const { key, ...rest } = t;
    const k = key ?? defaultKey(id);
    keys.set(id, k);
    tenants[id] = { ...rest, keys: [{ key: k }] };
  }
  const extra = options.config ?? {};
  const tls = options.tls ? testTls() : null;
  const input: ConfigInput = {
    ...extra,
    // One relay process unless a test asks for workers (the default, one per core, would fork per proxy).
    server: { host: '127.0.0.1', port: 0, workers: 1, ...(tls ? { tls: { port: 0, certFile: tls.certFile, keyFile: tls.keyFile } } : {}), ...extra.server },
    upstream: { provider: 'simulator', ...extra.upstream },
    // Tests keep their ledgers in memory unless they configure one (durability tests do).
    metering: { ...extra.metering, ledger: { path: ':memory:', ...extra.metering?.ledger } },
    logging: { level: 'debug', ...extra.logging },
    // The admin listener on an ephemeral loopback port (the default 8081 would collide across tests).
    admin: { port: 0, ...extra.admin },
    tenants,
  };
  const config = parseConfig(input, '(test)', options.env ?? {});
  const lines: string[] = [];
  const logs: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        lines.push(line);
        logs.push(JSON.parse(line) as LogRecord);
      }
      cb();
    },
  });
  // Tests read what the embedded simulator received and sent: its history is kept (the CLI's is not).
  const proxy = await startProxy(config, { ...options.start, logDestination: sink, simulator: { keepHistory: true, ...options.simulator } });
  const base = `127.0.0.1:${proxy.port}`;
  const url = `ws://${base}/v1/realtime?model=gpt-realtime`;
  const clients: TestClient[] = [];
  return {
    proxy,
    port: proxy.port,
    url,
    wssUrl: proxy.tlsPort ? `wss://127.0.0.1:${proxy.tlsPort}/v1/realtime?model=gpt-realtime` : null,
    httpUrl: `http://${base}`,
    adminUrl: `http://127.0.0.1:${proxy.adminPort ?? 0}`,
    ca: tls?.caCert ?? null,
    logs,
    logText: () => lines.join('\n'),
    get sim(): SimulatorHandle {
      if (!proxy.simulator) throw new Error('this proxy does not use the embedded simulator');
      return proxy.simulator;
    },
    key: (tenant = 'acme') => {
      const k = keys.get(tenant);
      if (!k) throw new Error(`unknown test tenant ${tenant}`);
      return k;
    },
    async client({ tenant = 'acme', query = 'model=gpt-realtime', clientOptions = {} } = {}) {
      const c = new TestClient(`ws://${base}/v1/realtime?${query}`, {
        ...clientOptions,
        headers: { authorization: `Bearer ${keys.get(tenant) ?? tenant}`, ...clientOptions.headers },
      });
      clients.push(c);
      await c.opened;
      return c;
    },
    async stop() {
      for (const c of clients) c.ws.terminate();
      await proxy.shutdown(0);
    },
  };
}
