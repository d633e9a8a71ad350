import { describe, expect, it } from 'vitest';
import { phraseFinder, piiFinder, regexFinder, scanText, TextScanner, type Action, type CompiledRule, type SpanFinder } from './matchers.js';
import { BUILTIN_PII } from './pii.js';

function rule(id: string, finders: SpanFinder[], action: Action = 'cancel_response', extra: Partial<CompiledRule> = {}): CompiledRule {
  return {
    id,
    sources: new Set(['output']),
    events: null,
    action,
    finders,
    maxChars: null,
    functionName: null,
    replacement: '[{type}]',
    logMatches: false,
    ...extra,
  };
}

const pii = (name: string) => piiFinder(BUILTIN_PII.find((d) => d.name === name)!);

describe('phrase finder', () => {
  it('matches case-insensitively, whole words, any whitespace', () => {
    const f = phraseFinder(['forbidden phrase'], true);
    const hits: string[] = [];
    const text = 'A FORBIDDEN\n  Phrase and forbidden phrases';
    f.find(text, (s, e) => hits.push(text.slice(s, e)));
    expect(hits).toEqual(['FORBIDDEN\n  Phrase']);
  });

  it('can match inside words', () => {
    const hits: string[] = [];
    phraseFinder(['darn'], false).find('adarnb', (s, e) => hits.push('adarnb'.slice(s, e)));
    expect(hits).toEqual(['darn']);
  });
});

describe('streaming scanner', () => {
  it('trips on a phrase split across deltas, once', () => {
    const r = rule('p', [phraseFinder(['forbidden phrase'], true)]);
    const s = new TextScanner([r], 64);
    expect(s.push('This is a forb').hits).toEqual([]);
    expect(s.push('idden phr').hits).toEqual([]);
    // The match touches the end: a longer word may still follow, so it waits for the next text.
    expect(s.push('ase').hits).toEqual([]);
    const next = s.push(', right?');
    expect(next.hits.map((h) => h.rule.id)).toEqual(['p']);
    expect(s.push(' forbidden phrase again.').hits).toEqual([]);
  });

  it('settles a match at the very end when the stream finishes', () => {
    const s = new TextScanner([rule('p', [phraseFinder(['secret'], true)])], 64);
    expect(s.push('the secret').hits).toEqual([]);
    expect(s.push('', true).hits.map((h) => h.label)).toEqual(['phrase']);
  });

  it('does not trip when the word continues in the next delta', () => {
    const s = new TextScanner([rule('p', [phraseFinder(['refund'], true)])], 64);
    s.push('we offer a refund');
    expect(s.push('able ticket').hits).toEqual([]);
    expect(s.push('', true).hits).toEqual([]);
  });

  it('keeps only a bounded window plus the held text (no rescans of the whole transcript)', () => {
    const seen: number[] = [];
    const spy: SpanFinder = { label: 'spy', maxLength: 10, find: (text) => seen.push(text.length) };
    const s = new TextScanner([rule('spy', [spy])], 32);
    for (let i = 0; i < 200; i++) s.push('0123456789');
    // window (32) + held (at most maxLength 10) + delta (10)
    expect(Math.max(...seen)).toBeLessThanOrEqual(52);
    expect(s.total).toBe(2000);
  });

  it('finds a card number split over deltas and validates it', () => {
    const s = new TextScanner([rule('card', [pii('card')])], 64);
    expect(s.push('my card is 4111 1111').hits).toEqual([]);
    expect(s.push(' 1111 1111').hits).toEqual([]);
    expect(s.push(' thanks').hits.map((h) => h.label)).toEqual(['card']);
  });

  it('holds a match back until it is settled, then releases it redacted; reports once', () => {
    const r = rule('email', [pii('email')], 'redact');
    const s = new TextScanner([r], 64);
    const a = s.push('mail me at jane@example.com');
    expect(a.text).toBe('mail me at ');
    expect(s.held).toBe('jane@example.com');
    expect(a.hits).toEqual([]);
    const b = s.push(' or bob@example.org ok');
    expect(b.text).toBe('[email] or [email] ');
    expect(b.redacted).toBe(true);
    expect(b.hits.map((h) => h.rule.id)).toEqual(['email']);
    expect(s.push('', true).text).toBe('ok');
  });

  it('never releases a card number, even one split over deltas, before the trip', () => {
    const s = new TextScanner([rule('card', [pii('card')])], 128);
    const released: string[] = [];
    let tripped = false;
    for (const d of ['Card: 4111', ' 1111 ', '1111', ' 1111', ' thanks']) {
      const r = s.push(d);
      if (r.hits.length > 0) tripped = true;
      else released.push(r.text);
    }
    expect(tripped).toBe(true);
    expect(released.join('')).toBe('Card: ');
  });

  it('matches through zero-width characters, homoglyphs, fullwidth forms and accents', () => {
    const evasions = ['wire\u200b the mоney', 'WIRE THE ＭＯＮＥＹ', 'wíre the\u202e money', 'wire\n\t the  money', 'wιre thе money'];
    for (const text of evasions) {
      const r = scanText([rule('p', [phraseFinder(['wire the money'], true)])], text, 64, 4096);
      expect(r.hits.map((h) => h.rule.id), text).toEqual(['p']);
    }
  });

  it('redacts the original characters of a match found in the normalised text', () => {
    const r = rule('p', [phraseFinder(['secret code'], true)], 'redact');
    expect(scanText([r], 'the s\u200becret cоde is out', 64, 4096).text).toBe('the [phrase] is out');
  });

  it('matches across items through the seed (earlier text of the conversation)', () => {
    const r = rule('p', [phraseFinder(['wire the money'], true)]);
    expect(scanText([r], 'money now', 64, 4096, 'please wire the ').hits.map((h) => h.rule.id)).toEqual(['p']);
    expect(scanText([r], 'wire the money', 64, 4096, 'please wire the money ').hits.map((h) => h.rule.id)).toEqual(['p']);
  });

  it('trips maxChars once the stream grows past it', () => {
    const s = new TextScanner([rule('long', [], 'log', { maxChars: 10 })], 64);
    expect(s.push('12345').hits).toEqual([]);
    expect(s.push('678901').hits.map((h) => h.label)).toEqual(['max_chars']);
    expect(s.push('more').hits).toEqual([]);
  });

  it('includes the matched text only when the rule allows it', () => {
    const quiet = new TextScanner([rule('q', [phraseFinder(['boom'], true)])], 64).push('a boom!', true);
    expect(quiet.hits[0]!.excerpt).toBeNull();
    const loud = new TextScanner([rule('l', [phraseFinder(['boom'], true)], 'log', { logMatches: true })], 64).push('a boom!', true);
    expect(loud.hits[0]!.excerpt).toBe('boom');
  });
});

describe('scanText', () => {
  it('redacts several detectors in one text', () => {
    const r = rule('pii', [pii('email'), pii('card'), pii('iban')], 'redact');
    const out = scanText([r], 'Email a@b.io, card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00.', 64, 4096);
    expect(out.text).toBe('Email [email], card [card], IBAN [iban].');
    expect(out.hits.length).toBe(1);
  });

  it('scans long texts in bounded chunks and still finds matches across chunk edges', () => {
    const seen: number[] = [];
    const spyRe = regexFinder(/needle/g, 'regex', 6);
    const spy: SpanFinder = { label: 'regex', maxLength: 6, find: (t, cb) => (seen.push(t.length), spyRe.find(t, cb)) };
    const text = 'x'.repeat(1020) + 'needle' + 'y'.repeat(3000);
    const out = scanText([rule('n', [spy])], text, 64, 1024);
    expect(out.hits.map((h) => h.rule.id)).toEqual(['n']);
    // chunk + window + held text (at most maxLength)
    expect(Math.max(...seen)).toBeLessThanOrEqual(1024 + 64 + 6);
  });

  it('merges overlapping redactions', () => {
    const a = rule('a', [regexFinder(/abc/g, 'x', 3)], 'redact');
    const b = rule('b', [regexFinder(/bcd/g, 'y', 3)], 'redact');
    expect(scanText([a, b], '-abcd-', 64, 4096).text).toBe('-[x]-');
  });
});
