import { describe, expect, it } from 'vitest';
import { CumulativeMerge, cumulativeOnly, mergePrometheusText } from './prometheus-merge.js';

const worker = (active: number, started: number, le1: number, count: number, sum: number, instance: string) =>
  [
    '# HELP target_info Target metadata',
    '# TYPE target_info gauge',
    `target_info{service_instance_id="${instance}"} 1`,
    '',
    '# HELP rtproxy_sessions_active Sessions open now.',
    '# TYPE rtproxy_sessions_active gauge',
    `rtproxy_sessions_active{rtproxy_tenant_id="acme"} ${active}`,
    '',
    '# HELP rtproxy_sessions_started_total Sessions accepted.',
    '# TYPE rtproxy_sessions_started_total counter',
    `rtproxy_sessions_started_total{rtproxy_tenant_id="acme"} ${started}`,
    '',
    '# HELP rtproxy_session_duration_seconds Session duration.',
    '# TYPE rtproxy_session_duration_seconds histogram',
    `rtproxy_session_duration_seconds_count{rtproxy_tenant_id="acme"} ${count}`,
    `rtproxy_session_duration_seconds_sum{rtproxy_tenant_id="acme"} ${sum}`,
    `rtproxy_session_duration_seconds_bucket{rtproxy_tenant_id="acme",le="1"} ${le1}`,
    `rtproxy_session_duration_seconds_bucket{rtproxy_tenant_id="acme",le="+Inf"} ${count}`,
    '',
  ].join('\n');

describe('mergePrometheusText', () => {
  it('sums every sample with the same name and labels; HELP/TYPE once per family; one target_info', () => {
    const merged = mergePrometheusText([worker(2, 5, 1, 3, 4.5, 'a'), worker(3, 7, 2, 4, 0.25, 'b')]);
    const lines = merged.split('\n').filter((l) => l !== '');
    expect(lines).toEqual([
      '# HELP target_info Target metadata',
      '# TYPE target_info gauge',
      'target_info{service_instance_id="a"} 1',
      '# HELP rtproxy_sessions_active Sessions open now.',
      '# TYPE rtproxy_sessions_active gauge',
      'rtproxy_sessions_active{rtproxy_tenant_id="acme"} 5',
      '# HELP rtproxy_sessions_started_total Sessions accepted.',
      '# TYPE rtproxy_sessions_started_total counter',
      'rtproxy_sessions_started_total{rtproxy_tenant_id="acme"} 12',
      '# HELP rtproxy_session_duration_seconds Session duration.',
      '# TYPE rtproxy_session_duration_seconds histogram',
      'rtproxy_session_duration_seconds_count{rtproxy_tenant_id="acme"} 7',
      'rtproxy_session_duration_seconds_sum{rtproxy_tenant_id="acme"} 4.75',
      'rtproxy_session_duration_seconds_bucket{rtproxy_tenant_id="acme",le="1"} 3',
      'rtproxy_session_duration_seconds_bucket{rtproxy_tenant_id="acme",le="+Inf"} 7',
    ]);
  });

  it('keeps series only one worker has (another tenant, another label set) and families only one worker has', () => {
    const a = '# HELP m_total M\n# TYPE m_total counter\nm_total{t="x"} 1\n';
    const b = '# HELP m_total M\n# TYPE m_total counter\nm_total{t="y"} 2\n# HELP n N\n# TYPE n gauge\nn 4\n';
    const lines = mergePrometheusText([a, b, '']).split('\n').filter((l) => l !== '');
    expect(lines).toEqual(['# HELP m_total M', '# TYPE m_total counter', 'm_total{t="x"} 1', 'm_total{t="y"} 2', '# HELP n N', '# TYPE n gauge', 'n 4']);
  });

  it('a label value containing a space is one series (the value is after the last space)', () => {
    const t = '# TYPE e_total counter\ne_total{code="a b"} 2\n';
    expect(mergePrometheusText([t, t]).split('\n')).toContain('e_total{code="a b"} 4');
  });
});

const sampleOf = (text: string, series: string): number | null => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
};
const STARTED = 'rtproxy_sessions_started_total{rtproxy_tenant_id="acme"}';
const ACTIVE = 'rtproxy_sessions_active{rtproxy_tenant_id="acme"}';
const COUNT = 'rtproxy_session_duration_seconds_count{rtproxy_tenant_id="acme"}';
const LE1 = 'rtproxy_session_duration_seconds_bucket{rtproxy_tenant_id="acme",le="1"}';

describe('cumulativeOnly', () => {
  it('keeps the counter and histogram families (HELP, TYPE, every sample), drops gauges, target_info and untyped samples', () => {
    const text = `untyped_first 3\n${worker(2, 5, 1, 3, 4.5, 'a')}# HELP g A gauge.\n# TYPE g gauge\ng 9\n`;
    expect(cumulativeOnly(text).split('\n').filter((l) => l !== '')).toEqual([
      '# HELP rtproxy_sessions_started_total Sessions accepted.',
      '# TYPE rtproxy_sessions_started_total counter',
      `${STARTED} 5`,
      '# HELP rtproxy_session_duration_seconds Session duration.',
      '# TYPE rtproxy_session_duration_seconds histogram',
      `${COUNT} 3`,
      'rtproxy_session_duration_seconds_sum{rtproxy_tenant_id="acme"} 4.5',
      `${LE1} 1`,
      'rtproxy_session_duration_seconds_bucket{rtproxy_tenant_id="acme",le="+Inf"} 3',
    ]);
    expect(cumulativeOnly('# TYPE g gauge\ng 1\n')).toBe('');
  });
});

describe('CumulativeMerge (relay workers that come and go)', () => {
  const a = { pid: 1 };
  const b = { pid: 2 };
  const a2 = { pid: 3 };

  it('a source that misses a scrape contributes its last counters and histograms, not its gauges', () => {
    const m = new CumulativeMerge<object>();
    const first = m.merge(new Map([[a, worker(2, 5, 1, 3, 4.5, 'a')], [b, worker(3, 7, 2, 4, 0.25, 'b')]]));
    expect([sampleOf(first, STARTED), sampleOf(first, ACTIVE), sampleOf(first, COUNT), sampleOf(first, LE1)]).toEqual([12, 5, 7, 3]);
    // `a` does not answer: its counters stand (5, 3, 1), its open sessions are not counted.
    const second = m.merge(new Map([[b, worker(4, 9, 2, 5, 0.5, 'b')]]));
    expect([sampleOf(second, STARTED), sampleOf(second, ACTIVE), sampleOf(second, COUNT), sampleOf(second, LE1)]).toEqual([14, 4, 8, 3]);
    // It answers again with what it counted meanwhile.
    const third = m.merge(new Map([[a, worker(1, 6, 2, 4, 5, 'a')], [b, worker(4, 9, 2, 5, 0.5, 'b')]]));
    expect([sampleOf(third, STARTED), sampleOf(third, ACTIVE), sampleOf(third, COUNT), sampleOf(third, LE1)]).toEqual([15, 5, 9, 4]);
    expect(third.match(/^# TYPE rtproxy_sessions_started_total /gm)).toHaveLength(1);
    expect(third.match(/^target_info/gm)).toHaveLength(1);
  });

  it('a retired source keeps its last counters in the sum: its replacement counts from 0 on top, the sum never decreases', () => {
    const m = new CumulativeMerge<object>();
    m.merge(new Map([[a, worker(2, 5, 1, 3, 4.5, 'a')], [b, worker(3, 7, 2, 4, 0.25, 'b')]]));
    m.retire(a);
    const down = m.merge(new Map([[b, worker(3, 7, 2, 4, 0.25, 'b')]]));
    expect([sampleOf(down, STARTED), sampleOf(down, ACTIVE), sampleOf(down, COUNT)]).toEqual([12, 3, 7]);
    const replaced = m.merge(new Map([[a2, worker(1, 1, 0, 0, 0, 'a2')], [b, worker(3, 8, 2, 5, 1.25, 'b')]]));
    expect([sampleOf(replaced, STARTED), sampleOf(replaced, ACTIVE), sampleOf(replaced, COUNT), sampleOf(replaced, LE1)]).toEqual([14, 4, 8, 3]);
    // A second generation: the retired sums add up.
    m.retire(a2);
    m.retire(b);
    const none = m.merge(new Map());
    expect([sampleOf(none, STARTED), sampleOf(none, ACTIVE), sampleOf(none, COUNT), sampleOf(none, LE1)]).toEqual([14, null, 8, 3]);
    expect(none).toContain('# TYPE rtproxy_sessions_started_total counter');
  });

  it('an answer from a source already retired is not counted again (its values are in the retired sum)', () => {
    const m = new CumulativeMerge<object>();
    m.merge(new Map([[a, worker(2, 5, 1, 3, 4.5, 'a')]]));
    m.retire(a);
    const late = m.merge(new Map([[a, worker(2, 6, 1, 3, 4.5, 'a')]]));
    expect(sampleOf(late, STARTED)).toBe(5);
    expect(sampleOf(m.merge(new Map()), STARTED)).toBe(5);
  });

  it('a source retired before it ever answered adds nothing', () => {
    const m = new CumulativeMerge<object>();
    m.retire(a);
    expect(sampleOf(m.merge(new Map([[b, worker(0, 2, 0, 0, 0, 'b')]])), STARTED)).toBe(2);
  });
});
