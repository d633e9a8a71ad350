const mods = process.argv.slice(2);
for (const m of mods) await import(m);
globalThis.gc(); await new Promise(r=>setTimeout(r,100)); globalThis.gc();
const u = process.memoryUsage();
console.log(mods.join(' ')||'(bare)', (u.rss/1048576).toFixed(1), 'heapUsed', (u.heapUsed/1048576).toFixed(1));
