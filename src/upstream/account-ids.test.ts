import { describe, expect, it } from 'vitest';
import { withoutAccountIds } from './account-ids.js';

describe('withoutAccountIds', () => {
  it('cuts organization and project ids to their prefix, and leaves everything else', () => {
    const msg = 'Rate limit reached for gpt-realtime in organization org-AbC123xyz789 on requests per min (RPM): Limit 100. Project proj_Q1w2E3r4T5y6.';
    expect(withoutAccountIds(msg)).toBe('Rate limit reached for gpt-realtime in organization org-… on requests per min (RPM): Limit 100. Project proj_….');
    expect(withoutAccountIds(JSON.stringify({ error: { message: 'org-abcdefgh', code: 'rate_limit_exceeded' } }))).toBe('{"error":{"message":"org-…","code":"rate_limit_exceeded"}}');
    for (const kept of ['an org-chart', 'proj_x', 'gpt-realtime', 'rtc_abc123456', 'forge-ahead123']) expect(withoutAccountIds(kept)).toBe(kept);
  });
});
