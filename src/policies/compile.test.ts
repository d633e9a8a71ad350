import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compilePolicy, parsePolicyYaml, PolicyError, type ModuleLoader } from './compile.js';
import { policyJsonSchema } from './json-schema.js';
import { scanText, TextScanner } from './matchers.js';

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
