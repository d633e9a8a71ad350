import { existsSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { noteCustomModule } from '../server/process-faults.js';
import { relativeImportsOf } from './module-imports.js';

/**
 * Loads custom guardrail modules. `.js` / `.mjs` modules are imported by Node as they are; `.ts` /
 * `.mts` modules are compiled with esbuild when (and only when) a policy names one, so the proxy
 * itself runs compiled JavaScript with no loader hooks (a `.js`/`.mjs` module reloaded brings
 * one small resolve hook, `RELOAD_HOOK`, so that its own imports reload with it). The public entry
 * `realtime-governance-proxy/policies` resolves to the running proxy's own API from any directory
 * (a ConfigMap mount, /etc, a temp dir), with or without a node_modules next to the module.
 */

const PUBLIC_ENTRY = /^realtime-governance-proxy(\/policies)?$/;
const TS_EXT = new Set(['.ts', '.mts', '.cts']);

/** The running proxy's guardrail API file: api.js next to this file when compiled, api.ts in a source checkout. */
function ownApiFile(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const js = join(here, 'api.js');
  return existsSync(js) ? js : join(here, 'api.ts');
}

/** The part of esbuild's API used here (typed locally: esbuild is loaded only when needed). */
interface Esbuild {
  build(options: {
    entryPoints: string[];
    bundle: boolean;
    write: false;
    format: 'esm';
    platform: 'node';
    target: string;
    sourcemap: 'inline';
    logLevel: 'silent';
    metafile: true;
    plugins: { name: string; setup(build: { onResolve(o: { filter: RegExp }, cb: () => { path: string }): void }): void }[];
  }): Promise<{ outputFiles: { text: string }[]; metafile?: { inputs: Record<string, unknown> } }>;
  stop(): Promise<void> | void;
}
/** A variable, so that TypeScript does not look for esbuild's types. */
const ESBUILD = 'esbuild';
let esbuildPromise: Promise<Esbuild> | null = null;

/**
 * esbuild is a dependency; a source checkout whose node_modules predates that has it only under tsx
 * (a devDependency), which is tried second.
 */
function loadEsbuild(): Promise<Esbuild> {
  esbuildPromise ??= (import(ESBUILD) as Promise<Esbuild>).catch(async (first: unknown) => {
    try {
      const require = createRequire(import.meta.url);
      const tsxDir = dirname(require.resolve('tsx/package.json'));
      const path = createRequire(join(tsxDir, 'package.json')).resolve('esbuild');
      return (await import(pathToFileURL(path).href)) as Esbuild;
    } catch {
      esbuildPromise = null;
      throw new Error(
        `TypeScript guardrail modules need the esbuild package (${(first as Error).message}); install it, or ship the guardrail as .js/.mjs`,
      );
    }
  });
  return esbuildPromise;
}

/**
 * esbuild compiles in a child process (its service, ~12 MB RSS) that lives until stopped. Policies
 * compile at start and on reloads, then not for hours: the service is stopped once no build has
 * run for this long (the next build starts it again).
 */
const SERVICE_IDLE_MS = 1_000;
let buildsRunning = 0;
let stopTimer: NodeJS.Timeout | null = null;

function buildStarted(): void {
  buildsRunning++;
  if (stopTimer !== null) {
    clearTimeout(stopTimer);
    stopTimer = null;
  }
}

function buildEnded(esbuild: Esbuild): void {
  buildsRunning--;
  if (buildsRunning > 0) return;
  stopTimer = setTimeout(() => {
    stopTimer = null;
    if (buildsRunning === 0) void Promise.resolve(esbuild.stop()).catch(() => {});
  }, SERVICE_IDLE_MS);
  stopTimer.unref();
}

/**
 * Compiles a module and its relative imports into one self-contained ES module. The public entry is
 * bundled from the running proxy's API (its brand is a `Symbol.for`, so the copy is recognised);
 * packages the module imports are bundled from where the module lives; Node built-ins stay imports.
 */
async function bundle(absPath: string): Promise<string> {
  const esbuild = await loadEsbuild();
  const api = ownApiFile();
  buildStarted();
  try {
    return await build(esbuild, absPath, api);
  } finally {
    buildEnded(esbuild);
  }
}

/**
 * The files each module last loaded from, besides itself and the proxy's API (its own imports: in a
 * `.ts` module's bundle, or imported by a `.js`/`.mjs` one): a change to one must reload the
 * policies that use the module. One entry per module path (replaced at each load), so reloads do
 * not grow it.
 */
const loadedFrom = new Map<string, readonly string[]>();

/** The files a module's last load read besides itself (its own imports), else none. */
export function moduleDependencies(absPath: string): readonly string[] {
  return loadedFrom.get(absPath) ?? [];
}

async function build(esbuild: Esbuild, absPath: string, api: string): Promise<string> {
  const result = await esbuild.build({
    entryPoints: [absPath],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    target: `node${process.versions.node.split('.')[0]}`,
    sourcemap: 'inline',
    logLevel: 'silent',
    metafile: true,
    plugins: [
      {
        name: 'public-entry',
        setup(build) {
          build.onResolve({ filter: PUBLIC_ENTRY }, () => ({ path: api }));
        },
      },
    ],
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error('esbuild produced no output');
  // Metafile paths are relative to esbuild's working directory (this process's); packages (under
  // node_modules) and namespaced inputs are not watched.
  const inputs = Object.keys(result.metafile?.inputs ?? {})
    .filter((f) => !/^[\w-]{2,}:/.test(f) && !/(^|[\\/])node_modules[\\/]/.test(f))
    .map((f) => resolve(f))
    .filter((f) => f !== absPath && f !== api);
  loadedFrom.set(absPath, inputs);
  return out.text;
}

function describeBuildError(err: unknown): string {
  const errors = (err as { errors?: { text: string; location?: { file: string; line: number; column: number } | null }[] }).errors;
  if (Array.isArray(errors) && errors.length > 0) {
    return errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ${e.text}` : e.text)).join('; ');
  }
  return (err as Error).message ?? String(err);
}

async function importBundled(absPath: string, cacheKey: string): Promise<unknown> {
  let code: string;
  try {
    code = await bundle(absPath);
  } catch (err) {
    throw new Error(describeBuildError(err));
  }
  // A data: URL needs no writable directory (policies are often read-only mounts); the comment
  // makes every reload a distinct module.
  const source = `${code}\n//# reload=${cacheKey}\n`;
  return import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`) as Promise<unknown>;
}

function missingPublicEntry(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return e.code === 'ERR_MODULE_NOT_FOUND' && typeof e.message === 'string' && /'realtime-governance-proxy(\/[^']*)?'/.test(e.message);
}

/** The query parameter that makes a reload of a `.js`/`.mjs` module a new instance, its own imports included. */
const RELOAD_PARAM = 'rgp-reload';

/**
 * A module resolve hook: a file a module with the reload parameter imports gets the same
 * parameter, so a reload imports the module's own helpers afresh too (Node keeps an imported URL
 * for the life of the process; without this, a reloaded module ran its first helper). Packages
 * (under node_modules) and built-ins are shared, as they would be without it. A data: URL: nothing
 * to ship beside the compiled proxy.
 *
 * Registered when a `.js`/`.mjs` module is loaded a second time (its first reload), not before:
 * Node runs hooks on a thread of their own (~10 MiB RSS), which a proxy whose policies are never
 * edited live should not carry. A first load needs no hook: its helpers are new to the process.
 */
const RELOAD_HOOK = `
const P = ${JSON.stringify(RELOAD_PARAM)};
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const parent = context.parentURL;
  if (!parent || !parent.startsWith('file:') || !r.url.startsWith('file:')) return r;
  const v = new URL(parent).searchParams.get(P);
  if (v === null) return r;
  const u = new URL(r.url);
  if (u.searchParams.has(P) || /[\\/]node_modules[\\/]/.test(decodeURIComponent(u.pathname))) return r;
  u.searchParams.set(P, v);
  return { ...r, url: u.href };
}
`;
let reloadHookRegistered = false;

function registerReloadHook(): void {
  if (reloadHookRegistered) return;
  reloadHookRegistered = true;
  register(`data:text/javascript,${encodeURIComponent(RELOAD_HOOK)}`);
}

/** Imports a custom guardrail module fresh (each `cacheKey` is a new instance, its own imports included, for hot reloads). */
export async function loadGuardrailModule(absPath: string, cacheKey: string): Promise<unknown> {
  noteCustomModule(absPath);
  if (TS_EXT.has(extname(absPath))) return importBundled(absPath, cacheKey);
  if (loadedFrom.has(absPath)) registerReloadHook();
  loadedFrom.set(absPath, relativeImportsOf(absPath));
  const url = pathToFileURL(absPath);
  url.searchParams.set(RELOAD_PARAM, cacheKey);
  try {
    return (await import(url.href)) as unknown;
  } catch (err) {
    // A .js module outside any install of the package: give it the running proxy's API.
    if (missingPublicEntry(err)) return importBundled(absPath, cacheKey);
    throw err;
  }
}
