import { createServer, type AddressInfo } from 'node:net';
import { serveChild } from '../lib/ipc.js';

/**
 * Child process: the Portkey OSS gateway (`@portkey-ai/gateway`, its Node build) relaying the
 * realtime route to the fake upstream. The bench's load generator sends
 * `x-portkey-provider: azure-ai` and `x-portkey-azure-foundry-url: ws://127.0.0.1:<upstream>/v1`
 * (the gateway dials `<foundry url>/realtime?…`). argv[2]: upstream port (used by the generator's
 * headers, not here).
 */

/** A free loopback port: the gateway takes its port from `--port=` at import time. */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

const port = await freePort();
process.argv.push(`--port=${port}`);
// The gateway clears the console and draws a spinner on stdout: harmless in the child log.
// @ts-expect-error: the package ships a bundled script without type declarations.
await import('@portkey-ai/gateway/build/start-server.js');

serveChild({ port }, {});
