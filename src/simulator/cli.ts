/**
 * Runs the Realtime simulator alone:
 *   tsx src/simulator/cli.ts [--port 9000] [--host 127.0.0.1] [--realtime] [--api-key KEY]
 */
import { parseArgs } from 'node:util';
import { startSimulator } from './index.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9000' },
    host: { type: 'string', default: '127.0.0.1' },
    realtime: { type: 'boolean', default: false },
    'api-key': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write('Usage: tsx src/simulator/cli.ts [--port 9000] [--host 127.0.0.1] [--realtime] [--api-key KEY]\n');
  process.exit(0);
}

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`invalid --port ${values.port}\n`);
  process.exit(2);
}

const sim = await startSimulator({
  host: values.host,
  port,
  apiKey: values['api-key'] ?? null,
  timing: values.realtime ? { realtime: true, firstAudioDelayMs: 250 } : {},
  // A long-running process: no history of events and closed connections (it would grow with every session).
  keepHistory: false,
});
sim.onConnection((c) => {
  process.stdout.write(`connection ${c.id} ${c.url}\n`);
  void c.closed.then(({ code }) => process.stdout.write(`closed ${c.id} ${code}\n`));
});
process.stdout.write(`Realtime simulator listening on ${sim.url}?model=gpt-realtime${values.realtime ? ' (realtime pacing)' : ''}\n`);

const stop = (): void => {
  void sim.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
