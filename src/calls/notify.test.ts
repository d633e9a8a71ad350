import { describe, expect, it } from 'vitest';
import { capturedLog } from '../../test/support/captured-log.js';
import { CallNotifier, type NotifyOutcome } from './notify.js';

describe('CallNotifier', () => {
  it('drops an announcement after close, logged (origin only) and counted: nothing is lost silently at shutdown', async () => {
    const { log, lines } = capturedLog('debug');
    const outcomes: [string, NotifyOutcome][] = [];
    const notifier = new CallNotifier({ log, bounds: { timeoutMs: 1000, attempts: 1, retryPauseMs: 10, maxPending: 10 }, tenantShare: 1, wall: () => Date.now(), outcome: (t, o) => outcomes.push([t, o]) });
    notifier.close();
    const target = { url: 'https://app.example.com/hooks/T0/B0/secret-token?sig=x', secret: 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=', allowHttp: false };
    const settled: string[] = [];
    expect(notifier.announce(target, 'acme', 'rtc_1', { call_id: 'rtc_1' }, (outcome) => settled.push(outcome))).toBe('dropped');
    expect(notifier.pending).toBe(0);
    expect(outcomes).toEqual([['acme', 'dropped']]);
    // The call's caller hears of it too (its responses stop waiting for the app: ResponsesHold).
    expect(settled).toEqual(['dropped']);
    await new Promise((r) => setImmediate(r));
    const line = lines.find((l) => l['event'] === 'sip_notify_dropped')!;
    expect(line).toMatchObject({ url: 'https://app.example.com', reason: 'shutting_down', call: 'rtc_1', tenant: 'acme' });
    expect(JSON.stringify(lines)).not.toContain('secret-token');
  });
});
