import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The guardrail filter keeps the start and end of recent client items as match context. V8 keeps
 * a slice of a string as a view of the whole string, so until 2026-12-05 (fourth review) a session
 * kept its last 128 long client texts alive whole. Measured in a child process started with
 * `--expose-gc` (the heap after a full collection; no timing involved).
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSX = join(ROOT, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');

const SCRIPT = (root: string) => `
import { GuardrailFilter } from ${JSON.stringify(join(root, 'src/policies/guardrails.ts'))};
import { FakeSession } from ${JSON.stringify(join(root, 'test/support/fake-session.ts'))};
import { entryOf, policyFrom, wire } from ${JSON.stringify(join(root, 'test/policies/support.ts'))};

const session = new FakeSession();
const filter = new GuardrailFilter(session, entryOf(await policyFrom('guardrails:\\n  rules: [{ id: inj, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }]')));
// The heap before the items (code, policy, filter): the bound is on what the items leave, not on the
// code loaded, which grows with the product (until 2026-12-07 the test bounded the whole heap at 20 MB
// and failed at 21.0 MB as code was added, with the items' share unchanged).
globalThis.gc();
const before = process.memoryUsage().heapUsed;
const ITEMS = 40;
const CHARS = 900_000;
for (let i = 0; i < ITEMS; i++) {
  const text = \`item \${i} \` + 'word '.repeat(CHARS / 5);
  // Longer than one window: the verdict comes across macrotasks (a Promise).
  const v = await session.fromClient(filter, wire({ type: 'conversation.item.create', event_id: \`evt_\${i}\`, item: { id: \`item_\${i}\`, type: 'message', role: 'user', content: [{ type: 'input_text', text }] } }));
  if (v.kind !== 'continue') throw new Error('item refused: ' + v.kind);
  session.fromServer(filter, wire({ type: 'conversation.item.added', event_id: \`ev_\${i}\`, previous_item_id: null, item: { id: \`item_\${i}\`, type: 'message', object: 'realtime.item', role: 'user', status: 'completed', content: [{ type: 'input_text', text }] } }));
}
globalThis.gc();
process.stdout.write(JSON.stringify({ before, heapUsed: process.memoryUsage().heapUsed, kept: filter !== null }));
`;

describe('guardrail context memory', () => {
  it('40 client items of 900,000 characters each: the context keeps their ends, not the texts (under 5 MB of heap growth, 36 MB of text sent)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rp-ctx-mem-'));
    try {
      const file = join(dir, 'measure.mts');
      writeFileSync(file, SCRIPT(ROOT));
      const out = execFileSync(process.execPath, ['--expose-gc', '--import', TSX, file], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
      const { before, heapUsed, kept } = JSON.parse(out) as { before: number; heapUsed: number; kept: boolean };
      expect(kept).toBe(true);
      // 40 texts kept whole would be 36 MB or more (one, 0.9 MB); measured 2.3–2.5 MB on 2026-12-07 (the
      // windows, and what the first scans compile and cache).
      expect(heapUsed - before).toBeLessThan(5 * 1024 * 1024);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
