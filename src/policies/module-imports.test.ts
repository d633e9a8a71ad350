import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { relativeImportsOf, relativeSpecifiers } from './module-imports.js';

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
});

describe('relativeImportsOf', () => {
  it('follows imports through helpers, once each (cycles end), and keeps files that do not exist yet', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-imports-'));
    mkdirSync(join(dir, 'lib'));
    writeFileSync(join(dir, 'main.mjs'), `import { x } from './lib/x.mjs';\nimport './missing.mjs';\n`);
    writeFileSync(join(dir, 'lib', 'x.mjs'), `export { y as x } from './y.mjs?cache=1';\nimport '../main.mjs';\n`);
    writeFileSync(join(dir, 'lib', 'y.mjs'), `export const y = 1;\n`);
    expect(relativeImportsOf(join(dir, 'main.mjs'))).toEqual([join(dir, 'lib', 'x.mjs'), join(dir, 'missing.mjs'), join(dir, 'lib', 'y.mjs')]);
  });
});
