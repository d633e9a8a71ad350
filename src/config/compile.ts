import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, readSync, statSync, type Stats } from 'node:fs';
import { validateHeaderValue } from 'node:http';
import { availableParallelism } from 'node:os';
import { createSecureContext } from 'node:tls';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { notifyUrlProblem, sipRouteConditionsKey } from '../calls/config.js';
import { transferEntryProblem } from '../calls/transfer.js';
import { redactUrl } from '../logging.js';
import { resolveLimits, validatePlans } from '../metering/limits.js';
import { PriceBook } from '../metering/pricing.js';
import { UNWRITTEN_MAX_BYTES, unwrittenJournalPath } from '../metering/unwritten-journal.js';
import { PolicyError } from '../policies/compile.js';
import { hasLocks } from '../policies/locks.js';
import { PolicyRegistry } from '../policies/registry.js';
import { warnGuardrailsOutlastingLinger } from '../policies/linger.js';
import { isLoopbackName } from '../server/http.js';
import { resolveSettings, type TelemetrySettings } from '../telemetry/settings.js';
import { sha256Hex, TenantResolver } from '../tenants/resolver.js';
import type { Tenant } from '../tenants/tenant.js';
import { speaksPreviewProtocol } from '../upstream/dial.js';
import { ConfigError, ProblemList } from './errors.js';
import type { Config } from './schema.js';

/** Which upstream the proxy relays to, and why. */
export type UpstreamKind =
  | { readonly kind: 'openai' | 'azure' }
  /** `chosen`: upstream.provider is simulator; `no_api_key`: openai without a key outside production. */
  | { readonly kind: 'simulator'; readonly reason: 'chosen' | 'no_api_key' };

export interface CompiledConfig {
  /** The config with file paths (TLS) resolved against the config file's directory. */
  readonly config: Config;
  readonly upstream: UpstreamKind;
  readonly policiesDir: string;
  /** Relay processes (`server.workers`, "auto" resolved to the core count); 1: no primary/worker split. */
  readonly workers: number;
}

export interface CompileConfigOptions {
  /** The config file, named in every problem. */
  readonly file: string;
  /** Directory relative paths resolve against (the config file's directory). */
  readonly baseDir: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Logger for the policy compile (default: silent). */
  readonly log?: Logger;
}

/** Error messages of the metering checks start with the config path (`metering.prices.x: ...`). */
function splitPath(message: string): { path: string; message: string } {
  const m = /^(\([a-z]+\)|[A-Za-z0-9_.\-]+): ([\s\S]*)$/.exec(message);
  return m ? { path: m[1]!, message: m[2]! } : { path: '(root)', message };
}

function policyFix(message: string): string {
  if (message.includes('cannot load')) return 'check the module path (relative to the policy file) and that the module loads: `node --check` it, or compile it';
  if (message.includes('does not export')) return 'export default defineGuardrail({...}) from realtime-governance-proxy/policies';
  if (message.startsWith('(yaml)')) return 'correct the YAML syntax at the line shown';
  if (message.startsWith('(default)')) return 'add that policy file, or set policies.default to an existing policy';
  if (message.startsWith('(dir)')) return 'create the directory or correct policies.dir (relative to the config file)';
  return 'see policies/README.md and policies/policy.schema.json';
}

/**
 * Turns a PolicyError into problems: the registry's error lists one block per bad file
 * (`invalid policy FILE:` then `  - path: message` lines).
 */
function policyProblems(err: PolicyError, dir: string, problems: ProblemList): void {
  for (const block of err.problems) {
    const lines = block.split('\n');
    const head = /^invalid policy (.+):$/.exec(lines[0] ?? '');
    if (!head) {
      const p = splitPath(block);
      problems.add(p.path, p.message, policyFix(p.message), dir);
      continue;
    }
    // `  - path: message` items; lines that do not start an item continue the previous message.
    const items: string[] = [];
    for (const line of lines.slice(1)) {
      if (/^ {2}- /.test(line)) items.push(line.slice(4));
      else if (items.length > 0) items[items.length - 1] += `\n${line}`;
    }
    // Later YAML errors are mostly consequences of the first.
    const firstYaml = items.findIndex((i) => i.startsWith('(yaml)'));
    for (const [n, item] of items.entries()) {
      if (item.startsWith('(yaml)') && n !== firstYaml) continue;
      const p = splitPath(item);
      problems.add(p.path, p.message, policyFix(item), head[1]!);
    }
  }
}

function checkReadable(path: string, at: string, problems: ProblemList): boolean {
  try {
    if (!statSync(path).isFile()) {
      problems.add(at, `${path} is not a file`, 'point it at the PEM file');
      return false;
    }
    accessSync(path, constants.R_OK);
    return true;
  } catch (err) {
    problems.add(at, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'point it at an existing, readable PEM file (relative paths resolve against the config file)');
    return false;
  }
}

/** The nearest existing ancestor of `path` must be a writable directory (the proxy creates the rest). */
function checkWritableDir(path: string, at: string, problems: ProblemList): void {
  let dir = dirname(path);
  while (!existsSync(dir)) {
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    problems.add(at, `${dir} is not writable by this user (uid ${process.getuid?.() ?? '?'}), so ${path} cannot be created`, 'use a path in a writable data directory (the image uses /data), or fix the directory owner');
  }
}

/** The file at `path`, or null when there is none (then its directory must let the proxy create it: checkWritableDir). */
function existingOrCreatable(path: string, at: string, problems: ProblemList): Stats | null {
  try {
    return statSync(path);
  } catch {
    checkWritableDir(path, at, problems);
    return null;
  }
}

/**
 * metering.export.file: appended to by every process. A directory (or a file it may not write) there
 * passed check-config until 2026-12-06, and run then served with the export failed at its first
 * record (one error line, every usage record after it missing from the file).
 */
function checkAppendableFile(path: string, at: string, problems: ProblemList): void {
  const stat = existingOrCreatable(path, at, problems);
  if (stat === null) return;
  if (!stat.isFile()) {
    problems.add(at, `${path} is ${stat.isDirectory() ? 'a directory' : 'not a regular file'}`, 'name a file (e.g. usage.jsonl); the proxy creates it and appends to it');
    return;
  }
  try {
    accessSync(path, constants.W_OK);
  } catch (err) {
    problems.add(at, `${path} is not writable by this user (uid ${process.getuid?.() ?? '?'}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'fix the file owner or mode, or use a path in a writable data directory');
  }
}

/** The first 16 bytes of every SQLite database file. */
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * The SQLite ledger's file: a new path needs a writable directory; an existing one must be a
 * readable, writable SQLite database (or empty). Until 2026-12-06 only the directory was checked,
 * and a directory or a file of another kind there passed check-config while run died with
 * SQLite's bare "unable to open database file" / "file is not a database".
 */
function checkLedgerFile(path: string, at: string, problems: ProblemList, metering = true): void {
  // Read at start even beside a new file (the ledger file moved away, the journal not); metering's only.
  if (metering) checkUnwrittenJournal(unwrittenJournalPath(path), at, problems);
  const stat = existingOrCreatable(path, at, problems);
  if (stat === null) return;
  if (stat.isDirectory()) {
    problems.add(at, `${path} is a directory, not an SQLite database file`, 'name a file in that directory (e.g. ledger.db); the proxy creates it');
    return;
  }
  if (!stat.isFile()) {
    problems.add(at, `${path} is not a regular file`, 'point it at the ledger file, or at a new path in a writable directory');
    return;
  }
  let header = Buffer.alloc(0);
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    const fd = openSync(path, 'r');
    try {
      const buf = Buffer.alloc(SQLITE_HEADER.length);
      header = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    problems.add(at, `${path} is not readable and writable by this user (uid ${process.getuid?.() ?? '?'}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'fix the file owner or mode, or use a path in a writable data directory');
    return;
  }
  // An empty file is a new database to SQLite.
  if (stat.size > 0 && !header.equals(SQLITE_HEADER)) {
    problems.add(at, `${path} is not an SQLite database (the file does not start with the SQLite header)`, 'point it at the ledger file, or at a new path: the proxy creates the database');
  }
}

/**
 * The usage records a previous instance could not write (src/metering/unwritten-journal.ts): run
 * reads them before it serves and refuses to start without them, so check-config refuses the same.
 */
function checkUnwrittenJournal(path: string, at: string, problems: ProblemList): void {
  let stat: Stats;
  try {
    stat = statSync(path);
  } catch {
    return; // none: nothing was left unwritten
  }
  if (!stat.isFile()) {
    problems.add(at, `${path} (usage records left unwritten by a previous instance) is not a regular file`, 'move it away: the proxy writes that file only while the ledger file refuses writes');
    return;
  }
  // Run refuses it too rather than read it whole (src/metering/unwritten-journal.ts).
  if (stat.size > UNWRITTEN_MAX_BYTES) {
    problems.add(at, `${path} (usage records left unwritten by a previous instance) is ${stat.size} bytes, larger than the ${UNWRITTEN_MAX_BYTES} the proxy ever writes there`, 'move it away: it is not a file the proxy wrote');
    return;
  }
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    problems.add(at, `${path} (usage records left unwritten by a previous instance) is not readable by this user (uid ${process.getuid?.() ?? '?'}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'fix the file owner or mode: the proxy counts and writes those records at start');
  }
}

function compileUpstream(config: Config, env: NodeJS.ProcessEnv, problems: ProblemList): UpstreamKind {
  const up = config.upstream;
  if (up.provider === 'simulator') return { kind: 'simulator', reason: 'chosen' };
  if (up.provider === 'azure') {
    if (!up.azure) problems.add('upstream.azure', 'provider azure needs the endpoint and deployment', 'add upstream.azure: { endpoint: https://RESOURCE.openai.azure.com, deployment: NAME }');
    if (!up.apiKey) problems.add('upstream.apiKey', 'provider azure has no API key', 'set AZURE_OPENAI_API_KEY (or upstream.apiKey)');
    return { kind: 'azure' };
  }
  if (!/^wss?:\/\//.test(up.url)) {
    // Shown redacted: an Azure URL pasted whole carries `api-key=` (until 2026-12-07 printed to stderr, i.e. CI and container logs).
    const shown = redactUrl(up.url);
    problems.add('upstream.url', shown === '[unparseable url]' ? 'is not a URL' : `"${shown}" is not a ws:// or wss:// URL`, 'use wss://api.openai.com/v1/realtime');
  }
  if (!up.apiKey) {
    if (env.NODE_ENV === 'production') {
      problems.add(
        'upstream.apiKey',
        'no OpenAI API key (OPENAI_API_KEY is not set) and NODE_ENV is production: the proxy would serve simulated answers',
        'set OPENAI_API_KEY (e.g. from a Secret), or choose the simulator explicitly with upstream.provider: simulator',
      );
    }
    return { kind: 'simulator', reason: 'no_api_key' };
  }
  return { kind: 'openai' };
}

function compileServer(config: Config, baseDir: string, problems: ProblemList): Config['server'] {
  const tls = config.server.tls;
  if (!tls) return config.server;
  const certFile = isAbsolute(tls.certFile) ? tls.certFile : resolve(baseDir, tls.certFile);
  const keyFile = isAbsolute(tls.keyFile) ? tls.keyFile : resolve(baseDir, tls.keyFile);
  const certOk = checkReadable(certFile, 'server.tls.certFile', problems);
  const keyOk = checkReadable(keyFile, 'server.tls.keyFile', problems);
  if (certOk && keyOk) {
    try {
      createSecureContext({ cert: readFileSync(certFile), key: readFileSync(keyFile), ...(tls.passphrase ? { passphrase: tls.passphrase } : {}) });
    } catch (err) {
      problems.add('server.tls', `${certFile} / ${keyFile} do not form a usable certificate and key: ${(err as Error).message}`, 'use a PEM certificate chain and its matching private key (and passphrase, if the key is encrypted)');
    }
  }
  return { ...config.server, tls: { ...tls, certFile, keyFile } };
}

interface Listener {
  readonly at: string;
  readonly host: string;
  readonly port: number;
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]', '']);
const LOOPBACK_HOST = /^(localhost|127\.\d+\.\d+\.\d+|::1|\[::1\])$/i;

/** Two listen addresses a connection could reach both of: the same host, a wildcard, or two loopback names. */
function hostsOverlap(a: string, b: string): boolean {
  return a === b || WILDCARD_HOSTS.has(a) || WILDCARD_HOSTS.has(b) || (LOOPBACK_HOST.test(a) && LOOPBACK_HOST.test(b));
}

/**
 * uWS listens with SO_REUSEPORT: two of the proxy's listeners given one port both bind it, and the
 * kernel hands each connection to either (measured: /metrics answered 404 four times in six, client
 * upgrades every other time). Until 2026-12-06 check-config and run accepted `admin.port` equal to
 * `server.port`.
 */
function checkListenerPorts(config: Config, prometheus: TelemetrySettings['metrics']['prometheus'] | null, problems: ProblemList): void {
  const s = config.server;
  const listeners: Listener[] = [{ at: 'server.port', host: s.host, port: s.port }];
  if (s.tls) listeners.push({ at: 'server.tls.port', host: s.host, port: s.tls.port });
  if (config.admin.port !== null) listeners.push({ at: 'admin.port', host: config.admin.host, port: config.admin.port });
  if (prometheus?.enabled && prometheus.port !== null) listeners.push({ at: 'telemetry.metrics.prometheus.port', host: prometheus.host, port: prometheus.port });
  for (const [i, b] of listeners.entries()) {
    // Port 0 picks a free port per listener.
    const a = listeners.slice(0, i).find((l) => l.port !== 0 && l.port === b.port && hostsOverlap(l.host, b.host));
    if (a) {
      problems.add(
        b.at,
        `port ${b.port} is also ${a.at} (${a.host}:${a.port} and ${b.host}:${b.port}): both listeners would bind it and each connection would reach either one`,
        'give each listener its own port',
      );
    }
  }
}

/**
 * Cores this process may use: the CPU count, lowered by a cgroup v2 CPU quota (`docker run --cpus`,
 * a Kubernetes CPU limit), which os.availableParallelism() does not see.
 */
export function usableCores(cpuMax = '/sys/fs/cgroup/cpu.max'): number {
  const cpus = Math.max(1, availableParallelism());
  try {
    const [quota, period] = readFileSync(cpuMax, 'utf8').trim().split(/\s+/);
    const q = Number(quota);
    const p = Number(period);
    if (quota !== 'max' && q > 0 && p > 0) return Math.max(1, Math.min(cpus, Math.ceil(q / p)));
  } catch {
    // No cgroup v2 CPU controller here: the CPU count it is.
  }
  return cpus;
}

/** `server.workers` as a number ("auto": one per usable core), and what cannot be shared between workers. */
function compileWorkers(config: Config, problems: ProblemList): number {
  const w = config.server.workers;
  const workers = w === 'auto' ? usableCores() : w;
  if (workers <= 1) return 1;
  const ledger = config.metering.ledger;
  // The calls store lives next to the ledger; in memory it would be one store per worker process.
  if (config.calls.enabled && ledger.kind === 'sqlite' && ledger.path === ':memory:') {
    problems.add(
      'server.workers',
      `${workers} workers cannot share calls' in-memory store (metering.ledger.path is :memory:): a client secret minted by one worker would be unknown to the others`,
      'set metering.ledger.path to a file, use the redis ledger, or set server.workers: 1',
    );
  }
  return workers;
}

/** Whitespace at either end: HTTP parsers strip it, so a client's header never carries it. */
const EDGE_WHITESPACE = /^\s|\s$/;

/**
 * A credential no header can carry as it is: a character Node's HTTP client refuses in a header value
 * (its own validator, as the upstream dial runs it: line breaks, other control characters), or
 * whitespace at an end.
 */
function unsendableInHeader(value: string): boolean {
  try {
    validateHeaderValue('authorization', value);
  } catch {
    return true;
  }
  return EDGE_WHITESPACE.test(value);
}
const FIX_READ_WITH_NEWLINE =
  'remove it where the value comes from: a file or Secret read with its trailing newline (printf instead of echo, kubectl create secret --from-literal)';

/**
 * Credentials read with a trailing newline (a Secret made from a file, an env file written by echo).
 * Until 2026-12-07 check-config said ok: the upstream key could not go into a header, so every
 * session failed (upstream_unavailable, 1013) while /readyz said ready, and a tenant key no client
 * can send refused every client (test/ops/redteam-20-key-newline.test.ts). The value is never shown.
 */
function checkCredentialCharacters(config: Config, upstream: UpstreamKind, problems: ProblemList): void {
  const up = config.upstream;
  // The simulator sends none of them (its own key is the proxy's).
  const sent = upstream.kind === 'simulator' ? [] : [
    ['upstream.apiKey', up.apiKey],
    ['upstream.organization', up.organization],
    ['upstream.project', up.project],
  ] as const;
  for (const [path, value] of sent) {
    if (!value) continue;
    if (unsendableInHeader(value)) {
      problems.add(path, 'holds a line break, a control character or whitespace at an end: the upstream request cannot carry it as it is', FIX_READ_WITH_NEWLINE);
    }
  }
  for (const [id, tenant] of Object.entries(config.tenants)) {
    tenant.keys.forEach((k, index) => {
      if ('key' in k && unsendableInHeader(k.key)) {
        problems.add(`tenants.${id}.keys.${index}.key`, 'holds a line break, a control character or whitespace at an end: no client can send this key', FIX_READ_WITH_NEWLINE);
      }
    });
  }
}

/**
 * /metrics is a route of the admin listener unless it has a listener of its own: with `admin.port:
 * null` (no admin listener) it is served nowhere. Not an error (metrics may be wanted off, or pushed
 * over OTLP), so `run` warns; until 2026-12-07 nothing did, and the start-up line said "admin
 * listener /metrics" (test/ops/redteam-20-metrics-nowhere.test.ts).
 */
function warnMetricsNowhere(config: Config, telemetry: TelemetrySettings | null, log: Logger): void {
  // Settings that did not resolve are reported as a problem already.
  const prometheus = telemetry?.metrics.prometheus;
  if (!telemetry?.enabled || !prometheus?.enabled || prometheus.port !== null || config.admin.port !== null) return;
  log.warn(
    { path: prometheus.path },
    'Prometheus metrics are on but served nowhere: admin.port is null (no admin listener, where /metrics is served by default); set telemetry.metrics.prometheus.port for a listener of its own, or telemetry.metrics.prometheus.enabled: false',
  );
}

/** The demo tenant key config/example.yaml and the README publish (`npm start`, `talk`'s default). */
export const PUBLISHED_DEMO_KEY = 'rpk_demo_local_only_change_me';
/** Every tenant key this repository publishes: the example config's and grafana/proxy.yaml's. */
const PUBLISHED_KEYS = [PUBLISHED_DEMO_KEY, 'rpk_support_local_only_change_me'];

/**
 * A published key, served on a listener other machines reach, relaying to a real upstream with the
 * operator's key: anyone who read the README would spend it. Until 2026-12-07 `npm start` with
 * OPENAI_API_KEY set did exactly that (0.0.0.0:8080; test/ops/redteam-20-published-demo-key.test.ts).
 * The simulator costs nothing, and a loopback listener serves this machine only.
 */
function checkPublishedKeys(config: Config, upstream: UpstreamKind, problems: ProblemList): void {
  if (upstream.kind === 'simulator' || isLoopbackName(config.server.host)) return;
  const published = new Set(PUBLISHED_KEYS.map(sha256Hex));
  for (const [id, tenant] of Object.entries(config.tenants)) {
    tenant.keys.forEach((k, index) => {
      if (!published.has('sha256' in k ? k.sha256 : sha256Hex(k.key))) return;
      problems.add(
        `tenants.${id}.keys.${index}`,
        `is a key this repository publishes (README, config/example.yaml, grafana/proxy.yaml), served on ${config.server.host} (other machines reach it) with a real ${upstream.kind} upstream: anyone who read them would spend your upstream key`,
        'give the tenant a key of your own (`realtime-proxy keygen`; the example configs read DEMO_TENANT_KEY and SUPPORT_TENANT_KEY), or listen on loopback (server.host 127.0.0.1, HOST in config/example.yaml)',
      );
    });
  }
}

/**
 * The tenants as the proxy will see them. Shared keys are a problem of their own; the other
 * checks (plans, limits, policies) still run for every tenant so that one run lists everything.
 */
function compileTenants(config: Config, problems: ProblemList): Tenant[] {
  const tenants: Tenant[] = Object.entries(config.tenants).map(([id, t]) => ({ id, name: t.name ?? id, policy: t.policy ?? null, plan: t.plan ?? null, limits: t.limits ?? null }));
  try {
    new TenantResolver(config);
  } catch (err) {
    const m = /^tenants (\S+) and (\S+) share a key$/.exec((err as Error).message);
    if (m) problems.add(`tenants.${m[2]}.keys`, `tenants "${m[1]}" and "${m[2]}" share a key: the key would identify only one of them`, 'give each tenant its own key (`realtime-proxy keygen`)');
    else problems.add('tenants', (err as Error).message, 'see README "Configuration"');
  }
  return tenants;
}

function compileMetering(config: Config, tenants: readonly Tenant[], baseDir: string, problems: ProblemList): void {
  const cfg = config.metering;
  if (!cfg.enabled) return;
  const attempt = (fn: () => void, fix: string) => {
    try {
      fn();
    } catch (err) {
      const p = splitPath((err as Error).message);
      problems.add(p.path, p.message, fix);
    }
  };
  attempt(() => new PriceBook({ prices: cfg.prices, aliases: cfg.aliases, fallbackPrice: cfg.fallbackPrice }), 'correct the price entry (USD per 1M tokens, multiples of 0.001; see src/metering/README.md)');
  attempt(() => validatePlans(cfg), 'define the plan under metering.plans, or correct the name');
  for (const t of tenants) {
    attempt(() => resolveLimits(t, cfg), `define the plan under metering.plans (defined: ${Object.keys(cfg.plans).join(', ') || 'none'}), or correct the name`);
  }
  if (cfg.ledger.kind === 'sqlite' && cfg.ledger.path !== ':memory:') checkLedgerFile(resolve(baseDir, cfg.ledger.path), 'metering.ledger.path', problems);
  if (cfg.export.file) checkAppendableFile(resolve(baseDir, cfg.export.file), 'metering.export.file', problems);
}

/**
 * calls: what createCallsModule refuses at start. Until 2026-12-07 check-config said ok to a SIP
 * route naming no tenant, to calls beside an Azure upstream, and (metering off) to a calls store
 * path SQLite cannot open, and run then died with one bare line
 * (test/production/redteam-17c-calls-check-config.test.ts).
 */
function compileCalls(config: Config, tenants: readonly Tenant[], baseDir: string, problems: ProblemList): void {
  if (!config.calls.enabled) return;
  if (config.upstream.provider === 'azure') {
    problems.add('calls.enabled', 'calls are not supported on the Azure upstream yet', 'set calls.enabled: false, or use upstream.provider openai (or simulator)');
  }
  // The calls store opens the ledger's SQLite file even with metering off (compileMetering checks it otherwise).
  const ledger = config.metering.ledger;
  if (!config.metering.enabled && ledger.kind === 'sqlite' && ledger.path !== ':memory:') checkLedgerFile(resolve(baseDir, ledger.path), 'metering.ledger.path', problems, false);
  const ids = new Set(tenants.map((t) => t.id));
  /** Each set of conditions' first rule: a later rule with the same conditions never matches a call. */
  const firstWithConditions = new Map<string, number>();
  config.calls.sip.routes.forEach((route, i) => {
    // Until 2026-12-07 such a rule was taken, and its tenant, session, notify and transfer silently never applied.
    const conditions = sipRouteConditionsKey(route);
    const earlier = firstWithConditions.get(conditions);
    if (earlier === undefined) firstWithConditions.set(conditions, i);
    else {
      problems.add(
        `calls.sip.routes.${i}`,
        `this rule's conditions (to, header) equal those of calls.sip.routes.${earlier}, which matches first: rule ${i} (its tenant, session, notify and transfer) never applies to a call`,
        `merge rule ${i} into rule ${earlier} (the first matching rule wins), or give rule ${i} a different to or header`,
      );
    }
    if (!ids.has(route.tenant)) problems.add(`calls.sip.routes.${i}.tenant`, `no tenant named "${route.tenant}"`, `use one of: ${[...ids].join(', ') || '(no tenants defined)'}; or define the tenant under tenants`);
    const notify = route.notify;
    const urlProblem = notify ? notifyUrlProblem(notify.url, notify.allowHttp) : null;
    if (urlProblem) {
      problems.add(
        `calls.sip.routes.${i}.notify.url`,
        `the URL ${urlProblem}`,
        urlProblem.includes('not loopback') ? 'use https, or set notify.allowHttp: true where plain http stays on a network you trust' : 'write the app\'s webhook URL as https://host[:port]/path',
      );
    }
    // The app attaches with ?call_id=, which the upstream dial refuses without allowCallId: the route's
    // every call would answer nothing for waitForAppMs, waiting for an app that cannot come.
    if (notify && notify.waitForAppMs > 0 && !config.upstream.allowCallId) {
      problems.add(
        `calls.sip.routes.${i}.notify.waitForAppMs`,
        `the app's sideband cannot attach while upstream.allowCallId is false: every call of this route would answer nothing for ${notify.waitForAppMs} ms`,
        'set upstream.allowCallId: true (the app attaches with ?call_id=), or notify.waitForAppMs: 0',
      );
    }
    // Transfer targets: an entry the pattern language cannot read would never match (or match more than meant).
    route.transfer?.allow.forEach((entry, j) => {
      const problem = transferEntryProblem(entry);
      if (problem) problems.add(`calls.sip.routes.${i}.transfer.allow.${j}`, `"${entry.slice(0, 80)}" ${problem}`, 'write tel:+<digits>, tel:+<digits>*, sip:<user>@<host>, sip:*@<host> (or sip:<prefix>*@<host>), or an exact sip:/sips:/tel: URI without *');
    });
  });
}

function unknownPolicy(t: Tenant, policy: string, dir: string, known: readonly string[], problems: ProblemList): void {
  problems.add(`tenants.${t.id}.policy`, `no policy named "${policy}" in ${dir}`, `${known.length > 0 ? `use one of: ${known.join(', ')}; or ` : ''}add ${policy}.yaml there`);
}

async function compilePolicies(config: Config, tenants: readonly Tenant[], baseDir: string, log: Logger, problems: ProblemList): Promise<string> {
  const cfg = config.policies;
  const dir = cfg.dir === undefined ? resolve(baseDir, 'policies') : isAbsolute(cfg.dir) ? cfg.dir : resolve(baseDir, cfg.dir);
  let registry: PolicyRegistry;
  try {
    registry = await PolicyRegistry.load({ dir, dirRequired: cfg.dir !== undefined, defaultName: cfg.default, watch: false, debounceMs: cfg.watchDebounceMs, log });
  } catch (err) {
    if (err instanceof PolicyError) policyProblems(err, dir, problems);
    else problems.add('policies', (err as Error).message, 'see policies/README.md', dir);
    // One run lists everything: a tenant naming no policy file is a mistake of its own (until
    // 2026-12-06 it was reported only once every policy file loaded).
    const files = PolicyRegistry.namesIn(dir);
    for (const t of tenants) if (t.policy !== null && !files.includes(t.policy)) unknownPolicy(t, t.policy, dir, files, problems);
    return dir;
  }
  try {
    // Without metering nothing lingers at a close (src/relay/session.ts #lingerMs).
    const lingerMs = config.metering.enabled ? config.metering.lingerAfterClientCloseMs : 0;
    for (const entry of registry.entries()) warnGuardrailsOutlastingLinger(log, entry.current, lingerMs);
    const known = registry.entries().map((e) => e.name);
    for (const t of tenants) {
      if (t.policy !== null && !registry.has(t.policy)) {
        unknownPolicy(t, t.policy, dir, known, problems);
        continue;
      }
      // On the preview protocol every session of a locked tenant is refused at admission: a
      // configuration mistake, reported before the proxy listens rather than once per session.
      const entry = registry.resolve(t.policy);
      if (speaksPreviewProtocol(config.upstream) && hasLocks(entry.current)) {
        problems.add(
          `tenants.${t.id}.policy`,
          `policy "${entry.name}" holds session state (locks, truncation.upstream or guardrails.holdSpokenInput), which cannot be held on the Azure preview protocol (upstream.azure.apiVersion): every session of this tenant would be refused`,
          'leave upstream.azure.apiVersion unset (the GA endpoint /openai/v1/realtime), or give the tenant a policy without locks, truncation.upstream and holdSpokenInput',
        );
      }
    }
  } finally {
    registry.close();
  }
  return dir;
}

/**
 * The one validation phase: every check `run` makes before it listens, with no side effects
 * (no listener, no ledger, no watcher). `check-config` runs exactly this; `startProxy` runs it
 * first. Throws ConfigError listing every problem with its file, path and fix.
 */
export async function compileConfig(config: Config, options: CompileConfigOptions): Promise<CompiledConfig> {
  const env = options.env ?? process.env;
  const log = options.log ?? pino({ level: 'silent' });
  const problems = new ProblemList(options.file);
  const upstream = compileUpstream(config, env, problems);
  const server = compileServer(config, options.baseDir, problems);
  const workers = compileWorkers(config, problems);
  const tenants = compileTenants(config, problems);
  checkPublishedKeys(config, upstream, problems);
  checkCredentialCharacters(config, upstream, problems);
  compileMetering(config, tenants, options.baseDir, problems);
  compileCalls(config, tenants, options.baseDir, problems);
  let telemetry: TelemetrySettings | null = null;
  try {
    telemetry = resolveSettings(config.telemetry, env);
  } catch (err) {
    const p = splitPath((err as Error).message);
    problems.add(p.path, p.message, 'see README "Observability"');
  }
  checkListenerPorts(config, telemetry?.metrics.prometheus ?? null, problems);
  warnMetricsNowhere(config, telemetry, log);
  const policiesDir = await compilePolicies(config, tenants, options.baseDir, log, problems);
  problems.throwIfAny();
  return { config: { ...config, server }, upstream, policiesDir, workers };
}

export { ConfigError };
