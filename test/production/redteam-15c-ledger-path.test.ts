import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp-dir.js';

/**
 * An operator points metering.ledger.path at something SQLite cannot open: a directory (a volume
 * mounted at /data/ledger.db instead of /data), or an existing file that is not a database (another
 * service's file, a config). check-config only checked that the nearest existing directory was
 * writable and said ok; run then died at boot with SQLite's bare "unable to open database file" /
 * "file is not a database", naming neither the file nor the key. The guarantee broken: check-config
 * refuses exactly what run refuses, each problem as file, path and fix.
 */

const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;

function cleanEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
}

function cli(args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: cleanEnv(), timeout: 30_000 });
}

function project(ledgerPath: string, prepare: (dir: string) => void): string {
  const dir = tempDir('rp-ledger-path-');
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies/default.yaml'), 'description: permissive\n');
  writeFileSync(
    join(dir, 'proxy.yaml'),
    `server: { host: 127.0.0.1, port: 0, workers: 1 }\nadmin: { port: null }\nupstream: { provider: simulator }\nmetering: { ledger: { path: ${ledgerPath} } }\n`,
  );
  prepare(dir);
  return dir;
}

const CASES = [
  { name: 'a directory', path: 'data/ledger.db', prepare: (dir: string) => mkdirSync(join(dir, 'data/ledger.db'), { recursive: true }), text: /is a directory/ },
  { name: 'a file that is not an SQLite database', path: 'notes.txt', prepare: (dir: string) => writeFileSync(join(dir, 'notes.txt'), 'not a database, just some text that is long enough\n'), text: /not an SQLite database/ },
  // Run reads the usage records a previous instance left unwritten before it serves, and stops when it cannot.
  { name: 'a directory where its unwritten-records journal is', path: 'ledger.db', prepare: (dir: string) => mkdirSync(join(dir, 'ledger.db-unwritten.jsonl')), text: /ledger\.db-unwritten\.jsonl \(usage records left unwritten by a previous instance\) is not a regular file/ },
];

/**
 * The same for metering.export.file (the usage JSON-lines file a billing job reads): a directory there
 * passed check-config, and run served with the export failed at its first record, every usage record
 * missing from the file behind one error line.
 */
describe('check-config refuses a metering.export.file that cannot be appended to', () => {
  it('refuses a directory as the export file', () => {
    const dir = tempDir('rp-export-path-');
    mkdirSync(join(dir, 'policies'));
    mkdirSync(join(dir, 'usage.jsonl'));
    writeFileSync(join(dir, 'policies/default.yaml'), 'description: permissive\n');
    writeFileSync(
      join(dir, 'proxy.yaml'),
      'server: { host: 127.0.0.1, port: 0, workers: 1 }\nadmin: { port: null }\nupstream: { provider: simulator }\nmetering: { ledger: { path: ":memory:" }, export: { file: usage.jsonl } }\n',
    );
    const check = cli(['check-config', '--config', join(dir, 'proxy.yaml')]);
    expect(check.stdout).not.toMatch(/: ok \(/);
    expect(check.status).toBe(1);
    expect(check.stderr).toContain('  - metering.export.file: ');
    expect(check.stderr).toMatch(/is a directory/);
  }, 60_000);
});

describe('check-config and run agree on metering.ledger.path', () => {
  for (const c of CASES) {
    it(`refuses ${c.name} as the SQLite ledger, naming the path (check-config and run alike)`, () => {
      const dir = project(c.path, c.prepare);
      const config = join(dir, 'proxy.yaml');
      const check = cli(['check-config', '--config', config]);
      expect(check.stdout).not.toMatch(/: ok \(/);
      expect(check.status).toBe(1);
      expect(check.stderr).toContain('  - metering.ledger.path: ');
      expect(check.stderr).toMatch(c.text);
      const run = cli(['--config', config]);
      expect(run.status).toBe(1);
      expect(run.stderr).toBe(check.stderr);
    }, 60_000);
  }
});
