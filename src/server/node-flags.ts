/**
 * Node/V8 flags the relay runs with. A flag that sizes a process's own heap cannot be set once the
 * process runs, so every launcher passes them: the image's ENTRYPOINT, `npm start`, the relay
 * worker processes (`server.workers`) and the bench (test/production/image.test.ts keeps the first
 * two in step with this list).
 *
 * `--max-semi-space-size=32`: lets the young generation grow to 2 × 32 MiB (Node 20's default is
 * 2 × 16). With the default, under 300 paced sessions a scavenge ran every ~120 ms and about 1 MB
 * outlived two of them each time (promoted). Interleaved bench runs at 300 paced sessions, governed:
 * u→c p99 ≈ 90 ms in 4 of 4 runs without it, 11–27 ms in 5 of 6 with it; RSS at start unchanged
 * (the space grows only under load).
 *
 * `--initial-old-space-size=128`: starts the old generation's limit at 128 MiB. The governed relay
 * was bimodal per process: either it settled with few GCs, or V8 kept the old generation's limit a
 * few MiB above its live size and ran a mark-compact every few hundred milliseconds for the whole
 * run (30–46 GCs per 8 s window instead of 10; p99 50–100 ms instead of 6–12 ms; ~10 % more CPU).
 * Interleaved at 250 paced sessions: 3 of 6 runs in the slow mode without this flag, 0 of 6 with it
 * (p99 5.8–12.3 ms, 10 GCs per window in every run). Cost: up to ~128 MiB of old space before the
 * first mark-compact under load (RSS at 250 sessions ~213 MiB against ~192); nothing at start.
 *
 * `--v8-pool-size=1`: one V8 platform thread (concurrent marking and sweeping, background
 * compilation) instead of Node's four. A relay process is meant to own one core (`server.workers`
 * runs one process per core), so three more helper threads compete with its event loop for that
 * core and each brings a stack and a malloc arena. CLI started alone, 45 s after start, 3 runs
 * each: RSS 67.5–73.2 MiB against 74.8–76.3. Governed at 500 paced sessions, alternating runs:
 * 39.5–42.0 µs per event against 41.1–43.7, longest GC pause 10.7–13.4 ms against 11.5–13.8.
 */
export const RELAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32', '--initial-old-space-size=128', '--v8-pool-size=1'];
