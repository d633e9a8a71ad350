/**
 * Node/V8 flags the relay runs with. A flag that sizes a process's own heap cannot be set once the
 * process runs, so every launcher passes them: the image's ENTRYPOINT, `npm start`, the relay
 * worker processes (`server.workers`) and the bench (test/production/image.test.ts keeps the first
 * two in step with this list).
 *
 * `--max-semi-space-size=32`: lets the young generation grow to 2 × 32 MiB (Node 20's default is
 * 2 × 16). Under paced load a session's turn state lives about a second; with the default size it
 * outlives two scavenges, is promoted, and a mark-compact follows every few hundred milliseconds:
 * those pauses and their incremental marking steps were the relay's latency tail. Measured
 * (bench/results/2026-12-02-*-epyc.md, 300 paced sessions, governed): u→c p99 ≈ 90 ms → 13–27 ms,
 * CPU per event about 10 % lower, RSS at start unchanged (the space grows only under load).
 */
export const RELAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
