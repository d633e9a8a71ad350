import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../support/temp-dir.js';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface LockPackage {
  readonly version?: string;
  readonly dev?: boolean;
  readonly optional?: boolean;
  readonly os?: readonly string[];
  readonly cpu?: readonly string[];
  readonly link?: boolean;
}

export interface Artifact {
  /** The app directory: package.json, bin/, dist/, policies/, config/ and node_modules with production packages only. */
  readonly dir: string;
  /** Lockfile paths of the production packages copied. */
  readonly packages: readonly string[];
  /** Lockfile paths of the devDependencies left out. */
  readonly omitted: readonly string[];
}

function runs(pkg: LockPackage): boolean {
  const okOs = !pkg.os || pkg.os.includes(process.platform);
  const okCpu = !pkg.cpu || pkg.cpu.includes(process.arch);
  return okOs && okCpu;
}

/**
 * Where a package the lockfile places at `path` is in the installed tree: at `path`, or (for a
 * tree installed before it was hoisted) nested under another package with the same version.
 */
function findInstalled(nodeModules: string, path: string, version: string | undefined): string | null {
  const direct = join(dirname(nodeModules), path);
  if (existsSync(join(direct, 'package.json'))) return direct;
  const name = path.replace(/^node_modules\//, '');
  for (const entry of readdirSync(nodeModules)) {
    const owners = entry.startsWith('@') ? readdirSync(join(nodeModules, entry)).map((e) => join(entry, e)) : [entry];
    for (const owner of owners) {
      const nested = join(nodeModules, owner, 'node_modules', name);
      try {
        const pkg = JSON.parse(readFileSync(join(nested, 'package.json'), 'utf8')) as { version?: string };
        if (pkg.version === version) return nested;
      } catch {
        // not there
      }
    }
  }
  return null;
}

/**
 * Builds dist/ into a fresh directory and assembles the production artifact as `npm ci --omit=dev`
 * would: every package of package-lock.json not marked `dev` (and runnable on this platform), copied
 * as hard links from the installed tree, nothing else. No network is used.
 */
export function buildArtifact(): Artifact {
  const dir = tempDir('rp-artifact-');
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')], {
    stdio: 'pipe',
  });
  for (const f of ['package.json', 'package-lock.json']) cpSync(join(ROOT, f), join(dir, f));
  for (const d of ['bin', 'policies', 'config']) cpSync(join(ROOT, d), join(dir, d), { recursive: true });

  const installed = realpathSync(join(ROOT, 'node_modules'));
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockPackage> };
  const packages: string[] = [];
  const omitted: string[] = [];
  for (const [path, pkg] of Object.entries(lock.packages)) {
    if (path === '' || pkg.link) continue;
    if (pkg.dev) {
      omitted.push(path);
      continue;
    }
    if (!runs(pkg)) continue;
    // Nested paths come with their parent directory.
    if (/node_modules\/.+\/node_modules\//.test(path)) continue;
    const from = findInstalled(installed, path, pkg.version);
    if (!from) {
      if (pkg.optional) continue;
      throw new Error(`production package ${path}@${pkg.version} is not installed in ${installed}`);
    }
    const to = join(dir, path);
    mkdirSync(dirname(to), { recursive: true });
    // Hard links: a copy of ~250 MB in about a second, and the original tree stays untouched
    // (a plain copy when the temp directory is on another filesystem).
    try {
      execFileSync('cp', ['-al', from, to], { stdio: 'pipe' });
    } catch {
      rmSync(to, { recursive: true, force: true });
      execFileSync('cp', ['-a', from, to]);
    }
    packages.push(path);
  }
  // A dev package nested inside a production one is not part of the artifact either.
  for (const path of omitted) {
    const nested = join(dir, path);
    if (existsSync(nested)) execFileSync('rm', ['-rf', nested]);
  }
  writeFileSync(join(dir, 'ARTIFACT'), 'assembled by test/production/artifact.ts\n');
  return { dir, packages, omitted };
}
