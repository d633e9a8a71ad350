import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { whenListening } from '../support/spawned-proxy.js';
import { TestClient } from '../support/client.js';
import { tempDir } from '../support/temp-dir.js';

const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;

describe('realtime-proxy CLI', () => {
  it('prints help', () => {
    const r = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Usage:');
    expect(r.stdout).toContain('keygen');
  });

  it('reports config errors with the file and path, and exits 1', () => {
    const dir = tempDir('rp-cli-');
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'server:\n  port: -1\n');
    const r = spawnSync(process.execPath, [bin, 'check-config', '--config', file], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toContain('server.port');
  });

  it('runs on the simulator without OPENAI_API_KEY, relays a turn, and drains on SIGTERM with 1012', async () => {
    const dir = tempDir('rp-cli-');
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, 'server: { host: 127.0.0.1, port: 0, shutdownDrainSec: 1 }\nadmin: { port: 0 }\ntenants:\n  t1:\n    keys: [{ key: rpk_cli_test_key_0123456789 }]\n');
    const env = { ...process.env };
    delete env.OPENAI_API_KEY;
    const child = spawn(process.execPath, [bin, '--config', file], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const listening = await whenListening(child);
    const { port } = listening;
    const out = listening.output();
    expect(out).toContain('NO OPENAI_API_KEY SET');
    // server.workers defaults to one relay process per core: the turn and the drain below go through them.
    expect(out).toContain(`"workers":${availableParallelism()}`);
    // uWS ships one binary per platform, arch and Node ABI: the one this Node loads.
    expect(out).toContain(`native uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
    const c = new TestClient(`ws://127.0.0.1:${port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: 'Bearer rpk_cli_test_key_0123456789' } });
    await c.next('session.created');
    c.say('say: hi');
    await c.next('response.done', 10_000);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    const closed = await c.closed;
    expect(closed.code).toBe(1012);
    expect(await exited).toBe(0);
  }, 60_000);
});
