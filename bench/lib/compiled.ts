import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { REPO_ROOT } from './ipc.js';

/**
 * Relays are measured as production runs them: compiled JavaScript on plain `node`, without the
 * tsx loader (whose loader thread and transpile cache add tens of MB of RSS and a thread). The
 * proxy is `dist/` (built here with `tsc -p tsconfig.build.json`, as `npm run build` does); the
 * small bench child scripts around it are bundled with esbuild, with every import of `src/` pointed
 * at the same module in `dist/` and packages left external, so the proxy code is exactly what ships.
 */

/** Builds `<root>/dist` from `<root>/src` (once per bench run and tree). */
const built = new Set<string>();
export function buildDist(root: string): void {
  if (built.has(root)) return;
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
  built.add(root);
}

/** `src/x/y.js` imports, relative to the script, become external imports of `<root>/dist/x/y.js`. */
function srcToDist(root: string): Plugin {
  const src = join(root, 'src') + '/';
  return {
    name: 'src-to-dist',
    setup(b) {
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        const target = resolve(args.resolveDir, args.path);
        if (!target.startsWith(src)) return undefined;
        return { path: join(root, 'dist', target.slice(src.length)), external: true };
      });
    },
  };
}

/**
 * The runnable `.mjs` for a relay child script (bench/procs/relay-*.ts) of the tree at `root`:
 * builds that tree's dist/ when the script imports the proxy, then bundles the script.
 */
export async function compileChild(script: string, root: string): Promise<string> {
  const abs = resolve(REPO_ROOT, script);
  // Inside the repository, so that the bundle's package imports resolve from its node_modules.
  const outDir = join(REPO_ROOT, 'bench', '.compiled', root === REPO_ROOT ? 'tree' : basename(root));
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, `${basename(abs, '.ts')}.mjs`);
  const result = await build({
    entryPoints: [abs],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    metafile: true,
    logLevel: 'warning',
    plugins: [srcToDist(root)],
  });
  const usesProxy = Object.values(result.metafile.outputs).some((o) => o.imports.some((i) => i.external && i.path.includes('/dist/')));
  if (usesProxy) {
    buildDist(root);
    if (!existsSync(join(root, 'dist', 'main.js'))) throw new Error(`${root}/dist/main.js is missing after the build`);
  }
  return outfile;
}
