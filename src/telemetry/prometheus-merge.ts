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
