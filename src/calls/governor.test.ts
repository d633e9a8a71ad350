import { describe, expect, it } from 'vitest';
import { sidebandEndLeavesCall } from './governor.js';

describe('which sideband ends leave a call to hang up', () => {
  it('only the upstream closing normally (1000) means the call itself ended', () => {
    expect(sidebandEndLeavesCall('upstream', 1000)).toBe(false);
    expect(sidebandEndLeavesCall('upstream', 1006)).toBe(true);
    expect(sidebandEndLeavesCall('upstream', 1011)).toBe(true);
    expect(sidebandEndLeavesCall('upstream', null)).toBe(true);
    expect(sidebandEndLeavesCall('proxy', 1000)).toBe(true);
    expect(sidebandEndLeavesCall('proxy', null)).toBe(true);
    expect(sidebandEndLeavesCall(null, null)).toBe(true);
  });
});
