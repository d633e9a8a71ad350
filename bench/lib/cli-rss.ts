import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { RELAY_NODE_FLAGS } from '../../src/server/node-flags.js';
import { buildDist } from './compiled.js';
import { REPO_ROOT } from './ipc.js';
import { relayConfigInput } from './relay-config.js';

/** The settings a deployment passes through the environment: kept out of a hermetic run. */
const DEPLOYMENT_ENV = ['PORT', 'HOST', 'OPENAI_API_KEY', 'AZURE_OPENAI_API_KEY', 'REALTIME_UPSTREAM_URL', 'LOG_LEVEL', 'REALTIME_PROXY_CONFIG', 'NODE_OPTIONS'];

/**
 * RSS at start of the proxy as production starts it: `node <the Dockerfile's V8 flags> dist/cli.js
 * --config FILE`, one relay worker, no bench harness in the process (its IPC channel, stats and
 * loop monitor are ~5 MiB of a bench child's RSS). The bench config is used with the listeners
 * on free loopback ports and an upstream that is never dialled (nothing connects). VmRSS is read
 * from /proc after `settleSec`, once V8's memory reducer has run. Null when the proxy did not start
 * (the reason is logged by the caller).
 */
export async function cliStartRss(root: string, configFile: string, settleSec: number, onError: (message: string) => void): Promise<number | null> {
  buildDist(root);
  const dataDir = mkdtempSync(join(tmpdir(), 'rtp-bench-cli-'));
  try {
    return await startAndRead(root, configFile, settleSec, dataDir, onError);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function startAndRead(root: string, configFile: string, settleSec: number, dataDir: string, onError: (message: string) => void): Promise<number | null> {
  const source = resolve(REPO_ROOT, configFile);
  const doc = (parseYaml(readFileSync(source, 'utf8')) ?? {}) as Record<string, unknown>;
  const policies = doc['policies'] as Record<string, unknown> | undefined;
  const config = {
    ...relayConfigInput(doc, 'ws://127.0.0.1:9/v1/realtime', 1),
    // Written next to the data, so a relative policy directory is resolved against the original file.
    ...(policies && typeof policies['dir'] === 'string' ? { policies: { ...policies, dir: resolve(dirname(source), policies['dir']) } } : {}),
  };
  const file = join(dataDir, 'cli-start.yaml');
  writeFileSync(file, stringifyYaml(config));
  const env: NodeJS.ProcessEnv = { ...process.env, BENCH_DATA_DIR: dataDir, BENCH_OTLP_URL: 'http://127.0.0.1:9/v1/traces' };
  for (const k of DEPLOYMENT_ENV) delete env[k];
  const proc = spawn(process.execPath, [...RELAY_NODE_FLAGS, join(root, 'dist', 'cli.js'), '--config', file], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const started = new Promise<boolean>((resolveStarted) => {
    const timer = setTimeout(() => resolveStarted(false), 30_000);
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4096);
      if (output.includes('realtime proxy listening')) {
        clearTimeout(timer);
        resolveStarted(true);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolveStarted(false);
    });
  });
  try {
    if (!(await started)) {
      onError(`the proxy CLI did not start: ${output.trim().split('\n').slice(-2).join(' | ')}`);
      return null;
    }
    await new Promise((r) => setTimeout(r, settleSec * 1000));
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
    return kb ? Number(kb[1]) / 1024 : null;
  } finally {
    const exited = new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
    proc.kill('SIGTERM');
    const hard = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(hard);
  }
}
