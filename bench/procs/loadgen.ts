import { serveChild } from '../lib/ipc.js';
import { LoadGenerator, type LoadTarget, type PacedOptions, type ThroughputOptions } from '../lib/load.js';

/** Child process: the load generator. argv[2]: LoadTarget as JSON. */
const target = JSON.parse(process.argv[2] ?? '{}') as LoadTarget;
const gen = new LoadGenerator(target);

interface OpenArgs {
  readonly n: number;
  readonly perSecond?: number;
  readonly timeoutMs?: number;
  /** Handshakes pending at once (default: unbounded). */
  readonly maxInFlight?: number;
}

serveChild(null, {
  open: (a) => {
    const { n, perSecond, timeoutMs, maxInFlight } = a as OpenArgs;
    return gen.open(n, perSecond, timeoutMs, maxInFlight);
  },
  paced: (o) => {
    gen.startPaced((o ?? {}) as PacedOptions);
    return null;
  },
  throughput: (o) => {
    gen.startThroughput((o ?? {}) as ThroughputOptions);
    return null;
  },
  stopTraffic: () => gen.stopTraffic(),
  closeAll: () => gen.closeAll(),
  record: (on) => {
    if (on === true) gen.latency.reset();
    gen.recording = on === true;
    return null;
  },
  reset: () => {
    gen.resetStats();
    return null;
  },
  counters: () => ({ ...gen.stats, sessions: gen.sessions }),
  latency: () => gen.latency.toJSON(),
});
