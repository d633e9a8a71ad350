#!/usr/bin/env node
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile, parseConfig } from './config/load.js';
import { configBaseDir, startProxy } from './main.js';
import { sha256Hex } from './tenants/resolver.js';

const HELP = `realtime-proxy — governed WebSocket proxy for the OpenAI Realtime API

Usage:
  realtime-proxy [--config FILE]          run the proxy
  realtime-proxy keygen [--browser]       print a new tenant key and the sha256 to put in the config
  realtime-proxy check-config [--config FILE]
  realtime-proxy --help

Config: --config FILE, else $REALTIME_PROXY_CONFIG, else ./realtime-proxy.yaml if present.
Environment overrides: PORT, HOST, OPENAI_API_KEY, REALTIME_UPSTREAM_URL, LOG_LEVEL.
Without OPENAI_API_KEY (and upstream.apiKey) the proxy relays to its embedded simulator.
`;

function configPath(explicit: string | undefined): string | null {
  if (explicit) return explicit;
  if (process.env.REALTIME_PROXY_CONFIG) return process.env.REALTIME_PROXY_CONFIG;
  return existsSync('realtime-proxy.yaml') ? 'realtime-proxy.yaml' : null;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      browser: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const command = positionals[0] ?? 'run';
  if (command === 'keygen') {
    // Browser keys start with ek_ so that openai's browser guard accepts them without dangerouslyAllowBrowser.
    const key = `${values.browser ? 'ek_rp_' : 'rpk_'}${randomBytes(24).toString('base64url')}`;
    process.stdout.write(`key:    ${key}\nsha256: ${sha256Hex(key)}\n`);
    return 0;
  }
  const file = configPath(values.config);
  const config = file ? loadConfigFile(file) : parseConfig({}, '(defaults)');
  if (command === 'check-config') {
    process.stdout.write(`${file ?? '(defaults)'}: ok (${Object.keys(config.tenants).length} tenants)\n`);
    return 0;
  }
  if (command !== 'run') {
    process.stderr.write(`unknown command ${command}\n\n${HELP}`);
    return 2;
  }
  // The demo simulator speaks at playback speed, so a person listening hears realistic turns.
  const proxy = await startProxy(config, {
    baseDir: file ? configBaseDir(file) : process.cwd(),
    simulator: { timing: { realtime: true, firstAudioDelayMs: 300 }, recordAudio: false },
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    proxy.log.info({ signal }, 'shutting down');
    void proxy.shutdown().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return -1;
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(err instanceof ConfigError ? `${err.message}\n` : `fatal: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
