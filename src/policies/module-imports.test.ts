import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { relativeImportsOf, relativeSpecifiers } from './module-imports.js';
import { tempDir } from '../../test/support/temp-dir.js';

describe('relativeSpecifiers', () => {
  it('reads every static and literal dynamic form, relative paths only', () => {
    const source = [
      `import a from './a.mjs';`,
      `import { b } from "../b.js"`,
      `export * from './c.mjs';`,
      `export { d } from './d.mjs'`,
      `import './e.mjs';`,
      `const f = await import('./f.mjs');`,
      `import g from 'some-package';`,
      `import fs from 'node:fs';`,
      `const h = await import(name);`,
    ].join('\n');
    expect(relativeSpecifiers(source)).toEqual(['./a.mjs', '../b.js', './c.mjs', './d.mjs', './e.mjs', './f.mjs']);
  });

  it('reads minified and spaced forms: no space after from, spaces around a dynamic import\'s parenthesis', () => {
    expect(relativeSpecifiers(`import{a}from'./a.mjs';const b=await import ('./b.mjs');const c=await import( "./c.mjs");`)).toEqual(['./a.mjs', './b.mjs', './c.mjs']);
  });
});

describe('relativeImportsOf', () => {
  it('follows imports through helpers, once each (cycles end), and keeps files that do not exist yet', () => {
    const dir = tempDir('rp-imports-');
    mkdirSync(join(dir, 'lib'));
    writeFileSync(join(dir, 'main.mjs'), `import { x } from './lib/x.mjs';\nimport './missing.mjs';\n`);
    writeFileSync(join(dir, 'lib', 'x.mjs'), `export { y as x } from './y.mjs?cache=1';\nimport '../main.mjs';\n`);
    writeFileSync(join(dir, 'lib', 'y.mjs'), `export const y = 1;\n`);
    expect(relativeImportsOf(join(dir, 'main.mjs'))).toEqual([join(dir, 'lib', 'x.mjs'), join(dir, 'missing.mjs'), join(dir, 'lib', 'y.mjs')]);
  });

  it('stops at 256 files (a chain of 300 helpers lists the first 255 after the entry)', () => {
    const dir = tempDir('rp-imports-chain-');
    for (let i = 0; i < 300; i++) writeFileSync(join(dir, `m${i}.mjs`), `import './m${i + 1}.mjs';\n`);
    const found = relativeImportsOf(join(dir, 'm0.mjs'));
    expect(found).toHaveLength(255);
    expect(found.at(-1)).toBe(join(dir, 'm255.mjs'));
  });

  it('does not read a file over 1 MiB for imports (a data file, a bundle); one of exactly 1 MiB is read', () => {
    const dir = tempDir('rp-imports-big-');
    const padded = (body: string, size: number) => body + ' '.repeat(size - body.length);
    writeFileSync(join(dir, 'main.mjs'), `import './big.mjs';\nimport './edge.mjs';\n`);
    writeFileSync(join(dir, 'big.mjs'), padded(`import './behind-big.mjs';\n`, 1024 * 1024 + 1));
    writeFileSync(join(dir, 'edge.mjs'), padded(`import './behind-edge.mjs';\n`, 1024 * 1024));
    expect(relativeImportsOf(join(dir, 'main.mjs'))).toEqual([join(dir, 'big.mjs'), join(dir, 'edge.mjs'), join(dir, 'behind-edge.mjs')]);
  });
});
