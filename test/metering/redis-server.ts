import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Stops the server (SIGTERM, or SIGKILL with `hard`). */
  stop(hard?: boolean): Promise<void>;
  /** Starts it again on the same port (after `stop`), with an empty dataset. */
  restart(): Promise<void>;
  /** False after `stop` until `restart`. */
  readonly running: boolean;
  /** Stops the process answering (SIGSTOP: a stalled Redis, connections kept) until `resume`. */
  pause(): void;
  /** Lets a paused server answer again (SIGCONT). */
  resume(): void;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function launch(port: number, dir: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let ready = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-server did not start on ${port}: ${out}`));
    }, 10_000);
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === 'ENOENT'
          ? new Error('redis-server is not installed: the metering tests need it (apt-get install -y redis-server)')
          : err,
      );
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}: ${out}`));
    });
    child.stdout!.on('data', (d: Buffer) => {
      if (ready) return;
      out += d.toString('utf8');
      if (out.includes('Ready to accept connections')) {
        ready = true;
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve(child);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  });
}

/** A real redis-server on a free loopback port with a temp dir, no persistence. Fails (never skips) without the binary. */
export async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-redis-'));
  let port = 0;
  let child: ChildProcess | null = null;
  for (let attempt = 0; attempt < 3 && !child; attempt++) {
    port = await freePort();
    try {
      child = await launch(port, dir);
    } catch (err) {
      if (attempt === 2 || (err instanceof Error && err.message.includes('not installed'))) throw err;
    }
  }
  const stop = async (hard = false): Promise<void> => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      // A paused server (pause) would hold SIGTERM until continued.
      c.kill('SIGCONT');
      c.kill(hard ? 'SIGKILL' : 'SIGTERM');
    });
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return child !== null;
    },
    stop: async (hard) => {
      await stop(hard);
      rmSync(dir, { recursive: true, force: true });
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    async restart() {
      await stop(true);
      mkdirSync(dir, { recursive: true });
      child = await launch(port, dir);
    },
  };
}

/**
 * A Redis server for a test file (started before its tests, stopped after them) and the file's
 * cleanups, run after each test once the server answers again: a test that failed with it paused
 * would leave it stalled for the next.
 */
export function redisForFile(): { readonly redis: RedisServer; readonly cleanups: Array<() => Promise<void>> } {
  let server: RedisServer | null = null;
  const cleanups: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    server?.resume();
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return {
    get redis(): RedisServer {
      if (server === null) throw new Error('the Redis server starts in beforeAll');
      return server;
    },
    cleanups,
  };
}
