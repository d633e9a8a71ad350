import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { whenListening } from '../support/spawned-proxy.js';
import { ROOT } from './artifact.js';
import { tempDir } from '../support/temp-dir.js';

/**
 * `npm start` as README's first command runs it, stopped as a process manager stops it: SIGTERM to
 * npm. Until 2026-12-06 the script ran `node` under `sh -c`, which npm signalled and which does not
 * pass the signal on: npm and the shell exited, the proxy kept running, orphaned (found following
 * README as a new user). The script now `exec`s node, so the signal reaches the proxy, which drains
 * and exits 0.
 */
describe('npm start', () => {
  it('SIGTERM to npm reaches the proxy: it drains, logs the shutdown and exits', async () => {
    const dir = tempDir('rp-npm-start-');
    // The example config on free ports, its relative paths read from the repository.
    const config = readFileSync(join(ROOT, 'config/example.yaml'), 'utf8')
      .replace(/^(\s+)port: 8081\b/m, '$1port: 0')
      .replace('dir: ../policies', `dir: ${join(ROOT, 'policies')}`)
      .replace('path: .data/metering.sqlite', `path: ${join(dir, 'metering.sqlite')}`);
    writeFileSync(join(dir, 'proxy.yaml'), config);
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', LOG_LEVEL: 'info' };
    delete env.OPENAI_API_KEY;
    const npm = spawn('npm', ['start', '--', '--config', join(dir, 'proxy.yaml')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const alive = (): boolean => {
      try {
        process.kill(-npm.pid!, 0);
        return true;
      } catch {
        return false;
      }
    };
    try {
      await stopsOnSigterm(npm, alive);
    } finally {
      if (alive()) process.kill(-npm.pid!, 'SIGKILL');
    }
  }, 60_000);
});

/** Until npm and everything it started are gone after SIGTERM to npm. */
async function stopsOnSigterm(npm: ReturnType<typeof spawn>, alive: () => boolean): Promise<void> {
  const listening = await whenListening(npm);
  expect(listening.port).toBeGreaterThan(0);
  const npmExited = new Promise<void>((resolve) => npm.once('exit', () => resolve()));
  npm.kill('SIGTERM');
  await npmExited;
  await listening.outputMatching(/shutting down: \/readyz answers 503/, 10_000);
  // Nothing of the group npm started is left: the proxy exited with it.
  const deadline = Date.now() + 15_000;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(alive()).toBe(false);
}
