import { parseConfig } from '../../src/config/load.js';
import { startProxy } from '../../src/main.js';
import { serveChild } from '../lib/ipc.js';

/** The proxy for bench/security.ts: config from argv (JSON), embedded simulator upstream, stats over IPC. */
const input = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>;
const config = parseConfig({ ...input, server: { host: '127.0.0.1', port: 0, workers: 1, ...(input['server'] as object) }, admin: { port: 0 }, logging: { level: 'warn' } }, '(bench security)', {});
const proxy = await startProxy(config, { baseDir: process.cwd() });
serveChild({ port: proxy.port }, { counters: () => ({ sessions: proxy.server.sessionCount, keyCache: proxy.server.keyCache, budgetUsed: proxy.server.memoryBudget.used }) });
