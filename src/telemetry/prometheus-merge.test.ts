import { describe, expect, it } from 'vitest';
import { mergePrometheusText } from './prometheus-merge.js';

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
