#!/usr/bin/env node
// Runs the compiled proxy (dist/), as installed packages and the image do. In a source checkout
// (src/ present, tsx installed) it runs the TypeScript sources instead, so that they are never stale.
import { existsSync } from 'node:fs';

const src = new URL('../src/cli.ts', import.meta.url);
const dist = new URL('../dist/cli.js', import.meta.url);

async function sourceCheckout() {
  if (!existsSync(src) || process.env.REALTIME_PROXY_USE_DIST === '1') return false;
  try {
    const { register } = await import('tsx/esm/api');
    register();
    return true;
  } catch {
    return false;
  }
}

if (await sourceCheckout()) {
  await import(src.href);
} else if (existsSync(dist)) {
  await import(dist.href);
} else {
  process.stderr.write('realtime-proxy: dist/ is missing; run `npm run build` first\n');
  process.exit(1);
}
