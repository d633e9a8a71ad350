import { createServer } from 'node:net';

/**
 * A loopback port nothing listens on: bound (port 0, the kernel picks a free one) and closed again.
 * For "unreachable" URLs: a fixed port in the 4xxxx range lies in the ephemeral range, where another
 * test's client socket or server may hold it in a parallel run.
 */
export function closedPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
