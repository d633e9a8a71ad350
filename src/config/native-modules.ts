import type { Config } from './schema.js';

/**
 * The native modules `run` loads, loaded now, so that `check-config` refuses a runtime they were not
 * built for (a Node ABI without a uWebSockets.js binary, a better-sqlite3 built for another Node)
 * instead of `run` failing after the check passed. Every module is tried; the error names each that
 * did not load. Returns what was loaded, for the check's line.
 */
export async function loadNativeModules(config: Config): Promise<string[]> {
  const loaded: string[] = [];
  const problems: string[] = [];
  const attempt = async (load: () => Promise<string>): Promise<void> => {
    try {
      loaded.push(await load());
    } catch (err) {
      problems.push((err as Error).message);
    }
  };
  await attempt(async () => (await import('../server/uws.js')).uwsBinary);
  if (usesSqlite(config)) await attempt(openSqlite);
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return loaded;
}

/** The SQLite ledger backs metering and, with the same settings, the calls store. */
function usesSqlite(config: Config): boolean {
  return config.metering.ledger.kind === 'sqlite' && (config.metering.enabled || config.calls.enabled);
}

async function openSqlite(): Promise<string> {
  const { default: Database } = await import('better-sqlite3');
  try {
    // The binding loads with the first database, not with the import.
    new Database(':memory:').close();
  } catch (err) {
    // Node's message runs over several lines and ends in advice this message gives itself.
    const why = (err as Error).message.replace(/\s+/g, ' ').replace(/\.? Please try.*$/, '');
    throw new Error(
      `better-sqlite3's native module did not load on Node ${process.version} (${why}). ` +
        'The SQLite ledger (metering.ledger.kind: sqlite) needs a build for this runtime: `npm rebuild better-sqlite3`, or use the Redis ledger.',
    );
  }
  return 'better-sqlite3 native';
}
