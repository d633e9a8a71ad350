import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { adminKeyProblem } from '../server/admin-key.js';
import { ConfigError, ProblemList } from './errors.js';
import { reservedKeyProblems } from './safe-keys.js';
import { configSchema, RESERVED_KEYS, type Config } from './schema.js';

export { ConfigError, type ConfigProblem } from './errors.js';

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE_REF = /^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$/;

/** Where a value came from a whole-scalar `${VAR}` and was typed (number/boolean) from its text. */
type TypedRefs = Map<string, { readonly text: string; readonly path: readonly (string | number)[] }>;

/** The YAML reading of an environment value used as a whole scalar: `8080` is a number, `true` a boolean. */
function typedScalar(text: string): unknown {
  if (/^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/.test(text)) return Number(text);
  if (text === 'true') return true;
  if (text === 'false') return false;
  return text;
}

/**
 * Replaces `${NAME}` / `${NAME:-default}` in every string; a missing variable is a problem naming its
 * path. A scalar that is exactly one reference takes the type of its value (`port: ${PROXY_PORT}`);
 * if the schema wants a string there after all, the text is put back (see `parseConfig`).
 */
function interpolate(
  value: unknown,
  env: NodeJS.ProcessEnv,
  path: (string | number)[],
  problems: ProblemList,
  typed: TypedRefs,
): unknown {
  if (typeof value === 'string') {
    const text = value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      problems.add(dotted(path), `environment variable ${name} is not set`, `export ${name}=..., or write \${${name}:-default} to give a default`);
      return '';
    });
    if (WHOLE_REF.test(value)) {
      const t = typedScalar(text);
      if (typeof t !== 'string') typed.set(dotted(path), { text, path: [...path] });
      return t;
    }
    return text;
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, [...path, i], problems, typed));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, env, [...path, k], problems, typed);
    return out;
  }
  return value;
}

function dotted(path: readonly PropertyKey[]): string {
  return path.length ? path.map(String).join('.') : '(root)';
}

function setPath(obj: Record<string, unknown>, path: readonly (string | number)[], value: unknown): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (next === null || typeof next !== 'object') cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/** Whether the config as written (after interpolation) has a value at `path`, whatever its type. */
function hasValueAt(raw: unknown, path: readonly PropertyKey[]): boolean {
  let cur = raw;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return false;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur !== undefined;
}

function section(raw: Record<string, unknown>, key: string): Record<string, unknown> | null {
  const v = raw[key];
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/**
 * Environment variables that override the file (documented in README). The upstream key comes from
 * the variable of the chosen provider: OPENAI_API_KEY for openai, AZURE_OPENAI_API_KEY for azure.
 */
function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, problems: ProblemList): void {
  if (env.PORT) {
    const port = typedScalar(env.PORT);
    if (typeof port === 'number' && Number.isInteger(port)) setPath(raw, ['server', 'port'], port);
    else problems.add('server.port', `the PORT environment variable is "${env.PORT}", not a port number`, 'set PORT to an integer 0-65535, or unset it');
  }
  if (env.HOST) setPath(raw, ['server', 'host'], env.HOST);
  const provider = section(raw, 'upstream')?.['provider'] ?? 'openai';
  if (provider === 'openai' && env.OPENAI_API_KEY) setPath(raw, ['upstream', 'apiKey'], env.OPENAI_API_KEY);
  if (provider === 'azure' && env.AZURE_OPENAI_API_KEY) setPath(raw, ['upstream', 'apiKey'], env.AZURE_OPENAI_API_KEY);
  if (env.REALTIME_UPSTREAM_URL) setPath(raw, ['upstream', 'url'], env.REALTIME_UPSTREAM_URL);
  if (env.LOG_LEVEL) setPath(raw, ['logging', 'level'], env.LOG_LEVEL);
}

/**
 * A fix for a schema issue, from what the schema expected. `present`: the key has a value of the
 * wrong type. The issue's `input` is not reported (zod leaves it out unless asked, and it may be a
 * secret): until 2026-12-07 every wrong type was told to "add it", a quoted `"0.5"` or an empty
 * `${VAR:-}` included.
 */
function fixFor(issue: z.core.$ZodIssue, present: boolean): string {
  switch (issue.code) {
    case 'invalid_type':
      return present ? `write a ${issue.expected} here` : `add it (a ${issue.expected})`;
    case 'unrecognized_keys':
      return `remove ${issue.keys.map((k) => `"${k}"`).join(', ')} or correct the spelling (config/config.schema.json lists every key)`;
    case 'invalid_value':
      return `use one of: ${issue.values.map((v) => String(v)).join(', ')}`;
    // Exclusive bounds (positive(), gt()) say so: "at least 0" for a value that must exceed 0 misleads.
    case 'too_small':
      return issue.inclusive === false ? `use a value above ${String(issue.minimum)}` : `use a value of at least ${String(issue.minimum)}`;
    case 'too_big':
      return issue.inclusive === false ? `use a value below ${String(issue.maximum)}` : `use a value of at most ${String(issue.maximum)}`;
    case 'invalid_union':
      return 'use one of the forms listed (quote values YAML would read as numbers, such as hex digests)';
    case 'invalid_format':
      // A pattern's message says the form (`sha256 must be 64 lowercase hex characters`); "a valid regex" read as asking for one.
      return issue.format === 'regex' ? 'write a value of the form the problem names' : `write a valid ${issue.format}`;
    default:
      return 'see config/config.schema.json and README "Configuration"';
  }
}

/** The issue's message; for a union, what each alternative wanted. */
function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return issue.message;
  const alternatives = issue.errors.map((branch) => branch.map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`).join(', '));
  return `matches none of the allowed forms: ${alternatives.map((a) => `(${a})`).join(' or ')}`;
}

/** Validates a config object; `source` names the file in error messages. Throws ConfigError. */
export function parseConfig(input: unknown, source: string, env: NodeJS.ProcessEnv = process.env): Config {
  const problems = new ProblemList(source);
  if (input !== null && input !== undefined && (typeof input !== 'object' || Array.isArray(input))) {
    throw new ConfigError([{ file: source, path: '(root)', message: 'the config must be a mapping', fix: 'start from config/example.yaml' }]);
  }
  // Keys that would address Object.prototype are refused before anything copies the document.
  for (const p of reservedKeyProblems(input)) {
    const [path, message] = splitProblem(p);
    problems.add(path, message, 'rename it: __proto__, constructor and prototype cannot name anything');
  }
  problems.throwIfAny();
  const typed: TypedRefs = new Map();
  const raw = interpolate(input ?? {}, env, [], problems, typed) as Record<string, unknown>;
  applyEnvOverrides(raw, env, problems);
  const schema = configSchema();
  let result = schema.safeParse(raw);
  if (!result.success && typed.size > 0) {
    // A `${VAR}` whose value looked like a number or boolean, where the schema wants a string: keep the text.
    let reverted = false;
    for (const issue of result.error.issues) {
      const ref = typed.get(dotted(issue.path));
      if (ref && issue.code === 'invalid_type' && issue.expected === 'string') {
        setPath(raw, ref.path, ref.text);
        reverted = true;
      }
    }
    if (reverted) result = schema.safeParse(raw);
  }
  if (!result.success) {
    for (const issue of result.error.issues) problems.add(dotted(issue.path), describeIssue(issue), fixFor(issue, hasValueAt(raw, issue.path)));
  } else {
    for (const p of bootProblems(result.data)) {
      const [path, message] = splitProblem(p.problem);
      problems.add(path, message, p.fix);
    }
  }
  problems.throwIfAny();
  return result.data!;
}

/** `path: message` → [path, message]. */
function splitProblem(problem: string): [string, string] {
  const i = problem.indexOf(': ');
  return i > 0 ? [problem.slice(0, i), problem.slice(i + 2)] : ['(root)', problem];
}

/** Cross-field checks that the schema cannot express; each would otherwise fail at the first request. */
export function bootProblems(config: Config): { readonly problem: string; readonly fix: string }[] {
  const problems: { problem: string; fix: string }[] = [];
  const admin = adminKeyProblem(config.admin.key);
  if (admin) problems.push({ problem: admin, fix: 'generate one with `realtime-proxy keygen` (the key, or sha256:<the sha256 line>) and pass it via REALTIME_PROXY_ADMIN_KEY' });
  for (const [id, t] of Object.entries(config.tenants)) {
    if (t.plan !== undefined && RESERVED_KEYS.has(t.plan)) problems.push({ problem: `tenants.${id}.plan: "${t.plan}" is reserved and cannot name a plan`, fix: 'rename the plan' });
    if (t.policy !== undefined && RESERVED_KEYS.has(t.policy)) problems.push({ problem: `tenants.${id}.policy: "${t.policy}" is reserved and cannot name a policy`, fix: 'rename the policy file' });
  }
  return problems;
}

/**
 * A credential's key in a YAML line (upstream.apiKey, a tenant's or the admin's key, the TLS
 * passphrase, the SIP webhook secret, a SIP route's notify secret), block or flow style: up to the
 * next `,` or `}`, its value.
 */
const SECRET_VALUE = /((?:^|[\s{,-])["']?(?:apiKey|key|passphrase|webhookSecret|secret)["']?\s*:)[^,}]*/gi;

/**
 * A YAML error's excerpt with credential values replaced: the excerpt goes to stderr, i.e. to the
 * container logs, which more people read than the Secret the key came from. Until 2026-12-06 an
 * `apiKey: sk-…: x` line was printed whole.
 */
function maskSecrets(line: string): string {
  return line.replace(SECRET_VALUE, '$1 [redacted]');
}

/** Reads and validates one config file (syntax and schema; `compileConfig` checks the rest). */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file, path: '(root)', message: `cannot read the file: ${(err as Error).message}`, fix: 'pass an existing file with --config' }]);
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    // Later syntax errors are mostly consequences of the first.
    const first = doc.errors[0]!;
    const more = doc.errors.length > 1 ? ` (${doc.errors.length - 1} more may follow from it)` : '';
    const [head, ...excerpt] = first.message.trimEnd().split('\n');
    throw new ConfigError([{ file, path: '(yaml)', message: [head + more, ...excerpt.map(maskSecrets)].join('\n'), fix: 'correct the YAML syntax at the line shown (quote values with { } [ ] , inside flow mappings)' }]);
  }
  return parseConfig(doc.toJS() as unknown, file, env);
}

/** The directory a config file's relative paths (policies, ledger, certificates) resolve against. */
export function configBaseDir(configFile: string): string {
  return dirname(resolve(configFile));
}
