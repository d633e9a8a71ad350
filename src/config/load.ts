import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { reservedKeyProblems } from './safe-keys.js';
import { configSchema, RESERVED_KEYS, type Config } from './schema.js';
import { adminKeyProblem } from '../server/admin-key.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces `${NAME}` / `${NAME:-default}` in every string; a missing variable is an error naming its path. */
function interpolate(value: unknown, env: NodeJS.ProcessEnv, path: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      problems.push(`${path || '(root)'}: environment variable ${name} is not set`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, `${path}[${i}]`, problems));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, env, path ? `${path}.${k}` : k, problems);
    return out;
  }
  return value;
}

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/** Environment variables that override the file (documented in README). */
function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  if (env.PORT) setPath(raw, ['server', 'port'], Number(env.PORT));
  if (env.HOST) setPath(raw, ['server', 'host'], env.HOST);
  if (env.OPENAI_API_KEY) setPath(raw, ['upstream', 'apiKey'], env.OPENAI_API_KEY);
  if (env.REALTIME_UPSTREAM_URL) setPath(raw, ['upstream', 'url'], env.REALTIME_UPSTREAM_URL);
  if (env.LOG_LEVEL) setPath(raw, ['logging', 'level'], env.LOG_LEVEL);
}

/** Validates a config object; `source` names the file in error messages. */
export function parseConfig(input: unknown, source: string, env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = reservedKeyProblems(input);
  if (problems.length > 0) throw new ConfigError(`invalid config ${source}:\n` + problems.map((p) => `  - ${p}`).join('\n'));
  const raw = (interpolate(input ?? {}, env, '', problems) ?? {}) as Record<string, unknown>;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${source}: the config must be a mapping`);
  applyEnvOverrides(raw, env);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    for (const issue of result.error.issues) {
      problems.push(`${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`);
    }
  }
  if (result.success) problems.push(...bootProblems(result.data));
  if (problems.length > 0 || !result.success) {
    throw new ConfigError(`invalid config ${source}:\n` + problems.map((p) => `  - ${p}`).join('\n'));
  }
  return result.data;
}

/** Cross-field checks that the schema cannot express; each would otherwise fail at the first request. */
export function bootProblems(config: Config): string[] {
  const problems: string[] = [];
  const admin = adminKeyProblem(config.admin.key);
  if (admin) problems.push(admin);
  for (const [id, t] of Object.entries(config.tenants)) {
    if (t.plan !== undefined && RESERVED_KEYS.has(t.plan)) problems.push(`tenants.${id}.plan: "${t.plan}" is reserved and cannot name a plan`);
    if (t.policy !== undefined && RESERVED_KEYS.has(t.policy)) problems.push(`tenants.${id}.policy: "${t.policy}" is reserved and cannot name a policy`);
  }
  return problems;
}

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new ConfigError(`invalid YAML in ${file}: ${(err as Error).message}`);
  }
  return parseConfig(doc, file, env);
}
