/**
 * Node/V8 flags the relay runs with. A flag that sizes a process's own heap cannot be set once the
 * process runs, so every launcher passes them: the image's ENTRYPOINT, `npm start`, the relay
 * worker processes (`server.workers`) and the bench (test/production/image.test.ts keeps the first
 * two in step with this list).
 *
 * `--max-semi-space-size=32`: lets the young generation grow to 2 × 32 MiB (Node 20's default is
 * 2 × 16). With the default, under 300 paced sessions a scavenge ran every ~120 ms and about 1 MB
 * outlived two of them each time (promoted), so a mark-compact followed every few hundred ms: those
 * pauses and their incremental marking steps were the relay's latency tail. A larger young
 * generation gives short-lived state (a turn lasts about a second) time to die young. Measured with
 * the bench (README "Benchmarks"): u→c p99 ≈ 90 ms → 11–27 ms at 300 paced sessions in 5 of 6 runs,
 * CPU per event about 10 % lower, RSS at start unchanged (the space grows only under load).
 */
export const RELAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
