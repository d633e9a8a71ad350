import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compilePolicy, parsePolicyYaml, PolicyError, type ModuleLoader } from './compile.js';
import { policyJsonSchema } from './json-schema.js';
import { scanText, TextScanner, type CompiledRule } from './matchers.js';

const POLICIES = fileURLToPath(new URL('../../policies/', import.meta.url));

async function compileText(text: string, name = 'p') {
  const file = join(POLICIES, `${name}.yaml`);
  return compilePolicy(parsePolicyYaml(text, file), { name, file, root: POLICIES, text });
}

async function problemsOf(text: string, name = 'p'): Promise<string> {
  try {
    await compileText(text, name);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as Error).message;
  }
  throw new Error('expected the policy to be refused');
}

describe('policy compiler', () => {
  it('compiles every shipped policy', async () => {
    const files = readdirSync(POLICIES).filter((f) => f.endsWith('.yaml'));
    expect(files).toEqual(expect.arrayContaining(['default.yaml', 'customer-support.yaml', 'pii-safe.yaml']));
    for (const f of files) {
      const text = readFileSync(join(POLICIES, f), 'utf8');
      const p = await compileText(text, f.replace(/\.yaml$/, ''));
      expect(p.version).toBe('1');
    }
    const strict = await compileText(readFileSync(join(POLICIES, 'customer-support.yaml'), 'utf8'), 'customer-support');
    expect(strict.rulesBySource.get('output')!.map((r) => r.id)).toContain('no-refund-promises');
    expect(strict.custom.map((c) => c.id)).toEqual(['shouting']);
    expect(strict.locks.voice?.allow).toEqual(['marin', 'cedar']);
    expect(strict.truncation.budget?.maxTokens).toBe(12000);
    // The shipped policies that promise to keep content in check fail closed on content they cannot
    // read (pii-safe passed it until 2026-12-07: a new event type's text reached model and client unredacted).
    for (const name of ['customer-support', 'pii-safe']) {
      const p = await compileText(readFileSync(join(POLICIES, `${name}.yaml`), 'utf8'), name);
      expect({ name, unknown: p.unknownContentEvents }).toEqual({ name, unknown: 'block' });
    }
  });

  it('the shipped refund rule catches contractions, typographic apostrophes included, and lets ordinary speech through', async () => {
    const strict = await compileText(readFileSync(join(POLICIES, 'customer-support.yaml'), 'utf8'), 'customer-support');
    const output = strict.rulesBySource.get('output')!;
    const tripped = (text: string) => scanText(output, text, 128, 4096).hits.map((h) => h.rule.id);
    for (const said of ["Sure, I'll refund you today.", 'Sure, I’ll refund you today.', "We'll reimburse you.", 'I will refund you.', 'we can reimburse you.']) {
      expect({ said, tripped: tripped(said) }).toEqual({ said, tripped: ['no-refund-promises'] });
    }
    expect(tripped("I'll tell you about refunds: they are decided by a person.")).toEqual([]);
  });

  // Regression (adversarial review of the matchers, 2026-12-05): `\b` counts `_` as a letter, so the
  // shipped patterns missed a promise in markdown italics; they write the boundary as (?:\b|_) now.
  it('the shipped refund rule and us_ssn detector see `_` as the end of a word (markdown emphasis, snake_case)', async () => {
    const strict = await compileText(readFileSync(join(POLICIES, 'customer-support.yaml'), 'utf8'), 'customer-support');
    const output = strict.rulesBySource.get('output')!;
    const tripped = (text: string) => scanText(output, text, 128, 4096).hits.map((h) => h.rule.id);
    for (const said of ['Good news: _I will refund you_ today.', "__We'll reimburse you__", 'say_I will refund you_ok', 'We _guarantee a refund_.']) {
      expect({ said, tripped: tripped(said) }).toEqual({ said, tripped: ['no-refund-promises'] });
    }
    for (const said of ['xI will refund you', 'I will refund your order', 'we guarantee refunds']) expect({ said, tripped: tripped(said) }).toEqual({ said, tripped: [] });
    const safe = await compileText(readFileSync(join(POLICIES, 'pii-safe.yaml'), 'utf8'), 'pii-safe');
    const input = safe.rulesBySource.get('input')!;
    expect(scanText(input, 'ssn _123-45-6789_.', 128, 4096).text).toBe('ssn [us_ssn].');
    expect(scanText(input, 'id x123-45-6789', 128, 4096).text).toBe('id x123-45-6789');
  });

  it('names the file, the path and the problem', async () => {
    const msg = await problemsOf(
      [
        'guardrails:',
        '  rules:',
        '    - id: bad-regex',
        '      sources: [output]',
        '      match: { regex: ["(a+)+$"] }',
        '      action: block',
        '    - id: bad-action',
        '      sources: [output]',
        '      match: { phrases: [x] }',
        '      action: explode',
        '    - id: no-matcher',
        '      sources: [input]',
        '      match: {}',
        '      action: log',
        'locks:',
        '  voice: { allow: [marin], default: alloy }',
        '  bogus: true',
      ].join('\n'),
    );
    expect(msg).toContain(join(POLICIES, 'p.yaml'));
    expect(msg).toMatch(/guardrails\.rules\.0\.match\.regex\.0: nested quantifier/);
    expect(msg).toMatch(/guardrails\.rules\.1\.action/);
    expect(msg).toMatch(/guardrails\.rules\.2\.match: a rule needs at least one matcher/);
    expect(msg).toMatch(/locks/);
    expect(msg).toMatch(/bogus/);
  });

  it('refuses redact without a text matcher and a name mismatch', async () => {
    const msg = await problemsOf(['name: other', 'guardrails:', '  rules:', '    - { id: a, sources: [input], match: { maxChars: 5 }, action: redact }'].join('\n'));
    expect(msg).toMatch(/guardrails\.rules\.0\.action: redact needs a matcher/);
    expect(msg).toMatch(/name: "other" does not match the file name "p"/);
  });

  it('checks rule ids and detector names across the policy', async () => {
    const msg = await problemsOf(
      [
        'guardrails:',
        '  rules:',
        '    - { id: a, sources: [input], match: { pii: [passport] }, action: redact }',
        '    - { id: a, sources: [input], match: { phrases: [x] }, action: log }',
      ].join('\n'),
    );
    expect(msg).toMatch(/guardrails\.rules\.0\.match\.pii\.0: unknown PII detector "passport"/);
    expect(msg).toMatch(/guardrails\.rules\.1\.id: duplicate rule id "a"/);
  });

  it('reports YAML syntax errors with the file', async () => {
    const msg = await problemsOf('guardrails: [unclosed');
    expect(msg).toContain('p.yaml');
    expect(msg).toMatch(/yaml/);
  });

  it('accepts custom PII detectors and screens their patterns', async () => {
    const ok = await compileText(
      ['guardrails:', '  piiDetectors: [{ name: ssn, pattern: "\\\\b\\\\d{3}-\\\\d{2}-\\\\d{4}\\\\b" }]', '  rules: [{ id: s, sources: [input], match: { pii: [ssn] }, action: redact }]'].join('\n'),
    );
    expect(ok.rules[0]!.finders[0]!.label).toBe('ssn');
    // Streamed text is held only while it can still become a number of that shape, not the last 64 characters.
    const scanner = new TextScanner(ok.rules, 128);
    expect(scanner.push('Sure, my number is ').text).toBe('Sure, my number is ');
    expect(scanner.push('123-4').text).toBe('');
    expect(scanner.push('5-6789 thanks').text).toBe('[REDACTED:ssn] thanks');
    expect(scanner.push(' and 12').text).toBe(' and ');
    expect(scanner.push('a more').text).toBe('12a more');
    const msg = await problemsOf(['guardrails:', '  piiDetectors: [{ name: bad, pattern: "(\\\\d+)+x" }]'].join('\n'));
    expect(msg).toMatch(/guardrails\.piiDetectors\.0\.pattern: nested quantifier/);
  });

  it('loads custom guardrail modules and refuses modules outside the policies directory', async () => {
    const p = await compileText(['guardrails:', '  custom: [{ id: s, module: ./custom/shouting.ts }]'].join('\n'));
    expect(p.custom[0]!.guardrail.name).toBe('shouting');
    expect([...p.custom[0]!.sources]).toEqual(['input']);
    const outside = await problemsOf(['guardrails:', '  custom: [{ id: s, module: ../src/policies/api.ts }]'].join('\n'));
    expect(outside).toMatch(/must be inside the policies directory/);
    const missing = await problemsOf(['guardrails:', '  custom: [{ id: s, module: ./custom/nope.ts }]'].join('\n'));
    expect(missing).toMatch(/guardrails\.custom\.0\.module: cannot load/);
  });

  it('refuses a PII detector named twice or like a built-in one (the last one silently replaced the other)', async () => {
    const twice = await problemsOf(
      ['guardrails:', '  piiDetectors:', '    - { name: member_id, pattern: "MC\\\\d{12}", maxLength: 14 }', '    - { name: member_id, pattern: "MX\\\\d{2}", maxLength: 4 }'].join('\n'),
    );
    expect(twice).toMatch(/guardrails\.piiDetectors\.1\.name: duplicate PII detector "member_id"/);
    const builtin = await problemsOf(['guardrails:', '  piiDetectors: [{ name: card, pattern: "GIFT-\\\\d{4}", maxLength: 9 }]'].join('\n'));
    expect(builtin).toMatch(/guardrails\.piiDetectors\.0\.name: "card" is a built-in detector/);
  });

  it('refuses a custom guardrail whose `wants` is not a list of known sources (it would never run, or run on nonsense)', async () => {
    const withWants = (wants: unknown) => async () => ({ default: { name: 'g', wants, evaluate: () => ({ action: 'block' }) } });
    const compileWith = (wants: unknown) =>
      compilePolicy(parsePolicyYaml('guardrails:\n  custom: [{ id: g, module: ./custom/g.mjs }]\n', join(POLICIES, 'p.yaml')), {
        name: 'p',
        file: join(POLICIES, 'p.yaml'),
        root: POLICIES,
        text: '',
        loadModule: withWants(wants),
      });
    await expect(compileWith(['outputs'])).rejects.toThrow(/guardrails\.custom\.0\.module: \.\/custom\/g\.mjs: `wants` names unknown source "outputs"/);
    await expect(compileWith('output')).rejects.toThrow(/`wants` must be a list of sources .* not "output"/);
    expect([...(await compileWith(['output', 'tool_call'])).custom[0]!.sources]).toEqual(['output', 'tool_call']);
  });

  it('refuses a custom module that does not finish loading within the bound, naming it', async () => {
    const never: ModuleLoader = () => new Promise(() => {});
    const refused = compilePolicy(parsePolicyYaml('guardrails:\n  custom: [{ id: n, module: ./custom/never.mjs }]\n', join(POLICIES, 'p.yaml')), {
      name: 'p',
      file: join(POLICIES, 'p.yaml'),
      root: POLICIES,
      text: '',
      loadModule: never,
      moduleLoadTimeoutMs: 20,
    });
    await expect(refused).rejects.toThrow(/guardrails\.custom\.0\.module: cannot load \.\/custom\/never\.mjs: .*did not finish loading/);
  });

  it('holdSpokenInput: needs locks.inputTranscription, bounds its timeout, and fails closed by default', async () => {
    const missing = await problemsOf(['guardrails:', '  holdSpokenInput: { enabled: true }'].join('\n'));
    expect(missing).toMatch(/guardrails\.holdSpokenInput\.enabled: holding spoken turns needs their transcripts: set locks\.inputTranscription/);
    const bounds = await problemsOf(['guardrails:', '  holdSpokenInput: { enabled: true, timeoutMs: 60000, extra: 1 }', 'locks:', '  inputTranscription: { model: gpt-4o-mini-transcribe }'].join('\n'));
    expect(bounds).toMatch(/guardrails\.holdSpokenInput\.timeoutMs/);
    expect(bounds).toMatch(/extra/);
    const held = await compileText(['guardrails:', '  holdSpokenInput: { enabled: true }', 'locks:', '  inputTranscription: { model: gpt-4o-mini-transcribe }'].join('\n'));
    expect(held.holdSpokenInput).toEqual({ timeoutMs: 5000 });
    expect(held.transcriptionFailure).toEqual({ action: 'block', timeoutMs: null });
    // The policy may still choose to let an unchecked turn through.
    const open = await compileText(
      ['guardrails:', '  holdSpokenInput: { enabled: true, timeoutMs: 800 }', '  inputTranscriptionFailure: { action: pass }', 'locks:', '  inputTranscription: { model: gpt-4o-mini-transcribe }'].join('\n'),
    );
    expect(open.transcriptionFailure.action).toBe('pass');
    expect(open.holdSpokenInput).toEqual({ timeoutMs: 800 });
    const off = await compileText('description: no hold\n');
    expect(off.holdSpokenInput).toBeNull();
    expect(off.transcriptionFailure.action).toBe('pass');
  });

  it('keeps policies/policy.schema.json in sync (npx tsx src/policies/write-schema.ts)', () => {
    const onDisk = readFileSync(join(POLICIES, 'policy.schema.json'), 'utf8');
    expect(onDisk).toBe(policyJsonSchema() + '\n');
  });
});

// Regression (2026-12-06): the window grew for phrases only. A regex or PII detector whose longest
// match is finite but longer than `streamWindowChars` (128) was held at most 128 characters, so
// streamed in small deltas its start left before the match was complete (a `block` rule tripped
// after part of the match had been sent, a `redact` rule redacted the rest only), and a match
// longer than the context plus the hold was never seen at all. The window now covers the longest
// finite match of every rule (regexes, detectors, phrases), up to 8176 characters.
describe('the window covers every finite match', () => {
  /** 200 letters and digits, no 8 of them repeated elsewhere in it. */
  const SECRET = Array.from({ length: 200 }, (_, i) => 'ABCDEFGHJKMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789'[(i * 7 + (i >> 3)) % 54]).join('');
  const policyOf = (rules: string[], extra: string[] = []) => compileText(['guardrails:', ...extra, '  rules:', ...rules.map((r) => `    - ${r}`)].join('\n'));

  /** Streams `text` in `step`-character deltas: what was released before the first trip, and the rules it tripped. */
  function streamBlocked(rules: readonly CompiledRule[], window: number, text: string, step: number) {
    const s = new TextScanner(rules, window);
    let released = '';
    for (let i = 0; i <= text.length; i += step) {
      const r = s.push(text.slice(i, i + step), i + step >= text.length);
      if (r.hits.length > 0) return { released, tripped: r.hits.map((h) => h.rule.id) };
      released += r.text;
    }
    return { released, tripped: [] as string[] };
  }

  /** Streams `text` in `step`-character deltas: everything released (redacted) and the rules it tripped. */
  function streamRedacted(rules: readonly CompiledRule[], window: number, text: string, step: number) {
    const s = new TextScanner(rules, window);
    let out = '';
    const tripped: string[] = [];
    for (let i = 0; i <= text.length; i += step) {
      const r = s.push(text.slice(i, i + step), i + step >= text.length);
      out += r.text;
      tripped.push(...r.hits.map((h) => h.rule.id));
    }
    return { out, tripped };
  }

  it('a 200-character regex match streamed in small deltas: block trips before any of it leaves', async () => {
    const p = await policyOf(['{ id: long, sources: [output], match: { regex: ["[A-Za-z0-9]{200}"] }, action: block }']);
    const rules = p.rulesBySource.get('output')!;
    for (const step of [1, 5, 16, 37]) {
      expect({ step, ...streamBlocked(rules, p.windowChars, `here: ${SECRET} and more text follows.`, step) }).toEqual({ step, released: 'here: ', tripped: ['long'] });
    }
    // One character short of a match: everything passes, nothing trips.
    expect(streamBlocked(rules, p.windowChars, `here: ${SECRET.slice(1)} and more.`, 5)).toEqual({ released: `here: ${SECRET.slice(1)} and more.`, tripped: [] });
  });

  it('a 200-character regex match streamed in small deltas: redact replaces all of it', async () => {
    const p = await policyOf(['{ id: long, sources: [output], match: { regex: ["[A-Za-z0-9]{200}"] }, action: redact }']);
    const rules = p.rulesBySource.get('output')!;
    for (const step of [1, 5, 16, 37]) {
      expect({ step, ...streamRedacted(rules, p.windowChars, `here: ${SECRET} and more text follows.`, step) }).toEqual({ step, out: 'here: [REDACTED:regex] and more text follows.', tripped: ['long'] });
    }
  });

  it('`secret code:.{150,180}end` streamed word by word: block trips before "secret code" leaves', async () => {
    const p = await policyOf(['{ id: code, sources: [output], match: { regex: ["secret code:.{150,180}end"] }, action: block }']);
    const rules = p.rulesBySource.get('output')!;
    const filler = 'lorem ipsum dolor sit amet '.repeat(7).slice(0, 165);
    const text = `OK. Your secret code: ${filler} end. Bye now.`;
    const words = text.match(/\s*\S+/g)!;
    const s = new TextScanner(rules, p.windowChars);
    let released = '';
    let tripped: string[] = [];
    for (const w of words) {
      const r = s.push(w);
      if (r.hits.length > 0) {
        tripped = r.hits.map((h) => h.rule.id);
        break;
      }
      released += r.text;
    }
    expect({ released, tripped }).toEqual({ released: 'OK. Your ', tripped: ['code'] });
  });

  it('a 300-digit match (longer than the context plus the hold) is found at all', async () => {
    const p = await policyOf(['{ id: digits, sources: [output], match: { regex: ["\\\\d{300}"] }, action: block }']);
    const rules = p.rulesBySource.get('output')!;
    const digits = '3141592653'.repeat(30);
    for (const step of [1, 7]) expect({ step, ...streamBlocked(rules, p.windowChars, `pi: ${digits} ...`, step) }).toEqual({ step, released: 'pi: ', tripped: ['digits'] });
  });

  it('a complete text scanned in maxInputChars windows: a 200-character match across a window edge is redacted whole', async () => {
    const p = await policyOf(['{ id: long, sources: [output], match: { regex: ["[A-Za-z0-9]{200}"] }, action: redact }'], ['  maxInputChars: 256']);
    const rules = p.rulesBySource.get('output')!;
    for (let at = 0; at <= 520; at += 13) {
      const text = `${'. '.repeat(at >> 1)}${at % 2 ? '.' : ''}${SECRET} tail ${'. '.repeat(200)}`;
      const r = scanText(rules, text, p.windowChars, p.maxInputChars);
      expect({ at, text: r.text }).toEqual({ at, text: text.replace(SECRET, '[REDACTED:regex]') });
    }
  });

  it('the built-in email detector: a 190-character address streamed in small deltas is redacted whole', async () => {
    const p = await policyOf(['{ id: mail, sources: [output], match: { pii: [email] }, action: redact }']);
    const rules = p.rulesBySource.get('output')!;
    const address = `${'j'.repeat(64)}@${'e'.repeat(60)}.${'f'.repeat(60)}.com`;
    expect(address).toHaveLength(190);
    for (const step of [1, 4, 9]) expect({ step, ...streamRedacted(rules, p.windowChars, `mail ${address} now`, step) }).toEqual({ step, out: 'mail [REDACTED:email] now', tripped: ['mail'] });
  });

  it('a custom PII detector whose pattern matches longer than its declared maxLength is held and redacted whole', async () => {
    // maxLength defaults to 64; the pattern's matches are 104 characters.
    const p = await policyOf(['{ id: acct, sources: [output], match: { pii: [acct] }, action: redact }'], ['  piiDetectors: [{ name: acct, pattern: "ACCT\\\\d{100}" }]']);
    const rules = p.rulesBySource.get('output')!;
    const acct = `ACCT${'9876543210'.repeat(10)}`;
    for (const step of [1, 4, 9]) expect({ step, ...streamRedacted(rules, p.windowChars, `id ${acct} ok`, step) }).toEqual({ step, out: 'id [REDACTED:acct] ok', tripped: ['acct'] });
  });

  it('a phrase of many short words with long separator runs (8 between words) is held whole too', async () => {
    // longestPhrase * 2 + 16 = 110, so the window was streamWindowChars (128); a match can be 152 characters.
    const words = ['if', 'we', 'go', 'to', 'it', 'do', 'so', 'by', 'me', 'as', 'he', 'is', 'up', 'on', 'my', 'ox'];
    const p = await policyOf([`{ id: chant, sources: [output], match: { phrases: ["${words.join(' ')}"] }, action: block }`]);
    const rules = p.rulesBySource.get('output')!;
    const text = `say ${words.join('•'.repeat(8))} now`;
    for (const step of [1, 3, 8]) expect({ step, ...streamBlocked(rules, p.windowChars, text, step) }).toEqual({ step, released: 'say ', tripped: ['chant'] });
  });

  it('sizes the window: the longest finite match of any rule (+16), unbounded patterns keep streamWindowChars', async () => {
    const unbounded = await policyOf(['{ id: u, sources: [output], match: { regex: ["secret.*end", "\\\\d+"] }, action: block }']);
    expect(unbounded.windowChars).toBe(128);
    const long = await policyOf(['{ id: u, sources: [output], match: { regex: ["secret.*end"] }, action: block }', '{ id: l, sources: [output], match: { regex: ["[A-Za-z0-9]{200}"] }, action: log }']);
    // maxMatchLength counts every character as two UTF-16 units (a surrogate pair): 400.
    expect(long.windowChars).toBe(416);
    // The unbounded pattern keeps its reach (streamWindowChars), not the grown window: same verdicts as without the long rule.
    expect(long.rules[0]!.finders[0]!.maxLength).toBe(128);
    expect(unbounded.rules[0]!.finders.map((f) => f.maxLength)).toEqual([Infinity, Infinity]);
    const alone = await policyOf(['{ id: u, sources: [output], match: { regex: ["secret.*end"] }, action: block }']);
    for (const gap of [50, 100, 200, 300]) {
      const text = `a secret ${'x'.repeat(gap)} end b`;
      expect({ gap, ...streamBlocked(long.rules.slice(0, 1), long.windowChars, text, 10) }).toEqual({ gap, ...streamBlocked(alone.rules, alone.windowChars, text, 10) });
    }
    const wide = await policyOf(['{ id: u, sources: [output], match: { regex: ["x{10}"] }, action: block }'], ['  streamWindowChars: 2000']);
    expect(wide.windowChars).toBe(2000);
    // Every shipped policy: no finder with a finite match longer than the window.
    for (const f of readdirSync(POLICIES).filter((n) => n.endsWith('.yaml'))) {
      const p = await compileText(readFileSync(join(POLICIES, f), 'utf8'), f.replace(/\.yaml$/, ''));
      for (const r of p.rules) for (const finder of r.finders) if (Number.isFinite(finder.maxLength)) expect({ f, rule: r.id, label: finder.label, fits: finder.maxLength <= p.windowChars }).toEqual({ f, rule: r.id, label: finder.label, fits: true });
    }
  });

  it('refuses a rule whose longest finite match is longer than 8176 characters, naming the rule; allows one just under', async () => {
    const regex = await problemsOf(['guardrails:', '  rules:', '    - { id: huge-code, sources: [output], match: { regex: ["ok", "[a-z]{5000}"] }, action: block }'].join('\n'));
    expect(regex).toMatch(/guardrails\.rules\.0\.match\.regex\.1: rule "huge-code": a match can be 10000 characters long, more than the 8176 a rule may match \(the streaming window is capped at 8192\)/);
    const detector = await problemsOf(['guardrails:', '  piiDetectors: [{ name: blob, pattern: "B\\\\d{4200}", maxLength: 100 }]', '  rules: [{ id: b, sources: [input], match: { pii: [blob] }, action: redact }]'].join('\n'));
    expect(detector).toMatch(/guardrails\.piiDetectors\.0\.pattern: detector "blob": a match can be 8402 characters long, more than the 8176/);
    const phrase = await problemsOf(['guardrails:', '  rules:', `    - { id: essay, sources: [input], match: { phrases: ["${'a'.repeat(4100)}"] }, action: block }`].join('\n'));
    expect(phrase).toMatch(/guardrails\.rules\.0\.match\.phrases: rule "essay": a match can be 8200 characters long/);
    const under = await policyOf(['{ id: big, sources: [output], match: { regex: ["[a-z]{4080}"] }, action: block }']);
    expect(under.windowChars).toBe(8176);
    // Unbounded: no limit, today's window.
    expect((await policyOf(['{ id: big, sources: [output], match: { regex: ["[a-z]{5000,}"] }, action: block }'])).windowChars).toBe(128);
  });
});
