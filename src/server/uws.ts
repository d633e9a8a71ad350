import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as UWS from 'uWebSockets.js';

const require = createRequire(import.meta.url);

export type Uws = typeof UWS;

/**
 * Loads the native uWebSockets.js binary for this Node ABI directly. The package's own entry
 * silently falls back to a slow pure-JS implementation when the binary does not load; a proxy
 * must never run on that by accident, so this fails loudly instead and says which binary it uses.
 */
function loadNative(): { uws: Uws; binary: string } {
  const pkgDir = dirname(require.resolve('uWebSockets.js/package.json'));
  const pkg = require('uWebSockets.js/package.json') as { name: string; version: string };
  const file = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  const path = join(pkgDir, 'binaries', file);
  try {
    const uws = require(path) as Uws;
    return { uws, binary: `${pkg.name}@${pkg.version} native ${file}` };
  } catch (err) {
    throw new Error(
      // The first line only: Node appends the require stack, which says nothing more here.
      `uWebSockets.js native binary ${file} did not load (${(err as Error).message.split('\n')[0]}). ` +
        `${pkg.name}@${pkg.version} ships binaries for Node ABIs 93, 108 and 115 (Node 16, 18, 20) on glibc; ` +
        'run on Node 20 with glibc, or install a build for this runtime. The JS fallback is deliberately not used.',
    );
  }
}

const loaded = loadNative();
export const uws: Uws = loaded.uws;
/** Human-readable description of the binary in use, logged at startup and served on /healthz. */
export const uwsBinary: string = loaded.binary;
