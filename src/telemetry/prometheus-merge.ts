/**
 * One /metrics view over several relay workers: their Prometheus text expositions merged into one.
 * Every metric the proxy exports is additive across processes (counters, histogram buckets, sums
 * and counts, and the up-down "active" gauges), so samples with the same name and labels are
 * summed. `target_info` describes one process; the first worker's is kept.
 */

interface Family {
  readonly comments: string[];
  readonly samples: Map<string, number>;
  /** Which exposition first defined this family (target_info is taken from that one only). */
  readonly from: number;
}

const FAMILY_COMMENT = /^# (HELP|TYPE) (\S+)/;

function parseValue(raw: string): number {
  if (raw === '+Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  return Number(raw);
}

function formatValue(n: number): string {
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

export function mergePrometheusText(texts: readonly string[]): string {
  const families = new Map<string, Family>();
  texts.forEach((text, index) => {
    let current: Family | null = null;
    let currentName = '';
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const comment = FAMILY_COMMENT.exec(line);
      if (comment) {
        const name = comment[2]!;
        if (name !== currentName || !current) {
          currentName = name;
          current = families.get(name) ?? null;
          if (!current) families.set(name, (current = { comments: [], samples: new Map(), from: index }));
        }
        if (current.from === index && !current.comments.includes(line)) current.comments.push(line);
        continue;
      }
      if (line.startsWith('#')) continue;
      const space = line.lastIndexOf(' ');
      if (space <= 0) continue;
      const series = line.slice(0, space);
      const value = parseValue(line.slice(space + 1));
      if (!current) {
        // A sample without HELP/TYPE: a family of its own, named by the series.
        currentName = series.replace(/\{.*$/, '');
        current = families.get(currentName) ?? null;
        if (!current) families.set(currentName, (current = { comments: [], samples: new Map(), from: index }));
      }
      if (currentName === 'target_info' && current.from !== index) continue;
      current.samples.set(series, (current.samples.get(series) ?? 0) + value);
    }
  });
  const out: string[] = [];
  for (const f of families.values()) {
    out.push(...f.comments);
    for (const [series, value] of f.samples) out.push(`${series} ${formatValue(value)}`);
    out.push('');
  }
  return out.join('\n');
}

const CUMULATIVE_TYPES = new Set(['counter', 'histogram']);

/**
 * The cumulative families of an exposition (TYPE counter or histogram: their HELP/TYPE lines and
 * samples), without the gauges, target_info and untyped samples: what a process that is gone (or
 * does not answer) still contributes to a merged view.
 */
export function cumulativeOnly(text: string): string {
  const out: string[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const comment = FAMILY_COMMENT.exec(line);
    if (comment && comment[1] === 'TYPE') types.set(comment[2]!, line.slice(comment[0].length).trim());
  }
  let keep = false;
  let currentName = '';
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const comment = FAMILY_COMMENT.exec(line);
    if (comment) {
      if (comment[2] !== currentName) {
        currentName = comment[2]!;
        keep = CUMULATIVE_TYPES.has(types.get(currentName) ?? '');
        if (keep && out.length > 0) out.push('');
      }
      if (keep) out.push(line);
      continue;
    }
    if (line.startsWith('#')) continue;
    // A sample before any HELP/TYPE has no type: not carried.
    if (keep && currentName !== '') out.push(line);
  }
  if (out.length > 0) out.push('');
  return out.join('\n');
}

/**
 * One merged view over processes that come and go (relay workers: each restarted worker starts its
 * counters from 0), in which counters and histograms never decrease while the view's own process
 * runs (Prometheus reads a decrease as a reset and counts the whole value again).
 *
 * Each source's last cumulative values are kept: a source that does not answer a scrape contributes
 * them; one that is gone (`retire`) has them added to a retired sum, which every later merge
 * includes. Gauges are not carried (a dead process's open sessions are not open). What a source
 * counted between its last answered scrape and its end is not seen: the sum stays monotonic, at
 * most that much short.
 */
export class CumulativeMerge<K extends object> {
  readonly #last = new Map<K, string>();
  readonly #gone = new WeakSet<K>();
  #retired = '';

  /**
   * Merges one scrape: `answers` are the sources that answered, with their whole exposition (an
   * answer from a source already retired is ignored: it is in the retired sum); sources that did
   * not answer and are not retired contribute their last cumulative values. `extra` expositions
   * (e.g. per-source series) are merged as they are, after those.
   */
  merge(answers: ReadonlyMap<K, string>, extra: readonly string[] = []): string {
    const texts: string[] = [];
    for (const [source, text] of answers) {
      if (this.#gone.has(source)) continue;
      this.#last.set(source, cumulativeOnly(text));
      texts.push(text);
    }
    for (const [source, counters] of this.#last) if (!answers.has(source)) texts.push(counters);
    return mergePrometheusText([...texts, this.#retired, ...extra]);
  }

  /** The source is gone for good (a process that exited): its last cumulative values join the retired sum. */
  retire(source: K): void {
    this.#gone.add(source);
    const last = this.#last.get(source);
    this.#last.delete(source);
    if (last) this.#retired = cumulativeOnly(mergePrometheusText([this.#retired, last]));
  }
}
