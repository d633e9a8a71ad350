import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'realtime-governance-proxy';

/**
 * The proxy's package.json, found by walking up from this file: the same code runs from src/ (a
 * checkout) and from dist/ (the build, the image, an installed package).
 */
function readOwnPackage(): { name: string; version: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') return { name: pkg.name, version: pkg.version };
    } catch {
      // no package.json here
    }
    const parent = dirname(dir);
    if (parent === dir) return { name: PACKAGE_NAME, version: '0.0.0-unknown' };
    dir = parent;
  }
}

export const ownPackage: { readonly name: string; readonly version: string } = readOwnPackage();
