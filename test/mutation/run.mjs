#!/usr/bin/env node
// `npm run test:mutation [module …]`: Stryker on each module of test/mutation/modules.json (or the
// ones named), one at a time, with only that module's tests. Writes the per-module scores to
// test/mutation/last-report.json and test/mutation/last-report.md (the full JSON reports stay in
// reports/mutation/, which is not committed).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const modules = JSON.parse(readFileSync(new URL('./modules.json', import.meta.url), 'utf8'));
// --from-reports: recompute the summary from the last JSON reports (after editing equivalent.json).
const fromReports = process.argv.includes('--from-reports');
// --summary: rewrite last-report.md from last-report.json alone (e.g. after merging two branches' rows).
const summaryOnly = process.argv.includes('--summary');
const wanted = process.argv.slice(2).filter((a) => a !== '--from-reports' && a !== '--summary');
const selected = summaryOnly ? [] : wanted.length > 0 ? wanted : Object.keys(modules);
for (const m of selected) if (!modules[m]) throw new Error(`${m} is not in test/mutation/modules.json`);

/** Documented equivalent mutants (they cannot change behaviour): excluded from the adjusted score. */
const equivalent = JSON.parse(readFileSync(new URL('./equivalent.json', import.meta.url), 'utf8'));
const reportPath = new URL('./last-report.json', import.meta.url);
const previous = existsSync(reportPath) ? JSON.parse(readFileSync(reportPath, 'utf8')) : { modules: {} };

for (const mutate of selected) {
  const tests = modules[mutate].filter((t) => existsSync(t));
  const started = Date.now();
  if (!fromReports) {
    const r = spawnSync('npx', ['stryker', 'run', 'stryker.config.mjs'], {
      stdio: 'inherit',
      env: { ...process.env, STRYKER_MUTATE: mutate, STRYKER_TESTS: tests.join(',') },
    });
    if (r.status !== 0) throw new Error(`stryker failed on ${mutate} (exit ${r.status})`);
  }
  const name = mutate.replace(/^src\//, '').replace(/\.ts$/, '').replaceAll('/', '-');
  const report = JSON.parse(readFileSync(`reports/mutation/${name}.json`, 'utf8'));
  const counts = {};
  const survivors = [];
  const known = equivalent[mutate] ?? [];
  const used = new Set();
  let equivalents = 0;
  for (const file of Object.values(report.files)) {
    // The source as it was mutated (the report keeps it): line numbers refer to it.
    const sourceLines = file.source.split('\n');
    for (const mutant of file.mutants) {
      counts[mutant.status] = (counts[mutant.status] ?? 0) + 1;
      if (mutant.status !== 'Survived' && mutant.status !== 'NoCoverage') continue;
      const line = (sourceLines[mutant.location.start.line - 1] ?? '').trim();
      const same = (e) => e.source === line && e.mutator === mutant.mutatorName && e.replacement === (mutant.replacement ?? '');
      // The same line text can occur twice (two loops alike): use each entry once.
      let match = known.findIndex((e, i) => !used.has(i) && same(e));
      if (match < 0) match = known.findIndex(same);
      if (match >= 0) {
        used.add(match);
        equivalents++;
        continue;
      }
      survivors.push(`${mutant.location.start.line}:${mutant.location.start.column} ${mutant.mutatorName} ${mutant.status}${mutant.replacement ? ` → ${mutant.replacement.slice(0, 80)}` : ''}`);
    }
  }
  const stale = known.filter((_, i) => !used.has(i)).map((e) => `${e.mutator} → ${e.replacement} in: ${e.source}`);
  const killed = (counts.Killed ?? 0) + (counts.Timeout ?? 0);
  const detectable = killed + (counts.Survived ?? 0) + (counts.NoCoverage ?? 0);
  const pct = (a, b) => (b === 0 ? 100 : Math.round((a / b) * 1000) / 10);
  previous.modules[mutate] = {
    score: pct(killed, detectable - equivalents),
    rawScore: pct(killed, detectable),
    killed: counts.Killed ?? 0,
    timeout: counts.Timeout ?? 0,
    survived: counts.Survived ?? 0,
    noCoverage: counts.NoCoverage ?? 0,
    equivalent: equivalents,
    ignored: (counts.Ignored ?? 0) + (counts.CompileError ?? 0) + (counts.RuntimeError ?? 0),
    tests,
    survivors,
    staleEquivalentEntries: stale,
    seconds: fromReports ? (previous.modules[mutate]?.seconds ?? 0) : Math.round((Date.now() - started) / 1000),
    at: fromReports ? (previous.modules[mutate]?.at ?? new Date().toISOString()) : new Date().toISOString(),
  };
}

writeFileSync(reportPath, `${JSON.stringify(previous, null, 2)}\n`);
const rows = Object.entries(previous.modules).map(
  ([m, s]) => `| \`${m}\` | **${s.score}%** | ${s.rawScore ?? s.score}% | ${s.killed + s.timeout} | ${s.survived - (s.equivalent ?? 0)} | ${s.equivalent ?? 0} | ${s.noCoverage} | ${s.seconds} s | ${s.at.slice(0, 10)} |`,
);
const md = [
  '# Last mutation report',
  '',
  'Written by `npm run test:mutation` (Stryker 9.5.1, vitest runner, one module at a time with its own tests).',
  'Score = killed (incl. timeouts) / (killed + survived + no coverage − documented equivalent mutants);',
  'raw = the same without the exclusion. Equivalent mutants (they cannot change behaviour, e.g. a fast path',
  'that falls back to the slow one) are listed with the reason in `equivalent.json`.',
  '',
  '| module | score | raw | killed | survived | equivalent | no coverage | run time | date |',
  '|---|---|---|---|---|---|---|---|---|',
  ...rows,
  '',
  ...Object.entries(previous.modules).flatMap(([m, s]) => (s.survivors.length > 0 ? [`Survivors in \`${m}\`:`, '', ...s.survivors.map((x) => `- ${x}`), ''] : [])),
  ...Object.entries(previous.modules).flatMap(([m, s]) => ((s.staleEquivalentEntries ?? []).length > 0 ? [`Entries of equivalent.json for \`${m}\` that matched no surviving mutant (re-check them):`, '', ...s.staleEquivalentEntries.map((x) => `- ${x}`), ''] : [])),
].join('\n');
writeFileSync(new URL('./last-report.md', import.meta.url), md);
console.log(md);
