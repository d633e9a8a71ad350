/** One mistake in the configuration: where it is and how to fix it. */
export interface ConfigProblem {
  /** The file the mistake is in (the config file, a policy file, a TLS file). */
  readonly file: string;
  /** Dotted path inside the file, e.g. `tenants.acme.plan`; `(root)` for the whole file. */
  readonly path: string;
  readonly message: string;
  /** What to change. */
  readonly fix: string;
}

/**
 * The one error family of configuration mistakes, raised by `check-config` and by `run` alike (they
 * run the same compile steps). Its message lists every problem with file, path and fix; the CLI
 * prints it as it is, without a stack.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[] | string) {
    const list = typeof problems === 'string' ? [{ file: '(config)', path: '(root)', message: problems, fix: 'see README "Configuration"' }] : problems;
    super(formatProblems(list));
    this.problems = list;
  }
}

export function formatProblems(problems: readonly ConfigProblem[]): string {
  const byFile = new Map<string, ConfigProblem[]>();
  for (const p of problems) {
    let list = byFile.get(p.file);
    if (!list) byFile.set(p.file, (list = []));
    list.push(p);
  }
  const out: string[] = [];
  for (const [file, list] of byFile) {
    out.push(`invalid config ${file}:`);
    for (const p of list) {
      // Multi-line messages (YAML excerpts with a caret) stay readable under their item.
      const [first, ...rest] = p.message.trimEnd().split('\n');
      out.push(`  - ${p.path}: ${first}`);
      for (const line of rest) out.push(line ? `      ${line}` : '');
      out.push(`    fix: ${p.fix}`);
    }
  }
  return out.join('\n');
}

/** Collects problems across compile steps so that one run reports all of them. */
export class ProblemList {
  readonly #problems: ConfigProblem[] = [];

  constructor(readonly file: string) {}

  add(path: string, message: string, fix: string, file: string = this.file): void {
    this.#problems.push({ file, path: path || '(root)', message, fix });
  }

  addAll(problems: readonly ConfigProblem[]): void {
    this.#problems.push(...problems);
  }

  get size(): number {
    return this.#problems.length;
  }

  throwIfAny(): void {
    if (this.#problems.length > 0) throw new ConfigError([...this.#problems]);
  }
}
