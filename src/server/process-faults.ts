import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';

/**
 * Last-resort handlers for faults that reach the event loop of a relay process (the CLI's and each
 * worker's). The relay's own callbacks catch what they run; what remains is code the proxy runs
 * but did not write: custom guardrails, whose API promises that a guardrail that throws, rejects
 * or times out never takes the proxy down, while one process carries hundreds of live calls.
 *
 * - An unhandled rejection (a Promise a guardrail left rejected, say) is logged and the process
 *   goes on: nothing was unwound by it. (Node 20 ends the process by default.)
 * - An uncaught exception is logged; the process goes on only when the stack shows it was thrown
 *   by custom guardrail code with no frame of the proxy's own code on it (a guardrail's timer or
 *   listener, which Node calls directly): no proxy state was left half-updated. Anything else
 *   (the proxy's own code, a dependency's callback, a value without a stack) ends the process
 *   with exit code 1 after one fatal log line, as before; the supervisor starts a new worker.
 */

/** This package's own code, compiled (`dist/`) or as source (`src/`, in a checkout or via source maps). */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OWN_ROOTS = [resolve(PACKAGE_ROOT, 'dist') + '/', resolve(PACKAGE_ROOT, 'src') + '/'];

/** Directories custom guardrail modules were loaded from (their relative imports live there too). */
const customRoots = new Set<string>();

/** A custom guardrail module was loaded from `absPath`: frames under its directory are custom code. */
export function noteCustomModule(absPath: string): void {
  customRoots.add(dirname(absPath) + '/');
}

/**
 * The file of one stack line (`    at fn (file:line:col)` or `    at file:line:col`), as a path or a
 * URL (`:line:col` stays on it: files are matched by prefix). File URLs become paths (percent-decoded,
 * a reload's `?v=` dropped), as the roots are.
 */
function frameLocation(line: string): string | null {
  const at = line.trimStart();
  if (!at.startsWith('at ')) return null;
  const inParens = /\(([^()]*)\)$/.exec(at);
  const loc = inParens ? inParens[1]! : at.slice(3);
  if (!loc.startsWith('file:')) return loc;
  try {
    return fileURLToPath(loc);
  } catch {
    return loc;
  }
}

export type FaultOrigin = 'custom' | 'proxy' | 'unknown';

/**
 * Who threw `err`: `custom` when its stack has a frame of a custom guardrail module (or a module
 * compiled from one, a data: URL) and none of the proxy's own code; `proxy` when any frame is the
 * proxy's; `unknown` otherwise (a dependency, Node, a thrown value without a stack).
 */
export function faultOrigin(err: unknown, roots: { own: readonly string[]; custom: Iterable<string> } = { own: OWN_ROOTS, custom: customRoots }): FaultOrigin {
  const stack = err instanceof Error && typeof err.stack === 'string' ? err.stack : null;
  if (stack === null) return 'unknown';
  const custom = [...roots.custom];
  let sawCustom = false;
  for (const line of stack.split('\n')) {
    const loc = frameLocation(line);
    if (loc === null) continue;
    if (roots.own.some((r) => loc.startsWith(r))) return 'proxy';
    if (loc.startsWith('data:text/javascript') || custom.some((r) => loc.startsWith(r))) sawCustom = true;
  }
  return sawCustom ? 'custom' : 'unknown';
}

/** Enough of a thrown value to log (no payloads: a message and a stack). */
function described(value: unknown): { type: string; message: string; stack?: string } {
  if (value instanceof Error) return { type: value.name, message: value.message.slice(0, 500), ...(value.stack ? { stack: value.stack.slice(0, 4000) } : {}) };
  return { type: typeof value, message: String(value).slice(0, 500) };
}

/** The two handlers, apart from installing them (tests call them directly). */
export function faultHandlers(
  log: Logger,
  exit: (code: number) => void,
  roots?: { own: readonly string[]; custom: Iterable<string> },
): { unhandledRejection(reason: unknown): void; uncaughtException(err: unknown): void } {
  return {
    unhandledRejection(reason) {
      log.error({ event: 'unhandled_rejection', origin: faultOrigin(reason, roots), fault: described(reason) }, 'unhandled promise rejection: logged, the proxy goes on');
    },
    uncaughtException(err) {
      const origin = faultOrigin(err, roots);
      if (origin === 'custom') {
        log.error({ event: 'uncaught_exception', origin, fault: described(err) }, 'custom guardrail code threw outside any call of the proxy: logged, the proxy goes on');
        return;
      }
      log.fatal({ event: 'uncaught_exception', origin, fault: described(err) }, 'uncaught exception: the process exits');
      exit(1);
    },
  };
}

let installed = false;

/** Installs the handlers once per process (the CLI's `run` and each relay worker). */
export function installProcessFaultHandlers(log: Logger): void {
  if (installed) return;
  installed = true;
  const h = faultHandlers(log, (code) => process.exit(code));
  process.on('unhandledRejection', h.unhandledRejection);
  process.on('uncaughtException', h.uncaughtException);
}
