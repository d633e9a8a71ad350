/** Deterministic integers in [0, n): the same sequence on every run for the same seed. */
export function seeded(seed: number): (n: number) => number {
  return (n) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
}
