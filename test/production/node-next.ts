import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './artifact.js';

/**
 * The Node releases after the one this build runs on (Node 20 is past its end of life). Their official
 * binaries are published on the npm registry as `node-<platform>-<arch>` packages, the one network
 * source a fresh machine here has. Exact versions: a test reads the same runtime every time.
 */
export const NEXT_NODES = ['22.23.5', '24.22.3'] as const;

/**
 * The `node` binary of `version`, fetched once into node_modules/.cache/node-next (`npm pack` of the
 * registry package, unpacked there) and reused by later runs.
 */
export function nextNode(version: string): string {
  const dir = join(ROOT, 'node_modules/.cache/node-next', `node-${version}`);
  const bin = join(dir, 'package/bin/node');
  if (existsSync(bin)) return bin;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const pkg = `node-${process.platform}-${process.arch}`;
  const tarball = execFileSync('npm', ['pack', `${pkg}@${version}`, '--silent'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  execFileSync('tar', ['xzf', tarball], { cwd: dir });
  rmSync(join(dir, tarball));
  return bin;
}
