import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from './json-schema.js';
import { ConfigError, loadConfigFile, parseConfig } from './load.js';
import { tempDir } from '../../test/support/temp-dir.js';

function file(text: string): string {
  const dir = tempDir('rp-config-');
  const f = join(dir, 'proxy.yaml');
  writeFileSync(f, text);
  return f;
}

describe('config', () => {
  it('applies defaults to an empty config', () => {
    const c = parseConfig({}, 'x', {});
    expect(c.server.port).toBe(8080);
    expect(c.server.maxFrameBytes).toBe(16 * 1024 * 1024);
    expect(c.upstream.url).toBe('wss://api.openai.com/v1/realtime');
    expect(c.upstream.connectTimeoutMs).toBe(2000);
  });

  it('interpolates ${VAR} and ${VAR:-default}, and env overrides win', () => {
    const f = file('upstream:\n  apiKey: ${UPKEY}\nserver:\n  host: ${H:-127.0.0.1}\ntenants:\n  a:\n    keys: [{key: "${AKEY}"}]\n');
    const c = loadConfigFile(f, { UPKEY: 'sk-file', AKEY: 'rpk_aaaaaaaaaaaaaaaa', PORT: '9999' });
    expect(c.upstream.apiKey).toBe('sk-file');
    expect(c.server.host).toBe('127.0.0.1');
    expect(c.server.port).toBe(9999);
    const d = loadConfigFile(f, { UPKEY: 'sk-file', AKEY: 'rpk_aaaaaaaaaaaaaaaa', OPENAI_API_KEY: 'sk-env' });
    expect(d.upstream.apiKey).toBe('sk-env');
  });

  it('names the file, the path and the problem', () => {
    const f = file('server:\n  port: "eighty"\n  bogus: 1\ntenants:\n  a:\n    keys: [{sha256: "nothex"}]\nupstream:\n  apiKey: ${MISSING}\n');
    let message = '';
    try {
      loadConfigFile(f, {});
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toContain(f);
    expect(message).toContain('server.port');
    expect(message).toContain('server');
    expect(message).toMatch(/bogus/);
    expect(message).toContain('tenants.a.keys.0');
    expect(message).toContain('upstream.apiKey: environment variable MISSING is not set');
  });

  it('refuses a server.maxJsonDepth above the strict parser\'s limit, so the setting is the one depth every filter sees', () => {
    const f = file('server:\n  maxJsonDepth: 200\n');
    expect(() => loadConfigFile(f, {})).toThrow(/server\.maxJsonDepth/);
    const ok = loadConfigFile(file('server:\n  maxJsonDepth: 128\n'), {});
    expect(ok.server.maxJsonDepth).toBe(128);
  });

  it('server.memoryBudgetTenantShare is a fraction in (0, 1]; unset, the server picks it from the tenant count', () => {
    expect(() => loadConfigFile(file('server:\n  memoryBudgetTenantShare: 0\n'), {})).toThrow(/server\.memoryBudgetTenantShare[\s\S]*use a value above 0/);
    expect(() => loadConfigFile(file('server:\n  memoryBudgetTenantShare: 1.5\n'), {})).toThrow(/server\.memoryBudgetTenantShare[\s\S]*use a value of at most 1/);
    expect(loadConfigFile(file('server:\n  memoryBudgetTenantShare: 1\n'), {}).server.memoryBudgetTenantShare).toBe(1);
    expect(parseConfig({}, 'x', {}).server.memoryBudgetTenantShare).toBeUndefined();
  });

  it('a value of the wrong type is told to be written as the type, not to be added (a quoted number, an empty ${VAR:-})', () => {
    expect(() => loadConfigFile(file('server:\n  memoryBudgetTenantShare: "0.5"\n'), {})).toThrow(/server\.memoryBudgetTenantShare[^\n]*\n\s*fix: write a number here/);
    expect(() => loadConfigFile(file('server:\n  memoryBudgetTenantShare: ${SHARE:-}\n'), {})).toThrow(/fix: write a number here/);
    // A required key that is missing is still told to be added.
    // A value that does not match a pattern: the fix does not ask for "a valid regex" (the production image's unset TENANT_KEY_SHA256).
    expect(() => parseConfig({ tenants: { a: { keys: [{ sha256: 'nothex' }] } } }, 'x', {})).toThrow(/64 lowercase hex characters\n\s*fix: write a value of the form the problem names/);
    expect(() => parseConfig({ upstream: { azure: {} } }, 'x', {})).toThrow(/upstream\.azure\.endpoint[^\n]*\n\s*fix: add it \(a string\)/);
  });

  it('ships an example config that validates', () => {
    const c = loadConfigFile(new URL('../../config/example.yaml', import.meta.url).pathname, {});
    expect(Object.keys(c.tenants)).toContain('demo');
  });

  it('keeps config/config.schema.json in sync with the schema (npm run schema)', () => {
    const onDisk = readFileSync(new URL('../../config/config.schema.json', import.meta.url), 'utf8');
    expect(onDisk).toBe(configJsonSchema() + '\n');
  });
});
