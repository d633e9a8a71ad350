import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCatalogue } from '../../src/protocol/errors.js';

describe('README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it('documents every error code the proxy can emit', () => {
    for (const code of Object.keys(ErrorCatalogue)) expect(readme, code).toContain(`\`${code}\``);
  });

  it('shows the run and test commands', () => {
    expect(readme).toContain('npm start');
    expect(readme).toContain('npm test');
  });
});
