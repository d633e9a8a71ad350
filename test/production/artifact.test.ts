import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { whenListening } from '../support/spawned-proxy.js';
import { buildArtifact, ROOT, type Artifact } from './artifact.js';
import { NEXT_NODES, nextNode } from './node-next.js';
import { tempDir } from '../support/temp-dir.js';

/**
 * The compiled production artifact: dist/ plus production dependencies only (assembled as
 * `npm ci --omit=dev` would), run as an operator would, with a custom guardrail that lives outside
 * the app directory and imports the public entry.
 */

let artifact: Artifact;
const children: ChildProcessWithoutNullStreams[] = [];

beforeAll(() => {
  artifact = buildArtifact();
}, 180_000);

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (artifact) rmSync(artifact.dir, { recursive: true, force: true });
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...extra };
  return e;
}

const BLOCKER = `import { defineGuardrail } from 'realtime-governance-proxy/policies';
export default defineGuardrail({
  name: 'no-forbidden',
  wants: ['input'],
  evaluate(event) {
    return event.text.includes('forbidden') ? { action: 'block', reason: 'forbidden word' } : { action: 'allow' };
  },
});
`;

/** A policies directory outside the app (like a ConfigMap mount), with a .mjs guardrail. */
function externalPolicies(): string {
  const dir = tempDir('rp-etc-policies-');
  mkdirSync(join(dir, 'custom'));
  writeFileSync(join(dir, 'custom', 'no-forbidden.mjs'), BLOCKER);
  writeFileSync(join(dir, 'default.yaml'), 'guardrails:\n  custom:\n    - { id: no-forbidden, module: ./custom/no-forbidden.mjs }\n');
  return dir;
}

describe('the production artifact (dist/ + production dependencies)', () => {
  it('contains no devDependency: tsx, typescript and vitest are absent and cannot be imported', () => {
    expect(artifact.omitted).toContain('node_modules/tsx');
    for (const dev of ['tsx', 'typescript', 'vitest', 'http-proxy']) expect(existsSync(join(artifact.dir, 'node_modules', dev))).toBe(false);
    expect(existsSync(join(artifact.dir, 'src'))).toBe(false);
    expect(existsSync(join(artifact.dir, 'dist/cli.js'))).toBe(true);
    expect(existsSync(join(artifact.dir, 'dist/policies/api.d.ts'))).toBe(true);
    const probe = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('tsx/esm/api')"], { cwd: artifact.dir, encoding: 'utf8', env: env() });
    expect(probe.status).not.toBe(0);
    expect(probe.stderr).toContain('ERR_MODULE_NOT_FOUND');
    // The public entries resolve from the package itself.
    const lib = spawnSync(process.execPath, ['--input-type=module', '-e', "const m = await import('realtime-governance-proxy'); const p = await import('realtime-governance-proxy/policies'); console.log(typeof m.startProxy, typeof p.defineGuardrail)"], {
      cwd: artifact.dir,
      encoding: 'utf8',
      env: env(),
    });
    expect(lib.stderr).toBe('');
    expect(lib.stdout.trim()).toBe('function function');
  });

  it('ships type declarations a TypeScript consumer compiles against (startProxy, defineGuardrail, Config)', () => {
    const consumer = tempDir('rp-consumer-');
    mkdirSync(join(consumer, 'node_modules'));
    symlinkSync(artifact.dir, join(consumer, 'node_modules', 'realtime-governance-proxy'));
    writeFileSync(join(consumer, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')] },
        files: ['main.ts', 'guardrail.ts'],
      }),
    );
    writeFileSync(
      join(consumer, 'main.ts'),
      [
        "import { startProxy, loadConfigFile, ConfigError, type Config, type ProxyHandle } from 'realtime-governance-proxy';",
        "const config: Config = loadConfigFile('proxy.yaml');",
        "const port: number = config.server.port;",
        "export async function run(): Promise<ProxyHandle | string> {",
        "  try { return await startProxy(config, { configFile: 'proxy.yaml' }); } catch (err) { return err instanceof ConfigError ? err.problems.map((p) => p.fix).join() : String(port); }",
        '}',
      ].join('\n'),
    );
    writeFileSync(
      join(consumer, 'guardrail.ts'),
      [
        "import { defineGuardrail, type Decision } from 'realtime-governance-proxy/policies';",
        "const block: Decision = { action: 'block', reason: 'x' };",
        "export default defineGuardrail({ name: 'x', wants: ['input'], evaluate: (e) => (e.text.length > 3 ? block : { action: 'allow' }) });",
      ].join('\n'),
    );
    const ok = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', consumer], { encoding: 'utf8' });
    expect(ok.stdout + ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    // And the declarations reject misuse.
    writeFileSync(join(consumer, 'guardrail.ts'), "import { defineGuardrail } from 'realtime-governance-proxy/policies';\nexport default defineGuardrail({ name: 'x', wants: ['nowhere'], evaluate: () => ({ action: 'maybe' }) });\n");
    const bad = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', consumer], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toContain('guardrail.ts');
  }, 60_000);

  it('prints its version and rejects unknown options without a stack', () => {
    const bin = join(artifact.dir, 'bin/realtime-proxy.mjs');
    const v = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8', env: env() });
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toBe((JSON.parse(readFileSync(join(artifact.dir, 'package.json'), 'utf8')) as { version: string }).version);
    const bad = spawnSync(process.execPath, [bin, '--frobnicate'], { encoding: 'utf8', env: env() });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("Unknown option '--frobnicate'");
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });

  it('check-config loads the shipped TypeScript guardrail (policies/custom/shouting.ts) without tsx', () => {
    const r = spawnSync(process.execPath, [join(artifact.dir, 'bin/realtime-proxy.mjs'), 'check-config', '--config', join(artifact.dir, 'config/example.yaml')], {
      encoding: 'utf8',
      env: env(),
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ok (1 tenants');
  });

  it('runs the proxy: a simulator turn heard through `talk`, and a custom .mjs guardrail from outside the app', async () => {
    const policies = externalPolicies();
    const work = tempDir('rp-artifact-run-');
    const config = join(work, 'proxy.yaml');
    writeFileSync(
      config,
      [
        'server: { host: 127.0.0.1, port: 0, shutdownDrainSec: 2 }',
        'admin: { port: 0 }',
        'upstream: { provider: simulator }',
        `policies: { dir: ${policies}, watch: false }`,
        'tenants:',
        '  demo:',
        '    keys: [{ key: rpk_artifact_test_0123456789 }]',
      ].join('\n') + '\n',
    );
    const bin = join(artifact.dir, 'bin/realtime-proxy.mjs');
    // NODE_ENV=production: the simulator is allowed because the config chooses it.
    const child = spawn(process.execPath, [bin, '--config', config], { cwd: work, env: env({ NODE_ENV: 'production' }), stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(child);
    const listening = await whenListening(child);
    const { port } = listening;
    const ready = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as Record<string, unknown>;
    expect(ready).toMatchObject({ status: 'ready', upstream: 'simulator', simulator: 'chosen' });

    const talk = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const t = spawn(process.execPath, [bin, 'talk', '--url', `ws://127.0.0.1:${port}/v1/realtime`, '--key', 'rpk_artifact_test_0123456789', ...args], { cwd: work, env: env() });
        let stdout = '';
        let stderr = '';
        t.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        t.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        t.once('exit', (code) => resolve({ code, stdout, stderr }));
      });

    const heard = await talk(['--say', 'Hello from the compiled proxy.', '--out', join(work, 'hello.wav')]);
    expect(heard.stderr).toBe('');
    expect(heard.code).toBe(0);
    expect(heard.stdout).toContain('proxy: Hello from the compiled proxy.');
    const wav = readFileSync(join(work, 'hello.wav'));
    expect(wav.subarray(0, 4).toString('ascii')).toBe('RIFF');
    expect(wav.subarray(8, 16).toString('ascii')).toBe('WAVEfmt ');
    expect(wav.readUInt32LE(24)).toBe(24_000);
    const dataBytes = wav.readUInt32LE(40);
    expect(dataBytes).toBe(wav.length - 44);
    // About 70 ms of speech per character at 24 kHz PCM16: well over a second for this phrase.
    expect(dataBytes).toBeGreaterThan(48_000);

    const blocked = await talk(['This is forbidden.', '--out', join(work, 'blocked.wav')]);
    expect(blocked.code).toBe(0);
    expect(blocked.stderr).toContain('proxy error guardrail_blocked');
    // The blocked item never reached the upstream: the simulator answers an empty conversation.
    expect(blocked.stdout).toContain('proxy: Hello from the realtime simulator.');

    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(listening.output()).not.toMatch(/tsx|Unknown file extension/);
  }, 60_000);
});

/**
 * Node 20 is past its end of life; the uWebSockets.js build in use has binaries for Node 16/18/20 only
 * and better-sqlite3 is built at install for the installing Node. Under a newer Node the artifact must
 * still answer what needs no native module, and refuse to start with one line naming each module that
 * needs a build, from `check-config` as from `run` (until 2026-12-06 every command, even `--version`,
 * died with a stack trace: the CLI imported the server at its top).
 */
describe(`the artifact under Node ${NEXT_NODES[NEXT_NODES.length - 1]} (its official binary from the npm registry)`, () => {
  let node: string;
  beforeAll(() => {
    node = nextNode(NEXT_NODES[NEXT_NODES.length - 1]!);
  }, 180_000);
  const cli = (...args: string[]) =>
    spawnSync(node, [join(artifact.dir, 'bin/realtime-proxy.mjs'), ...args], { encoding: 'utf8', env: env({ UPSTREAM_PROVIDER: 'simulator' }), timeout: 30_000 });
  const abi = () => spawnSync(node, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).stdout.trim();

  it('--version, --help and keygen work', () => {
    const version = cli('--version');
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toBe((JSON.parse(readFileSync(join(artifact.dir, 'package.json'), 'utf8')) as { version: string }).version);
    expect(cli('--help').stdout).toContain('Usage:');
    const key = cli('keygen');
    expect(key.status).toBe(0);
    expect(key.stdout).toMatch(/^key: {4}rpk_\S+\nsha256: [0-9a-f]{64}\n$/);
  });

  it('check-config refuses with one line per native module that did not load, and no stack', () => {
    const r = cli('check-config', '--config', join(artifact.dir, 'config/example.yaml'));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^realtime-proxy: uWebSockets\\.js native binary uws_${process.platform}_${process.arch}_${abi()}\\.node did not load \\(.*\\)\\. .*ships binaries for Node ABIs 93, 108 and 115`));
    expect(lines[1]).toMatch(/^better-sqlite3's native module did not load on Node v\d+\.\d+\.\d+ \(.*NODE_MODULE_VERSION \d+.*\)\. The SQLite ledger .*npm rebuild better-sqlite3/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('run refuses to start with the same line, exit code 1, no stack', () => {
    const r = cli('run', '--config', join(artifact.dir, 'config/example.yaml'));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^realtime-proxy: uWebSockets\\.js native binary uws_${process.platform}_${process.arch}_${abi()}\\.node did not load .*The JS fallback is deliberately not used\\.\n$`));
  });
});
