import { describe, expect, it } from 'vitest';
import { applySessionUpdate } from './session-update.js';

describe('applySessionUpdate', () => {
  it('members replaced, audio input and output merged member by member', () => {
    expect(
      applySessionUpdate(
        { type: 'realtime', instructions: 'a', tools: [], audio: { input: { transcription: null, turn_detection: { type: 'server_vad' } }, output: { voice: 'alloy', speed: 1 } } },
        { type: 'realtime', instructions: 'b', audio: { input: { transcription: { model: 'm' } }, output: { voice: 'marin' } } },
      ),
    ).toEqual({ type: 'realtime', instructions: 'b', tools: [], audio: { input: { transcription: { model: 'm' }, turn_detection: { type: 'server_vad' } }, output: { voice: 'marin', speed: 1 } } });
    expect(applySessionUpdate({ type: 'realtime' }, { type: 'realtime', audio: { output: { voice: 'v' } } })).toEqual({ type: 'realtime', audio: { output: { voice: 'v' } } });
    expect(applySessionUpdate({ type: 'realtime', x: 1 }, { type: 'realtime', y: 2 })).toEqual({ type: 'realtime', x: 1, y: 2 });
    // A client's "__proto__" member is a member, never the merged object's prototype.
    const hostile = JSON.parse('{"type":"realtime","__proto__":{"audio":{"input":{"turn_detection":{"create_response":false}}},"instructions":"x"}}') as Record<string, unknown>;
    const merged = applySessionUpdate({ type: 'realtime' }, hostile);
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(merged['instructions']).toBeUndefined();
    expect(merged['audio']).toBeUndefined();
    expect(Object.keys(merged)).toEqual(['type', '__proto__']);
  });

  it('an audio member that is not an object changes nothing in audio (only input and output objects are merged)', () => {
    const session = { type: 'realtime', audio: { output: { voice: 'cedar' } } };
    expect(applySessionUpdate(session, { type: 'realtime', audio: null })).toEqual(session);
    expect(applySessionUpdate(session, { type: 'realtime', audio: 'x', instructions: 'i' })).toEqual({ ...session, instructions: 'i' });
    expect(applySessionUpdate(session, { type: 'realtime', audio: { input: 'x', output: { speed: 1 } } })).toEqual({ type: 'realtime', audio: { output: { voice: 'cedar', speed: 1 } } });
  });
});
