/**
 * Node/V8 flags the relay runs with. A flag that sizes a process's own heap cannot be set once the
 * process runs, so every launcher passes them: the image's ENTRYPOINT, `npm start`, the relay
 * worker processes (`server.workers`) and the bench (test/production/image.test.ts keeps the first
 * two in step with this list).
 *
 * `--max-semi-space-size=32`: lets the young generation grow to 2 × 32 MiB (Node 20's default is
 * 2 × 16). With the default, under 300 paced sessions a scavenge ran every ~120 ms and about 1 MB
 * outlived two of them each time (promoted), so a mark-compact followed every few hundred ms: those
 * pauses and their incremental marking steps made the relay's latency tail. Measured with the bench
 * (interleaved runs, 300 paced sessions, governed): u→c p99 ≈ 90 ms in 4 of 4 runs without it,
 * 11–27 ms in 5 of 6 with it, CPU per event about 10 % lower, RSS at start unchanged (the space grows
 * only under load). At 100–250 sessions both settings are bimodal (README "Benchmarks": a run either
 * settles with few GCs or keeps promoting) and this flag made no measurable difference there.
 */
export const RELAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
