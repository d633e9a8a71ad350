import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { usableCores } from './compile.js';
import { tempDir } from '../../test/support/temp-dir.js';

function cpuMax(text: string): string {
  const file = join(tempDir('rp-cgroup-'), 'cpu.max');
  writeFileSync(file, text);
  return file;
}

describe('usableCores (server.workers: auto)', () => {
  it('a cgroup CPU quota lowers the count (rounded up), never below 1 nor above the CPUs', () => {
    const cpus = availableParallelism();
    expect(usableCores(cpuMax('150000 100000\n'))).toBe(Math.min(cpus, 2));
    expect(usableCores(cpuMax('10000 100000\n'))).toBe(1);
    expect(usableCores(cpuMax(`${(cpus + 8) * 100000} 100000\n`))).toBe(cpus);
  });

  it('no quota ("max"), no file or a garbled file: the CPU count', () => {
    const cpus = availableParallelism();
    expect(usableCores(cpuMax('max 100000\n'))).toBe(cpus);
    expect(usableCores('/nonexistent/cpu.max')).toBe(cpus);
    expect(usableCores(cpuMax('garbage'))).toBe(cpus);
  });
});
