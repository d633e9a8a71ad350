#!/usr/bin/env node
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pino, { type Logger } from 'pino';
import { compileConfig, PUBLISHED_DEMO_KEY } from './config/compile.js';
import { ConfigError } from './config/errors.js';
import { configBaseDir, loadConfigFile, parseConfig } from './config/load.js';
import { loadNativeModules } from './config/native-modules.js';
import type { Config } from './config/schema.js';
import { sha256Hex } from './tenants/resolver.js';
import { ownPackage } from './version.js';
import { installProcessFaultHandlers } from './server/process-faults.js';

const HELP = `realtime-proxy ${ownPackage.version} — governed WebSocket proxy for the OpenAI Realtime API

Usage:
  realtime-proxy [run] [--config FILE]    run the proxy
  realtime-proxy check-config [--config FILE]
                                          run every check \`run\` makes, then exit (non-zero on any mistake)
  realtime-proxy talk [TEXT] [--say PHRASE] [--url URL] [--key KEY] [--out FILE]
                    [--model MODEL] [--voice VOICE] [--timeout SEC]
                                          one spoken turn through a running proxy, saved as a WAV file
  realtime-proxy keygen [--browser]       print a new tenant key and the sha256 to put in the config
  realtime-proxy --version | --help

Config: --config FILE, else $REALTIME_PROXY_CONFIG, else ./realtime-proxy.yaml if present.
Environment overrides: PORT, HOST, OPENAI_API_KEY (provider openai), AZURE_OPENAI_API_KEY (provider azure),
REALTIME_UPSTREAM_URL, LOG_LEVEL. Values in the file may reference the environment: \${NAME}, \${NAME:-default}.
Without an API key the proxy relays to its embedded simulator, except with NODE_ENV=production, where it
refuses to start (choose the simulator explicitly with upstream.provider: simulator).

talk: --url defaults to ws://127.0.0.1:$PORT/v1/realtime (PORT default 8080), --key to $REALTIME_PROXY_KEY or
the example config's demo key, --out to answer.wav, --model to gpt-realtime, --timeout to 30 s. --say PHRASE makes the simulator speak exactly PHRASE
(it sends "say: PHRASE"), which shows what the output guardrails do to it.
`;

const DEMO_KEY = PUBLISHED_DEMO_KEY;

/** A mistake in the command line: printed with a pointer to --help, exit code 2. */
class UsageError extends Error {}

function configPath(explicit: string | undefined): string | null {
  if (explicit) return explicit;
  if (process.env.REALTIME_PROXY_CONFIG) return process.env.REALTIME_PROXY_CONFIG;
  return existsSync('realtime-proxy.yaml') ? 'realtime-proxy.yaml' : null;
}

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        browser: { type: 'boolean' },
        say: { type: 'string' },
        url: { type: 'string' },
        key: { type: 'string' },
        out: { type: 'string', short: 'o' },
        model: { type: 'string' },
        voice: { type: 'string' },
        timeout: { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function loadAndCompile(file: string | null): Promise<{ config: Config; file: string; baseDir: string }> {
  const source = file ?? '(defaults)';
  const config = file ? loadConfigFile(file) : parseConfig({}, source);
  const baseDir = file ? configBaseDir(file) : process.cwd();
  return { config, file: source, baseDir };
}

async function runTalk(values: ReturnType<typeof parse>['values'], positionals: readonly string[]): Promise<number> {
  const typed = positionals.slice(1).join(' ');
  if (values.say === undefined && typed === '') throw new UsageError('talk needs something to say: realtime-proxy talk "Hello" (or --say PHRASE)');
  const text = values.say !== undefined ? `say: ${values.say}` : typed;
  const port = process.env.PORT ?? '8080';
  const timeoutMs = values.timeout ? Number(values.timeout) * 1000 : 30_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout ${values.timeout}: give seconds, e.g. --timeout 30`);
  const out = values.out ?? 'answer.wav';
  // Loaded for this command only: the proxy itself needs no WebSocket client library.
  const { talk } = await import('./talk.js');
  const result = await talk({
    url: values.url ?? `ws://127.0.0.1:${port}/v1/realtime`,
    key: values.key ?? process.env.REALTIME_PROXY_KEY ?? DEMO_KEY,
    model: values.model ?? 'gpt-realtime',
    text,
    out,
    ...(values.voice ? { voice: values.voice } : {}),
    timeoutMs,
    write: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`you:   ${text}\n`);
  process.stdout.write(`proxy: ${result.transcript || '(no transcript)'}\n`);
  const seconds = (result.audioBytes / 48_000).toFixed(1);
  process.stdout.write(`audio: ${seconds} s written to ${out} (response ${result.status}${result.closeCode !== null ? `, session closed ${result.closeCode}` : ''})\n`);
  return result.status === 'completed' || result.status === 'cancelled' || result.errors.length > 0 ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv);
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${ownPackage.version}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'run';
  // Only talk takes more words; `check-config proxy.yaml` (the file without --config) checked the
  // defaults and said ok until 2026-12-06, while run refused the same argument.
  if (command !== 'talk' && positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  switch (command) {
    case 'keygen': {
      // Browser keys start with ek_ so that openai's browser guard accepts them without dangerouslyAllowBrowser.
      const key = `${values.browser ? 'ek_rp_' : 'rpk_'}${randomBytes(24).toString('base64url')}`;
      process.stdout.write(`key:    ${key}\nsha256: ${sha256Hex(key)}\n`);
      return 0;
    }
    case 'talk':
      return runTalk(values, positionals);
    case 'check-config': {
      const { config, file, baseDir } = await loadAndCompile(configPath(values.config));
      // What `run` would warn about at start, on stderr once the config compiled (a refused config
      // prints its errors only, as `run` does): the config is valid all the same.
      const warnings: string[] = [];
      const compiled = await compileConfig(config, { file, baseDir, log: checkWarnings(file, warnings) });
      for (const line of warnings) process.stderr.write(line);
      const natives = await loadNativeModules(config);
      const up = compiled.upstream.kind === 'simulator' ? `simulator (${compiled.upstream.reason === 'chosen' ? 'chosen' : 'no API key'})` : compiled.upstream.kind;
      process.stdout.write(`${file}: ok (${Object.keys(config.tenants).length} tenants, upstream ${up}, workers ${compiled.workers}, policies ${compiled.policiesDir}; ${natives.join(', ')})\n`);
      return 0;
    }
    case 'run':
      break;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
  const { config, file, baseDir } = await loadAndCompile(configPath(values.config));
  // Loaded here, not at the top: --help, --version and keygen work on a runtime without the native
  // modules the server needs, and a missing binary is reported as one line like any boot error.
  const { startProxy } = await import('./main.js');
  // The handlers are in place before the proxy starts: a signal that came between its "listening"
  // line and their installation took the default action (killed, no drain). Until 2026-12-07 a
  // process manager that stopped the proxy as soon as it logged it was listening could hit that
  // window (test/production/npm-start.test.ts failed once under load). During boot a signal still
  // ends the process at once, with the exit status the default action gives.
  let proxy: Awaited<ReturnType<typeof startProxy>> | null = null;
  let stopping = false;
  const stop = (signal: 'SIGTERM' | 'SIGINT') => {
    if (proxy === null) process.exit(signal === 'SIGINT' ? 130 : 143);
    const running = proxy;
    const sessions = running.workers ? running.workers.openSessions : running.server.sessionCount;
    // A second signal during the drain (Ctrl-C twice, `kill` twice): the operator will not wait.
    // Exit 1 at once, listeners closed first: the relay workers (holding the client port) are killed.
    // Until 2026-12-07 it was ignored and the drain ran on (test/ops/redteam-20-second-signal.test.ts).
    if (stopping) {
      running.log.warn({ signal, sessions }, 'second signal during the drain: exiting now, open sessions are cut');
      running.workers?.killAll();
      running.server.closeListeners();
      running.log.flush?.();
      process.exit(1);
    }
    stopping = true;
    // The workers are asked for their sessions now (answered at once): the question goes down each
    // worker's channel before the drain order, so the count is what the drain waits for.
    const counted = running.workers ? running.workers.sessionsNow() : Promise.resolve(sessions);
    const drained = running.shutdown();
    const logged = counted.then((open) => running.log.info({ signal, sessions: open, workers: running.workers?.count ?? 1 }, 'shutting down: /readyz answers 503 while sessions drain'));
    void Promise.all([logged, drained]).then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // SIGHUP (`kill -HUP`, `systemctl reload`, a closed terminal) reloads nothing: the config is read at
  // start and policies reload by themselves. Until 2026-12-07 its default action killed the proxy
  // with no drain (test/ops/redteam-20-sighup.test.ts); now it is logged and the proxy goes on.
  process.on('SIGHUP', () => {
    const line = { signal: 'SIGHUP' };
    const msg = 'SIGHUP ignored: the config file is read only at start (restart to apply it: SIGTERM drains); policies reload by themselves';
    if (proxy) proxy.log.warn(line, msg);
    else process.stderr.write(`${JSON.stringify({ ...line, msg })}\n`);
  });
  // The demo simulator speaks at playback speed, so a person listening hears realistic turns.
  proxy = await startProxy(config, {
    baseDir,
    configFile: file,
    simulator: { timing: { realtime: true, firstAudioDelayMs: 300 }, recordAudio: false },
  });
  installProcessFaultHandlers(proxy.log);
  return -1;
}

/**
 * The logger `check-config` checks with: each warning `run` would log at start (a guardrail outlasting
 * the close linger, /metrics served nowhere) as one line on stderr, `<file>: warning: <message>` and
 * its fields, collected into `into`. Until the twenty-third pass check-config checked silently: only `run` said so.
 */
function checkWarnings(file: string, into: string[]): Logger {
  return pino(
    { level: 'warn', base: null, timestamp: false },
    {
      write(line: string): void {
        const { msg, level: _level, ...fields } = JSON.parse(line) as Record<string, unknown>;
        const details = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
        into.push(`${file}: warning: ${String(msg)}${details}\n`);
      },
    },
  );
}

/** Boot errors are printed as one readable message, never a stack (LOG_LEVEL=debug adds it). */
function report(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`realtime-proxy: ${err.message}\nRun realtime-proxy --help for usage.\n`);
    return 2;
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    return 1;
  }
  const e = err as Error;
  process.stderr.write(`realtime-proxy: ${e?.message ?? String(err)}\n`);
  if (process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace') process.stderr.write(`${e?.stack ?? ''}\n`);
  return 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => process.exit(report(err)),
);
