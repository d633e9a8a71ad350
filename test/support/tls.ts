import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './temp-dir.js';

export interface TestTls {
  readonly dir: string;
  readonly caCert: string;
  readonly certFile: string;
  readonly keyFile: string;
}

let cached: TestTls | null = null;

/** A throwaway CA and a server certificate for 127.0.0.1/localhost, made with openssl once per process. */
export function testTls(): TestTls {
  if (cached) return cached;
  const dir = tempDir('rp-tls-');
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=realtime-proxy test CA');
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf');
  cached = { dir, caCert: readFileSync(join(dir, 'ca.crt'), 'utf8'), certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
  return cached;
}
