import { describe, expect, it } from 'vitest';
import { startSimulator } from '../../src/simulator/index.js';
import { startTestProxy } from '../support/harness.js';

describe('Azure OpenAI upstream', () => {
  it('dials the GA URL /openai/v1/realtime?model=<deployment> with an api-key header and relays a turn', async () => {
    const sim = await startSimulator({ apiKey: 'azure-key-123' });
    const tp = await startTestProxy({
      config: {
        upstream: {
          provider: 'azure',
          apiKey: 'azure-key-123',
          azure: { endpoint: `http://127.0.0.1:${sim.port}`, deployment: 'my-realtime', model: 'gpt-realtime' },
        },
      },
    });
    // The client names the model; the deployment and API version are the proxy's.
    const c = await tp.client({ query: 'model=gpt-realtime&deployment=other&api-version=2024-10-01-preview' });
    await c.next('session.created');
    c.say('say: hello azure');
    const done = await c.next('response.done');
    expect((done['response'] as { status: string }).status).toBe('completed');
    const conn = sim.connections[0]!;
    expect(conn.url).toBe('/openai/v1/realtime?model=my-realtime');
    expect(conn.headers['api-key']).toBe('azure-key-123');
    expect(conn.headers['authorization']).toBeUndefined();
    c.close();
    await tp.stop();
    await sim.close();
  });

  it('dials the preview URL only when azure.apiVersion is configured', async () => {
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
    const conn = sim.connections[0]!;
    expect(conn.url).toBe('/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-realtime');
    c.close();
    await tp.stop();
    await sim.close();
  });
});
