import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { startProxy } from '../../src/main.js';
import { serveChild } from '../lib/ipc.js';

/**
 * Child process: this proxy, configured from a bench config file, relaying to the fake upstream.
 * argv[2]: upstream port, argv[3]: config file (bench/config/*.yaml).
 */
const upstreamPort = Number(process.argv[2]);
const file = resolve(process.argv[3] ?? 'bench/config/proxy-bare.yaml');
const doc = (parseYaml(readFileSync(file, 'utf8')) ?? {}) as Record<string, unknown>;
const server = (doc['server'] ?? {}) as Record<string, unknown>;
const upstream = (doc['upstream'] ?? {}) as Record<string, unknown>;
const input = {
  ...doc,
  server: { ...server, host: '127.0.0.1', port: 0 },
  admin: { ...((doc['admin'] ?? {}) as Record<string, unknown>), host: '127.0.0.1', port: 0 },
  upstream: { ...upstream, provider: 'openai', url: `ws://127.0.0.1:${upstreamPort}/v1/realtime`, apiKey: 'sk-bench-upstream' },
};
// Hermetic: no environment overrides from the shell running the bench.
const config = parseConfig(input, file, {
  BENCH_DATA_DIR: process.env['BENCH_DATA_DIR'] ?? '',
  BENCH_OTLP_URL: process.env['BENCH_OTLP_URL'] ?? 'http://127.0.0.1:9/v1/traces',
});
const proxy = await startProxy(config, { baseDir: dirname(file) });

serveChild({ port: proxy.port }, { counters: () => ({ sessions: proxy.server.sessionCount }) });
