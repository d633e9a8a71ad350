import { existsSync, readFileSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, extname, join, relative, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { builtinDefaultPolicy, compilePolicy, parsePolicyYaml, PolicyError, type CompiledPolicy, type ModuleLoader } from './compile.js';

/** A named policy: its current compiled version, swapped atomically by hot reloads. */
export interface PolicyEntry {
  readonly name: string;
  /** Its file (changes when the file is renamed, e.g. `.yaml` to `.yml`, on a running proxy). */
  file: string | null;
  current: CompiledPolicy;
  loadedAt: number;
  /** Why the latest edit was refused (the last good version stays in force), or null. */
  lastError: string | null;
}

export type RegistryEvent =
  | { readonly kind: 'reloaded'; readonly name: string; readonly version: string }
  | { readonly kind: 'rejected'; readonly name: string; readonly file: string; readonly problems: readonly string[] }
  | { readonly kind: 'added'; readonly name: string; readonly version: string };

export interface RegistryOptions {
  /** Absolute directory of the policy files. */
  readonly dir: string;
  /** When false, a missing directory falls back to a built-in permissive default policy. */
  readonly dirRequired: boolean;
  readonly defaultName: string;
  readonly watch: boolean;
  readonly debounceMs: number;
  readonly log: Logger;
  readonly loadModule?: ModuleLoader;
  /** Longest wait for one custom module to load, at boot and on reloads (default 10 s). */
  readonly moduleLoadTimeoutMs?: number;
}

const POLICY_EXT = new Set(['.yaml', '.yml']);
const MODULE_EXT = new Set(['.ts', '.mts', '.js', '.mjs']);
/** Timer key of a full rescan. */
const ALL_FILES = '\0all';

function policyName(file: string): string {
  return basename(file, extname(file));
}

/**
 * Loads every policy file of a directory at boot (any invalid file aborts startup, naming the
 * file, path and problem), and with `watch` reloads a file when it or one of its custom modules
 * changes: a valid edit replaces the policy for new sessions (guardrail rules also for live
 * sessions, from their next response), an invalid edit is logged and the last good version stays.
 */
export class PolicyRegistry {
  readonly dir: string;
  readonly defaultName: string;
  readonly #entries = new Map<string, PolicyEntry>();
  readonly #opts: RegistryOptions;
  readonly #listeners: ((e: RegistryEvent) => void)[] = [];
  readonly #timers = new Map<string, NodeJS.Timeout>();
  /** One reload at a time per policy, in order. */
  readonly #queues = new Map<string, Promise<void>>();
  #watcher: FSWatcher | null = null;
  #generation = 0;
  #closed = false;

  private constructor(opts: RegistryOptions) {
    this.#opts = opts;
    this.dir = opts.dir;
    this.defaultName = opts.defaultName;
  }

  /** The names of the policies `dir`'s files define (by file name), whether or not they load; none when it does not exist. */
  static namesIn(dir: string): string[] {
    if (!existsSync(dir)) return [];
    return [...new Set(readdirSync(dir).filter((f) => POLICY_EXT.has(extname(f))).map(policyName))].sort();
  }

  static async load(opts: RegistryOptions): Promise<PolicyRegistry> {
    const reg = new PolicyRegistry(opts);
    await reg.#loadAll();
    if (opts.watch && existsSync(opts.dir)) reg.#startWatch();
    return reg;
  }

  async #loadAll(): Promise<void> {
    const { dir, log } = this.#opts;
    if (!existsSync(dir)) {
      if (this.#opts.dirRequired) throw new PolicyError(dir, ['(dir): the policies directory does not exist']);
      log.warn({ dir }, 'policies directory not found: using the built-in permissive default policy');
    } else {
      const files = readdirSync(dir)
        .filter((f) => POLICY_EXT.has(extname(f)))
        .sort();
      const errors: string[] = [];
      for (const f of files) {
        const file = join(dir, f);
        const name = policyName(f);
        if (this.#entries.has(name)) {
          errors.push(`${file}: another file already defines policy "${name}"`);
          continue;
        }
        try {
          const compiled = await this.#compileFile(file, name);
          this.#entries.set(name, { name, file, current: compiled, loadedAt: Date.now(), lastError: null });
        } catch (err) {
          errors.push(err instanceof Error ? err.message : String(err));
        }
      }
      if (errors.length > 0) throw new PolicyError(dir, errors);
    }
    if (!this.#entries.has(this.defaultName)) {
      if (this.#entries.size > 0 || this.#opts.dirRequired) {
        throw new PolicyError(dir, [`(default): no policy file named "${this.defaultName}" (.yaml) in ${dir}`]);
      }
      this.#entries.set(this.defaultName, { name: this.defaultName, file: null, current: await builtinDefaultPolicy(this.defaultName), loadedAt: Date.now(), lastError: null });
    }
  }

  async #compileFile(file: string, name: string): Promise<CompiledPolicy> {
    const text = readFileSync(file, 'utf8');
    const doc = parsePolicyYaml(text, file);
    // An empty (or all-comment) file is what a truncating write (`>`, a slow copy) leaves at its
    // first change event: read as the permissive policy, it turned every rule off. A policy that
    // enforces nothing says so (`description: permissive`).
    if (doc === null || doc === undefined) {
      throw new PolicyError(file, ['(root): the file is empty (no YAML document); a policy that enforces nothing is written `description: permissive`']);
    }
    return compilePolicy(doc, {
      name,
      file,
      root: this.dir,
      text,
      generation: this.#generation,
      ...(this.#opts.loadModule ? { loadModule: this.#opts.loadModule } : {}),
      ...(this.#opts.moduleLoadTimeoutMs !== undefined ? { moduleLoadTimeoutMs: this.#opts.moduleLoadTimeoutMs } : {}),
    });
  }

  /** The policy files of the directory that define policy `name` (boot refuses more than one). */
  #filesOf(name: string): string[] {
    return readdirSync(this.dir)
      .filter((f) => POLICY_EXT.has(extname(f)) && policyName(f) === name)
      .sort()
      .map((f) => join(this.dir, f));
  }

  get(name: string): PolicyEntry | undefined {
    return this.#entries.get(name);
  }

  /** The tenant's policy, or the default one. */
  resolve(name: string | null): PolicyEntry {
    return (name !== null ? this.#entries.get(name) : undefined) ?? this.#entries.get(this.defaultName)!;
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  entries(): PolicyEntry[] {
    return [...this.#entries.values()];
  }

  onChange(cb: (e: RegistryEvent) => void): void {
    this.#listeners.push(cb);
  }

  #emit(e: RegistryEvent): void {
    for (const cb of this.#listeners) {
      try {
        cb(e);
      } catch (err) {
        this.#opts.log.error({ err }, 'policy change listener threw');
      }
    }
  }

  #startWatch(): void {
    try {
      this.#watcher = watch(this.dir, { recursive: true }, (_event, filename) => {
        if (filename) this.#changed(resolve(this.dir, filename.toString()));
      });
      this.#watcher.on('error', (err) => this.#opts.log.error({ err }, 'policy watcher failed; hot reload is off'));
      // The server keeps the process alive; the watcher must not (tests, CLI checks).
      this.#watcher.unref();
    } catch (err) {
      this.#opts.log.error({ err }, 'cannot watch the policies directory; hot reload is off');
    }
  }

  /** Debounces bursts of events for one file (editors write, rename, chmod). */
  #changed(file: string): void {
    if (this.#closed) return;
    // A Kubernetes ConfigMap volume swaps the `..data` symlink (via `..data_tmp` and a new
    // `..<timestamp>` directory); the visible files are symlinks into it and get no events.
    const first = relative(this.dir, file).split(sep)[0] ?? '';
    if (first.startsWith('..') && first !== '..') {
      this.#schedule(ALL_FILES, () => this.#reloadAll());
      return;
    }
    const ext = extname(file);
    if (!POLICY_EXT.has(ext) && !MODULE_EXT.has(ext)) return;
    this.#schedule(file, () => this.#reloadFor(file));
  }

  #schedule(key: string, run: () => Promise<void>): void {
    const prev = this.#timers.get(key);
    if (prev) clearTimeout(prev);
    this.#timers.set(
      key,
      setTimeout(() => {
        this.#timers.delete(key);
        void run();
      }, this.#opts.debounceMs).unref(),
    );
  }

  /** Re-reads every policy file of the directory (after a ConfigMap symlink swap). */
  async #reloadAll(): Promise<void> {
    let files: string[];
    try {
      files = readdirSync(this.dir).filter((f) => POLICY_EXT.has(extname(f)));
    } catch (err) {
      this.#opts.log.error({ err, dir: this.dir }, 'cannot list the policies directory');
      return;
    }
    await Promise.all(files.map((f) => this.reload(policyName(f), join(this.dir, f))));
  }

  async #reloadFor(file: string): Promise<void> {
    if (POLICY_EXT.has(extname(file))) {
      // Only top-level files are policies.
      if (resolve(file, '..') !== this.dir) return;
      await this.reload(policyName(file), file);
      return;
    }
    const users = [...this.#entries.values()].filter((e) => e.current.modules.includes(file));
    for (const e of users) if (e.file) await this.reload(e.name, e.file);
  }

  /** Re-reads one policy file; resolves when the new version is in force or refused. */
  reload(name: string, file: string): Promise<void> {
    const prev = this.#queues.get(name) ?? Promise.resolve();
    const next = prev.then(() => this.#reloadNow(name, file));
    this.#queues.set(name, next);
    return next;
  }

  async #reloadNow(name: string, file: string): Promise<void> {
    if (this.#closed) return;
    const log = this.#opts.log;
    const entry = this.#entries.get(name);
    if (!existsSync(file) || !statSync(file).isFile()) {
      // A second file of the name removed (twin.yml beside twin.yaml) is not the policy's file.
      if (entry && (entry.file === file || entry.file === null || !existsSync(entry.file))) {
        log.warn({ policy: name, file }, 'policy file removed: the last loaded version stays in force until restart');
      }
      return;
    }
    this.#generation++;
    try {
      // The rule boot applies: one file per policy name. A second one (a copy made to prepare a
      // change, a tool writing .yml) is refused and the version in force stays.
      const files = this.#filesOf(name);
      if (files.length > 1) {
        throw new PolicyError(file, [`(file): policy "${name}" is defined by more than one file (${files.map((f) => basename(f)).join(', ')}); the proxy would refuse to start: keep one`]);
      }
      const compiled = await this.#compileFile(file, name);
      if (this.#closed) return;
      if (entry) {
        // Renamed (the only file of the name is now this one).
        entry.file = file;
        entry.current = compiled;
        entry.loadedAt = Date.now();
        entry.lastError = null;
        log.info({ policy: name, version: compiled.version, file }, 'policy reloaded');
        this.#emit({ kind: 'reloaded', name, version: compiled.version });
      } else {
        this.#entries.set(name, { name, file, current: compiled, loadedAt: Date.now(), lastError: null });
        log.info({ policy: name, version: compiled.version, file }, 'policy added');
        this.#emit({ kind: 'added', name, version: compiled.version });
      }
    } catch (err) {
      const problems = err instanceof PolicyError ? err.problems : [String((err as Error)?.message ?? err)];
      if (entry) entry.lastError = problems.join('; ');
      log.error({ policy: name, file, problems, keptVersion: entry?.current.version ?? null }, 'policy edit refused: keeping the last good version');
      this.#emit({ kind: 'rejected', name, file, problems });
    }
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = null;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }
}
