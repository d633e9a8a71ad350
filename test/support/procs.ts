import { readdirSync, readFileSync } from 'node:fs';

/**
 * Child processes of `parent` (from /proc), with their command line: tests find the processes the
 * proxy started (relay workers, esbuild's compile service) and check that they went away.
 */
export function childProcesses(parent = process.pid): { readonly pid: number; readonly cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) found.push({ pid: Number(entry), cmdline: readFileSync(`/proc/${entry}/cmdline`, 'utf8') });
    } catch {
      // Exited while listed.
    }
  }
  return found;
}
