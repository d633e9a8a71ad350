import { describe, expect, it } from 'vitest';
import { startSimulator } from '../../src/simulator/index.js';
import { startTestProxy } from '../support/harness.js';

describe('Azure OpenAI upstream', () => {
  it('dials the deployment URL with an api-key header and relays a turn', async () => {
    const sim = await startSimulator({ apiKey: 'azure-key-123' });
    const tp = await startTestProxy({
      config: {
        upstream: {
          provider: 'azure',
          apiKey: 'azure-key-123',
          azure: { endpoint: `http://127.0.0.1:${sim.port}`, deployment: 'gpt-realtime', apiVersion: '2025-04-01-preview' },
        },
      },
    });
    const c = await tp.client();
    await c.next('session.created');
    c.say('say: hello azure');
    const done = await c.next('response.done');
    expect((done['response'] as { status: string }).status).toBe('completed');
    const conn = sim.connections[0]!;
    expect(conn.url).toMatch(/^\/openai\/realtime\?/);
    expect(conn.url).toContain('deployment=gpt-realtime');
    expect(conn.url).toContain('api-version=2025-04-01-preview');
    expect(conn.url).not.toContain('model=');
    expect(conn.headers['api-key']).toBe('azure-key-123');
    expect(conn.headers['authorization']).toBeUndefined();
    c.close();
    await tp.stop();
    await sim.close();
  });
});
