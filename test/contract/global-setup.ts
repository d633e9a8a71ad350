/**
 * vitest globalSetup: gives every test worker a directory for the simulator contract results
 * (test/support/setup.ts) and, after the run, lists every event the simulator sent that did not
 * conform to the SDK's types across all files (each file already failed on its own).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface FileResult {
  readonly file: string;
  readonly counts: Record<string, number>;
  readonly violations: { type: string; problem: string; event: unknown }[];
}

export function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'rp-sim-contract-'));
  process.env['RTPROXY_SIM_CONTRACT_DIR'] = dir;
  return () => {
    const results: FileResult[] = [];
    for (const name of readdirSync(dir)) {
      for (const line of readFileSync(join(dir, name), 'utf8').split('\n')) if (line) results.push(JSON.parse(line) as FileResult);
    }
    rmSync(dir, { recursive: true, force: true });
    const problems = results.flatMap((r) => r.violations.map((v) => `${r.file}: ${v.type}: ${v.problem}\n  ${JSON.stringify(v.event).slice(0, 400)}`));
    if (problems.length > 0) {
      throw new Error(`The simulator sent ${problems.length} event(s) that do not match the openai SDK's types:\n${[...new Set(problems)].slice(0, 50).join('\n')}`);
    }
  };
}
