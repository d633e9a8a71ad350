import { createHash } from 'node:crypto';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { GuardrailDefinition, GuardrailSource } from './api.js';
import { isDefinedGuardrail } from './api.js';
import { loadGuardrailModule, moduleDependencies } from './load-module.js';
import { phraseFinder, piiFinder, regexFinder, type CompiledRule, type Source, type SpanFinder } from './matchers.js';
import { BUILTIN_PII, validatorFor, type PiiDetector } from './pii.js';
import { firstCharPrefix, regexPrefix } from './match-prefix.js';
import { firstCharTest, maxMatchLength, parseRegex } from './regex-safety.js';
import { policyFileSchema, type FallbackAction, type PolicyFile, type PolicyLocks, type PolicyTruncation } from './schema.js';

/** A policy file that failed validation: every problem names the file, the path and what is wrong. */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  readonly problems: readonly string[];

  constructor(file: string, problems: readonly string[]) {
    super(`invalid policy ${file}:\n` + problems.map((p) => `  - ${p}`).join('\n'));
    this.problems = problems;
  }
}

export type CustomMode = 'sync' | 'blocking' | 'parallel';

export interface CompiledCustom {
  readonly id: string;
  readonly guardrail: GuardrailDefinition;
  readonly sources: ReadonlySet<Source>;
  readonly streaming: boolean;
  readonly mode: CustomMode;
  readonly timeoutMs: number;
  readonly onTimeout: FallbackAction;
  readonly onError: FallbackAction;
  readonly options: Readonly<Record<string, unknown>>;
}

export interface CompiledPolicy {
  readonly name: string;
  readonly version: string;
  /** The file it came from (null for the built-in fallback). */
  readonly file: string | null;
  readonly logMatches: boolean;
  readonly windowChars: number;
  readonly maxInputChars: number;
  /** Longest text scanned in one event, and what happens to longer ones. */
  readonly maxScanChars: number;
  readonly overScanLimit: 'block' | 'pass_unscanned';
  readonly rules: readonly CompiledRule[];
  readonly rulesBySource: ReadonlyMap<Source, readonly CompiledRule[]>;
  readonly custom: readonly CompiledCustom[];
  readonly customBySource: ReadonlyMap<Source, readonly CompiledCustom[]>;
  readonly replacement: string;
  /** What happens to event types (and item types) the content-path table does not know. */
  readonly unknownContentEvents: 'pass' | 'block';
  /** Speech whose transcript failed or did not arrive within `timeoutMs`. */
  readonly transcriptionFailure: { readonly action: 'pass' | 'block' | 'end_session'; readonly timeoutMs: number | null };
  /**
   * Spoken turns held until their transcript is checked (src/policies/hold.ts), or null. A
   * session snapshot like the locks: `create_response` is forced off for the session's life.
   */
  readonly holdSpokenInput: { readonly timeoutMs: number } | null;
  readonly locks: PolicyLocks;
  readonly truncation: PolicyTruncation;
  /** Absolute paths of the custom modules it imports (a change to one reloads the policy). */
  readonly modules: readonly string[];
}

/** Compiles a trailing-`*` glob list into a predicate. */
export function nameMatcher(patterns: readonly string[]): (name: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return (name) => exact.has(name) || prefixes.some((p) => name.startsWith(p));
}

function groupBySource<T extends { readonly sources: ReadonlySet<Source> }>(items: readonly T[]): Map<Source, readonly T[]> {
  const out = new Map<Source, T[]>();
  for (const item of items) {
    for (const s of item.sources) {
      let list = out.get(s);
      if (!list) out.set(s, (list = []));
      list.push(item);
    }
  }
  return out;
}

/**
 * The streaming window (`windowChars`) is sized to cover the longest finite match of every rule, so
 * such a match is held whole until it is settled and seen whole across deltas, items and the
 * `maxInputChars` windows of a complete text (until 2026-12-06 only phrases grew it: a regex or
 * detector match longer than `streamWindowChars` was released in part, or never seen). The window
 * is capped: a rule that can match more than MAX_MATCH_CHARS is refused. Unbounded patterns
 * (`.*`, `\d+`) keep the window of `streamWindowChars`.
 */
export const MAX_WINDOW_CHARS = 8192;
/** Characters of the window beyond the longest match (as for phrases). */
const WINDOW_MARGIN = 16;
/** Longest finite match (UTF-16 units, as `maxMatchLength` counts) a rule or detector may have. */
export const MAX_MATCH_CHARS = MAX_WINDOW_CHARS - WINDOW_MARGIN;

function tooLong(what: string, length: number): string {
  return `${what}: a match can be ${length} characters long, more than the ${MAX_MATCH_CHARS} a rule may match (the streaming window is capped at ${MAX_WINDOW_CHARS}); shorten the pattern`;
}

/** Compiles the rules; a finite match longer than MAX_MATCH_CHARS is a problem (detectors are checked where they are declared). */
function compileRules(p: PolicyFile, detectors: ReadonlyMap<string, PiiDetector>, problems: string[]): CompiledRule[] {
  return p.guardrails.rules.map((r, i) => {
    const finders: SpanFinder[] = [];
    const m = r.match;
    if (m.phrases?.length) {
      const phrases = phraseFinder(m.phrases, m.wholeWords);
      if (phrases.maxLength > MAX_MATCH_CHARS) problems.push(`guardrails.rules.${i}.match.phrases: ${tooLong(`rule "${r.id}"`, phrases.maxLength)}`);
      finders.push(phrases);
    }
    m.regex?.forEach((entry, j) => {
      const [pattern, flags] = typeof entry === 'string' ? [entry, ''] : [entry.pattern, entry.flags];
      const maxLength = maxMatchLength(pattern, flags);
      if (Number.isFinite(maxLength) && maxLength > MAX_MATCH_CHARS) problems.push(`guardrails.rules.${i}.match.regex.${j}: ${tooLong(`rule "${r.id}"`, maxLength)}`);
      const hold = regexPrefix(pattern, flags, maxLength) ?? firstCharPrefix(startTest(pattern, flags), maxLength);
      finders.push(regexFinder(new RegExp(pattern, flags + 'g'), m.regex!.length > 1 ? `regex${j}` : 'regex', maxLength, undefined, undefined, hold ?? undefined));
    });
    for (const name of m.pii ?? []) {
      // A detector refused above is missing (the policy is refused with it).
      const d = detectors.get(name);
      if (d) finders.push(piiFinder(d));
    }
    return {
      id: r.id,
      sources: new Set(r.sources),
      events: r.events ? new Set(r.events) : null,
      action: r.action,
      finders,
      maxChars: m.maxChars ?? null,
      functionName: m.functions?.length ? nameMatcher(m.functions) : null,
      replacement: r.replacement ?? p.guardrails.defaults.replacement,
      logMatches: r.logMatches ?? p.logMatches,
    } satisfies CompiledRule;
  });
}

/**
 * Where a match of a rule regex can start: its first characters, at a word boundary when every
 * alternative begins with \\b (one that does not, `\\bq…|zz…`, can start after a letter).
 */
function startTest(pattern: string, flags: string): ((code: number, prev: number) => boolean) | undefined {
  const first = firstCharTest(pattern, flags);
  if (!first) return undefined;
  // It parses: firstCharTest did.
  const bounded = parseRegex(pattern, flags)!.branches.every((b) => b.items[0]?.atom.kind === 'assert' && b.items[0].atom.test === 'boundary');
  if (!bounded) return (code) => first(code);
  // `\w` as the pattern's own `\b` sees it: `_` included (JavaScript's word; phrases, which take `_` as
  // a separator, bound words in matchers.ts and match-prefix.ts, not here). With the `i` and `u` flags
  // `ſ` (U+017F) and `K` (U+212A) are word characters too: either may be one here.
  const word = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
  const unsure = (c: number) => c === 0x17f || c === 0x212a;
  // At a boundary one side is a word character and the other is not (`\b-x` starts after a letter).
  return (code, prev) => first(code) && (word(code) !== word(prev) || unsure(code) || unsure(prev));
}

export type ModuleLoader = (absPath: string, cacheKey: string) => Promise<unknown>;

/** Imports a module fresh (.ts compiled on load; see load-module.ts). */
export const importModule: ModuleLoader = loadGuardrailModule;

function asGuardrail(v: unknown): GuardrailDefinition | null {
  if (isDefinedGuardrail(v)) return v;
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  // `wants` is checked on its own below (with a message saying what is wrong with it).
  if (typeof o['name'] === 'string' && typeof o['evaluate'] === 'function') return v as GuardrailDefinition;
  return null;
}

/** The sources a text can have (GuardrailSource; policy `sources` are checked by the schema). */
const KNOWN_SOURCES: ReadonlySet<string> = new Set<GuardrailSource>(['input', 'output', 'tool_call', 'tool_output', 'image']);

/**
 * What is wrong with a guardrail's `wants`, or null. A string (`wants: "output"`) is not a list (it
 * was read as a set of characters), and a source no text has (`outputs`) would never run.
 */
function wantsProblem(wants: unknown): string | null {
  if (!Array.isArray(wants)) return `\`wants\` must be a list of sources (${[...KNOWN_SOURCES].join(', ')}), not ${wants === undefined ? 'missing' : JSON.stringify(wants)}`;
  const unknown = wants.filter((w) => typeof w !== 'string' || !KNOWN_SOURCES.has(w));
  if (unknown.length > 0) return `\`wants\` names unknown source${unknown.length > 1 ? 's' : ''} ${unknown.map((w) => JSON.stringify(w)).join(', ')} (known: ${[...KNOWN_SOURCES].join(', ')})`;
  return null;
}

/**
 * Longest wait for a custom module to load (its top-level code, a `.ts` module's compile). A module
 * whose top-level `await` never settles would otherwise hold a boot (and `check-config`, which Node
 * then ends with exit 0 and no output) or a policy's reload queue for ever.
 */
export const MODULE_LOAD_TIMEOUT_MS = 10_000;

/** The load, or a rejection naming the module once `timeoutMs` passed (the import itself cannot be stopped). */
function boundedLoad(load: ModuleLoader, abs: string, key: string, module: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    // Not unref'd: it keeps the process alive (a pending import alone does not).
    const timer = setTimeout(() => reject(new Error(`${module} did not finish loading within ${timeoutMs} ms (a top-level await that never settles?)`)), timeoutMs);
    load(abs, key).then(
      (mod) => {
        clearTimeout(timer);
        resolve(mod);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

export interface CompileOptions {
  readonly name: string;
  readonly file: string | null;
  /** Directory custom module paths must stay inside (the policies dir). */
  readonly root: string;
  /** Text of the file, for the default version hash. */
  readonly text: string;
  readonly loadModule?: ModuleLoader;
  /** Distinguishes reloads (cache-busting key for module imports). */
  readonly generation?: number;
  /** Longest wait for one custom module to load (default MODULE_LOAD_TIMEOUT_MS). */
  readonly moduleLoadTimeoutMs?: number;
}

/** Validates a parsed policy document and compiles it; throws PolicyError naming every problem. */
export async function compilePolicy(doc: unknown, opts: CompileOptions): Promise<CompiledPolicy> {
  const label = opts.file ?? opts.name;
  const problems: string[] = [];
  const rawName = typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>)['name'] : undefined;
  if (typeof rawName === 'string' && rawName !== opts.name) problems.push(`name: "${rawName}" does not match the file name "${opts.name}"`);
  const parsed = policyFileSchema().safeParse(doc ?? {});
  if (!parsed.success) {
    for (const i of parsed.error.issues) problems.push(`${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
    throw new PolicyError(label, problems);
  }
  const p = parsed.data;

  const detectors = new Map<string, PiiDetector>(BUILTIN_PII.map((d) => [d.name, d]));
  const builtinNames = BUILTIN_PII.map((d) => d.name);
  for (const [i, d] of p.guardrails.piiDetectors.entries()) {
    // A second detector of a name silently replaced the first, a built-in name the built-in
    // detector (a custom `card` dropped the Luhn-checked one for every rule naming `card`).
    if (builtinNames.includes(d.name)) {
      problems.push(`guardrails.piiDetectors.${i}.name: "${d.name}" is a built-in detector (${builtinNames.join(', ')}); give yours another name`);
      continue;
    }
    if (p.guardrails.piiDetectors.findIndex((o) => o.name === d.name) !== i) {
      problems.push(`guardrails.piiDetectors.${i}.name: duplicate PII detector "${d.name}"`);
      continue;
    }
    const validate = validatorFor(d.validate);
    // `maxLength` is declared; a pattern whose matches are longer (`ACCT\d{100}` under the default
    // 64) was held and scanned for the declared length only: its matches were released, or missed.
    const longest = maxMatchLength(d.pattern, d.flags);
    const maxLength = Number.isFinite(longest) ? Math.max(d.maxLength, longest) : d.maxLength;
    if (maxLength > MAX_MATCH_CHARS) {
      problems.push(`guardrails.piiDetectors.${i}.pattern: ${tooLong(`detector "${d.name}"`, maxLength)}`);
      continue;
    }
    // Streamed text is held only while it can still grow into a match (else: its last maxLength characters).
    const hold = regexPrefix(d.pattern, d.flags, maxLength);
    detectors.set(d.name, {
      name: d.name,
      pattern: new RegExp(d.pattern, d.flags + 'g'),
      maxLength,
      ...(validate ? { validate } : {}),
      ...(hold ? { holdStart: (text: string) => hold.holdStart(text) } : {}),
    });
  }
  const compiledRules = compileRules(p, detectors, problems);

  const custom: CompiledCustom[] = [];
  const modules: string[] = [];
  const baseDir = opts.file ? dirname(opts.file) : opts.root;
  const load = opts.loadModule ?? importModule;
  for (const [i, c] of p.guardrails.custom.entries()) {
    const at = `guardrails.custom.${i}.module`;
    if (isAbsolute(c.module)) {
      problems.push(`${at}: use a path relative to the policy file`);
      continue;
    }
    const abs = resolve(baseDir, c.module);
    const rel = relative(opts.root, abs);
    if (rel.startsWith('..') || isAbsolute(rel)) {
      problems.push(`${at}: the module must be inside the policies directory`);
      continue;
    }
    modules.push(abs);
    let mod: unknown;
    try {
      mod = await boundedLoad(load, abs, `${opts.generation ?? 0}`, c.module, opts.moduleLoadTimeoutMs ?? MODULE_LOAD_TIMEOUT_MS);
    } catch (err) {
      problems.push(`${at}: cannot load ${c.module}: ${(err as Error).message}`);
      continue;
    }
    // A compiled (.ts) module's own imports are in its bundle: a change to one reloads the policy too.
    for (const dep of moduleDependencies(abs)) if (!modules.includes(dep)) modules.push(dep);
    const exported = typeof mod === 'object' && mod !== null ? (mod as Record<string, unknown>)[c.export ?? 'default'] ?? (c.export ? undefined : (mod as Record<string, unknown>)['guardrail']) : undefined;
    const guardrail = asGuardrail(exported);
    if (!guardrail) {
      problems.push(`${at}: ${c.module} does not export ${c.export ? `"${c.export}" as` : 'a default (or `guardrail`)'} guardrail made with defineGuardrail()`);
      continue;
    }
    const badWants = wantsProblem(guardrail.wants);
    if (badWants) {
      problems.push(`${at}: ${c.module}: ${badWants}`);
      continue;
    }
    const sources = new Set<Source>((c.sources ?? guardrail.wants) as readonly GuardrailSource[]);
    if (sources.size === 0) problems.push(`guardrails.custom.${i}.sources: the guardrail wants no sources`);
    custom.push({
      id: c.id,
      guardrail,
      sources,
      streaming: guardrail.streaming === true,
      mode: c.mode,
      timeoutMs: c.timeoutMs ?? p.guardrails.defaults.timeoutMs,
      onTimeout: c.onTimeout ?? p.guardrails.defaults.onTimeout,
      onError: c.onError ?? p.guardrails.defaults.onError,
      options: c.options ?? {},
    });
  }
  if (problems.length > 0) throw new PolicyError(label, problems);

  const hold = p.guardrails.holdSpokenInput;
  const longestPhrase = Math.max(0, ...p.guardrails.rules.flatMap((r) => r.match.phrases ?? []).map((s) => s.length));
  // The window of `streamWindowChars` (grown for phrases), then grown to the longest finite match of
  // any rule (regexes, detectors, phrases; each at most MAX_MATCH_CHARS).
  const baseWindow = Math.max(p.guardrails.streamWindowChars, longestPhrase * 2 + WINDOW_MARGIN);
  const longestMatch = Math.max(0, ...compiledRules.flatMap((r) => r.finders.map((f) => f.maxLength)).filter((n) => Number.isFinite(n)));
  const windowChars = Math.max(baseWindow, longestMatch + WINDOW_MARGIN);
  // Unbounded patterns keep the reach they had: `baseWindow` characters before the text not released
  // yet, not the grown window (a quadratic one, `[\w.+-]+@[\w-]+\.\w+`, next to the email detector
  // took 768 µs per delta on a run of letters over the grown window, 331 over this, 69 before).
  // (A policy whose window did not grow is left as it was: there they see the whole context.)
  const reach = (f: SpanFinder): SpanFinder => (f.maxLength === Infinity ? { ...f, maxLength: baseWindow } : f);
  const rules = windowChars === baseWindow ? compiledRules : compiledRules.map((r) => ({ ...r, finders: r.finders.map(reach) }));
  return {
    name: opts.name,
    version: p.version !== undefined ? String(p.version) : createHash('sha256').update(opts.text).digest('hex').slice(0, 12),
    file: opts.file,
    logMatches: p.logMatches,
    windowChars,
    maxInputChars: p.guardrails.maxInputChars,
    maxScanChars: p.guardrails.maxScanChars,
    overScanLimit: p.guardrails.overScanLimit,
    rules,
    rulesBySource: groupBySource(rules),
    custom,
    customBySource: groupBySource(custom),
    replacement: p.guardrails.defaults.replacement,
    unknownContentEvents: p.guardrails.unknownContentEvents,
    transcriptionFailure: {
      // Holding is fail-closed unless the policy says otherwise.
      action: p.guardrails.inputTranscriptionFailure.action ?? (hold.enabled ? 'block' : 'pass'),
      timeoutMs: p.guardrails.inputTranscriptionFailure.timeoutMs ?? null,
    },
    holdSpokenInput: hold.enabled ? { timeoutMs: hold.timeoutMs } : null,
    locks: p.locks,
    truncation: p.truncation,
    modules,
  };
}

/** Parses YAML text; syntax errors become a PolicyError with line numbers. */
export function parsePolicyYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) throw new PolicyError(file, doc.errors.map((e) => `(yaml): ${e.message}`));
  return doc.toJS() as unknown;
}

/** The permissive policy used when no `default` policy file exists. */
export async function builtinDefaultPolicy(name: string): Promise<CompiledPolicy> {
  return compilePolicy({ description: 'built-in permissive policy' }, { name, file: null, root: process.cwd(), text: '', generation: 0 });
}
