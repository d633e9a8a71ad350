import { describe, expect, it } from 'vitest';
import { ProxyError } from './errors.js';

// Clients and operators compare these bytes (logs, snapshots): the key order is part of the shape.
describe('ProxyError wire shapes', () => {
  it('an error event: type, code, message, param, the client event_id, then details', () => {
    const e = new ProxyError('budget_exceeded', { message: 'over', param: 'response', eventId: 'evt_c1', details: { tenant: 'acme' } });
    expect(JSON.stringify(e.toEvent('event_p1'))).toBe(
      '{"type":"error","event_id":"event_p1","error":{"type":"rate_limit_error","code":"budget_exceeded","message":"over","param":"response","event_id":"evt_c1","details":{"tenant":"acme"}}}',
    );
    expect(Object.keys(new ProxyError('budget_exceeded').toEvent('e').error)).toEqual(['type', 'code', 'message', 'param', 'event_id']);
  });

  it('an HTTP body: the same fields without event_id', () => {
    const e = new ProxyError('budget_exceeded', { message: 'over', eventId: 'evt_c1', details: { tenant: 'acme' } });
    expect(JSON.stringify(e.toHttpBody())).toBe('{"error":{"type":"rate_limit_error","code":"budget_exceeded","message":"over","param":null,"details":{"tenant":"acme"}}}');
    expect(new ProxyError('budget_exceeded').toHttpBody().error).not.toHaveProperty('details');
  });
});
