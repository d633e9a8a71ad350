import { describe, expect, it } from 'vitest';
import { requestSource, sourceKey } from '../../src/server/http.js';

/**
 * Whom an unauthenticated body counts against (server.maxUnauthenticatedBodiesPerSource): one
 * sender must not get a fresh share per address when it has many (an IPv6 host gets a /64), and a
 * client must not pick its own source by writing X-Forwarded-For.
 */
describe('sourceKey', () => {
  it('keeps an IPv4 address and unwraps an IPv4-mapped IPv6 one (uWS writes every address in full)', () => {
    expect(sourceKey('127.0.0.2')).toBe('127.0.0.2');
    expect(sourceKey(' 203.0.113.7 ')).toBe('203.0.113.7');
    expect(sourceKey('0000:0000:0000:0000:0000:ffff:7f00:0002')).toBe('127.0.0.2');
    expect(sourceKey('::ffff:198.51.100.255')).toBe('198.51.100.255');
    expect(sourceKey('::ffff:c633:64ff')).toBe('198.51.100.255');
    expect(sourceKey('0:0::ffff:1.2.3.4')).toBe('1.2.3.4');
  });

  it('counts an IPv6 address by its /64, however it is written', () => {
    const key = '2001:db8:a:b::/64';
    expect(sourceKey('2001:0db8:000a:000b:0000:0000:0000:0001')).toBe(key);
    expect(sourceKey('2001:db8:a:b::1')).toBe(key);
    expect(sourceKey('2001:db8:a:b:ffff:1:2:3')).toBe(key);
    expect(sourceKey('2001:DB8:A:B::9%eth0')).toBe(key);
    expect(sourceKey('2001:db8:a:c::1')).toBe('2001:db8:a:c::/64');
    expect(sourceKey('0000:0000:0000:0000:0000:0000:0000:0001')).toBe('0:0:0:0::/64');
    expect(sourceKey('::')).toBe('0:0:0:0::/64');
    expect(sourceKey('1::')).toBe('1:0:0:0::/64');
    expect(sourceKey('1:2:3:4:5:6:1.2.3.4')).toBe('1:2:3:4::/64');
    expect(sourceKey('2001:db8::a:b:c:d:e')).toBe('2001:db8:0:a::/64');
    // Not mapped: only ::ffff:0:0/96 is IPv4.
    expect(sourceKey('::fffe:c633:64ff')).toBe('0:0:0:0::/64');
    expect(sourceKey('0:0:0:0:1:ffff:c633:64ff')).toBe('0:0:0:0::/64');
  });

  it('answers null for what is not an address', () => {
    for (const junk of ['', 'unknown', '1.2.3', '1.2.3.4.5', '256.1.1.1', ':::', '2001:db8::1::2', 'g::1', '1.2.3.4:80', '[::1]']) expect(sourceKey(junk)).toBeNull();
  });
});

describe('requestSource', () => {
  const xff = (v: string) => new Map([['x-forwarded-for', v]]);

  it('ignores X-Forwarded-For unless trusted proxies are configured', () => {
    expect(requestSource('127.0.0.2', xff('198.51.100.1'), 0)).toBe('127.0.0.2');
    expect(requestSource('2001:db8::5', new Map(), 0)).toBe('2001:db8:0:0::/64');
  });

  it('takes the Nth entry from the right with N trusted proxies: what the client wrote left of it does not count', () => {
    expect(requestSource('10.0.0.1', xff('6.6.6.6, 203.0.113.7'), 1)).toBe('203.0.113.7');
    expect(requestSource('10.0.0.1', xff('6.6.6.6,203.0.113.7, 10.0.0.9'), 2)).toBe('203.0.113.7');
    expect(requestSource('10.0.0.1', xff('2001:db8:1:2::77'), 1)).toBe('2001:db8:1:2::/64');
  });

  it('falls back to the connection when the header is missing, too short, or that entry is not an address', () => {
    expect(requestSource('10.0.0.1', new Map(), 1)).toBe('10.0.0.1');
    expect(requestSource('10.0.0.1', xff('203.0.113.7'), 2)).toBe('10.0.0.1');
    expect(requestSource('10.0.0.1', xff('203.0.113.7, garbage'), 1)).toBe('10.0.0.1');
    expect(requestSource('10.0.0.1', xff(''), 1)).toBe('10.0.0.1');
  });

  it('keeps a connection address it cannot parse, bounded', () => {
    expect(requestSource('unknown', new Map(), 0)).toBe('unknown');
    expect(requestSource('x'.repeat(500), new Map(), 0)).toBe('x'.repeat(64));
  });
});
