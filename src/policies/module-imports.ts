import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * The files a JavaScript guardrail module imports by relative path, and theirs, found by reading
 * their source: what the policy watcher must treat as part of the module (a `.ts` module's are
 * what esbuild read; a `.js`/`.mjs` module runs as it is, so nothing else lists them).
 *
 * A static reading: `import … from './x.mjs'`, `export … from`, `import './x.mjs'` and
 * `import('./x.mjs')` with a literal path. A commented-out import is found too (one more file
 * watched: harmless); an import whose path is computed is not (documented in policies/README).
 */

/** A module graph larger than this is not a guardrail's helpers: the walk stops there. */
const MAX_FILES = 256;
/** Files larger than this are not read for imports (a data file, a bundle). */
const MAX_FILE_BYTES = 1024 * 1024;

const RELATIVE_IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)(['"])(\.{1,2}\/[^'"\r\n]+)\1/g;

/** Relative specifiers in one module's source, in order of appearance. */
export function relativeSpecifiers(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(RELATIVE_IMPORT)) found.push(m[2]!);
  return found;
}

/** Every file `entry` imports by relative path, directly or through other such files (not `entry` itself). */
export function relativeImportsOf(entry: string): string[] {
  const seen = new Set<string>([entry]);
  const queue = [entry];
  const out: string[] = [];
  while (queue.length > 0 && seen.size < MAX_FILES) {
    const file = queue.shift()!;
    let source: string;
    try {
      if (statSync(file).size > MAX_FILE_BYTES) continue;
      source = readFileSync(file, 'utf8');
    } catch {
      continue; // missing or unreadable: the import itself reports it
    }
    for (const spec of relativeSpecifiers(source)) {
      const path = resolve(dirname(file), spec.split(/[?#]/)[0]!);
      if (seen.has(path)) continue;
      seen.add(path);
      out.push(path);
      queue.push(path);
    }
  }
  return out;
}
