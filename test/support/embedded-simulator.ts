import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { startProxy, type ProxyHandle } from '../../src/main.js';
import type { SimulatorHandle } from '../../src/simulator/index.js';

/**
 * A proxy started as the CLI starts it without OPENAI_API_KEY (no simulator options: its embedded
 * simulator keeps no history), one tenant with `key`, an in-memory ledger: for what the embedded
 * simulator itself holds. Stop it with `proxy.shutdown(0)`.
 */
export async function embeddedSimulatorProxy(key: string): Promise<{ proxy: ProxyHandle; sim: SimulatorHandle }> {
  const config = parseConfig({ server: { host: '127.0.0.1', port: 0, workers: 1 }, admin: { port: 0 }, metering: { ledger: { path: ':memory:' } }, tenants: { t: { keys: [{ key }] } } }, 'dev.yaml', {});
  const proxy = await startProxy(config, { logger: pino({ level: 'silent' }), env: { NODE_ENV: 'development' } });
  if (!proxy.simulator) throw new Error('expected the embedded simulator');
  return { proxy, sim: proxy.simulator };
}
