/**
 * Text normalisation for matching. Rules match on a folded copy of the text, and every character of
 * the copy remembers which characters of the original it came from, so a match found in the copy
 * redacts (or holds back) exactly the original characters.
 *
 * Applied per code point:
 * - compatibility decomposition (NFKD: fullwidth, ligatures, math alphanumerics, superscripts,
 *   NBSP → their plain forms) with every combining mark removed (Unicode M: non-spacing, spacing
 *   and enclosing; accents, stacked marks, U+20DD or U+0903 do not split a word: "ı̇gnore",
 *   "café" → "cafe");
 * - format characters (Unicode Cf: zero-width space/joiners, bidi controls and isolates, soft
 *   hyphen, word joiner, BOM, tag characters), every other default-ignorable code point (variation
 *   selectors, the Hangul fillers U+115F, U+1160, U+3164, U+FFA0: letters that render as nothing)
 *   and control characters other than whitespace (Cc: U+0007, U+001F, U+007F, …) removed;
 * - strays (STRAY: U+FFFD, U+FFFC, lone surrogates, private use, noncharacters, unassigned) kept in
 *   the first reading as U+FFFD (KEPT_STRAY), a run of them as one and none after whitespace (the phrase matcher
 *   reads each as nothing or as a separator), and dropped in the second;
 * - Cyrillic and Greek letters that look like Latin ones mapped to those Latin letters, and Latin
 *   look-alikes NFKD leaves alone (small capitals, letters with a stroke or hook: LATIN_LOOKALIKES);
 * - decimal digits of every script (`٤`, `४`, `๔`) as ASCII digits (asciiDigit), circled digits
 *   NFKD leaves alone (`❹`, `➊`, `⓵`) as theirs, and parenthesized or stopped ones (`⑷`, `⒋`, `🄅`) too;
 * - enclosed Latin capitals without a decomposition (negative circled and squared, regional
 *   indicators) read as their letters, a run of regional indicators apart from the text around it;
 * - the Lisu, Cherokee, Canadian syllabics and Armenian letters drawn as Latin ones read as them (OTHER_ALPHABETS);
 * - dashes and minus signs (`‑`, `–`, `—`, `−`: DASH) as the ASCII hyphen-minus `-`;
 * - every run of whitespace (NEL U+0085 and the braille blank U+2800 included) becomes one space;
 *   the spaces whose run holds a line break are listed (`lineBreaks`), for the detectors that read
 *   a line break as the end of a number (pii.ts `readsLineBreaks`: phone numbers one per line).
 * Tag characters (U+E0020–U+E007E: ASCII 0x20–0x7E, invisible on screen, read by models) get a
 * second reading: `normalize(text, true)` decodes them to their ASCII (each mapped to its tag
 * character), so an instruction written in them ("ASCII smuggling") is text to the matchers, while
 * the first reading drops them (a tag inside a visible word, `ign<TAG>ore`, must not split it).
 * The second reading also drops strays (see STRAY).
 * Emoji tag sequences (a subdivision flag: U+1F3F4, 3–7 tag digits or lower case letters, U+E007F)
 * are dropped in both readings.
 * Case folding is left to the matchers (phrases and `i` regexes match with Unicode case folding),
 * so case-sensitive custom patterns keep working. Not normalised: leetspeak (`1gn0re`), spacing
 * inside words (`i g n o r e`), other scripts' look-alikes (but those above), turned or reversed Latin letters, and encodings (base64, URL, HTML).
 */

const CONFUSABLES: Readonly<Record<string, string>> = {
  // Cyrillic
  а: 'a', е: 'e', о: 'o', р: 'p', с: 'c', у: 'y', х: 'x', і: 'i', ј: 'j', ѕ: 's', ԁ: 'd', һ: 'h', ԛ: 'q', ԝ: 'w', ӏ: 'l', ү: 'y', ё: 'e', ї: 'i',
  // Lower case letters that look like the Latin small capitals folded below (`т` as `ᴛ`, `м` as `ᴍ`):
  // until the fifteenth red-team pass's second round "developer мode" passed where "developer ᴍode" did not.
  в: 'b', к: 'k', м: 'm', н: 'h', т: 't',
  А: 'A', В: 'B', Е: 'E', К: 'K', М: 'M', Н: 'H', О: 'O', Р: 'P', С: 'C', Т: 'T', Х: 'X', У: 'Y', І: 'I', Ј: 'J', Ѕ: 'S', Һ: 'H', Ԛ: 'Q', Ԝ: 'W', Ӏ: 'I', Ү: 'Y',
  // Greek
  α: 'a', ο: 'o', ν: 'v', ρ: 'p', ι: 'i', κ: 'k', υ: 'u', χ: 'x', ε: 'e', τ: 't', ϲ: 'c', ϳ: 'j',
  Α: 'A', Β: 'B', Ε: 'E', Ζ: 'Z', Η: 'H', Ι: 'I', Κ: 'K', Μ: 'M', Ν: 'N', Ο: 'O', Ρ: 'P', Τ: 'T', Υ: 'Y', Χ: 'X', Ϲ: 'C',
  // Latin look-alikes NFKD leaves alone (the letters are in LATIN_LOOKALIKES below)
  ꞏ: '.',
  // Apostrophe look-alikes, as the ASCII one (a regex written `I'll` or `['’]ll` then takes them):
  // MODIFIER LETTER APOSTROPHE and PRIME (`Iʼll`, `Iʹll`: letters, they joined the words around them),
  // SALTILLO `ꞌ`, PRIME `′`, ACUTE ACCENT `´` (NFKD made it a space). Until the fifteenth red-team
  // pass's second round a model asked to write `Iʼll refund you` passed customer-support's rule.
  ʼ: "'", ʹ: "'", ꞌ: "'", '′': "'", '´': "'",
};

/**
 * Latin letters that NFKD does not fold to a basic Latin letter, by the letter they look like:
 * small capitals (`ɪɢɴᴏʀᴇ`: U+1D00–U+1D22, U+0262, U+026A, U+0274, U+0280, U+A730, U+A731, …),
 * dotless and script forms (`ı`, `ȷ`, `ɑ`, `ɡ`), letters with a stroke, bar, hook, tail, curl,
 * belt, loop, descender or middle tilde (`ø`, `ł`, `đ`, `ħ`, `ƒ`, `ɠ`, `ʋ`, `ɫ`; NFKD removes
 * accents but keeps these: "ıgnøre" → "ignore"), and the Latin iota and open e (`ɩ`, `ɛ`, as the
 * Greek ones). Modifier letters that NFKD turns into one of these (`ᶦ` U+1DA6 → `ɪ` → `i`, `ᶫ`,
 * `ᶰ`, `ᶸ`, `𐞪`) are folded through this table after their decomposition. Small capitals fold to the
 * lower case letter. Left alone: turned, reversed and sideways letters, digraphs and ligatures
 * without a decomposition (`æ`, `œ`, `ß`), and letters of other alphabets written in Latin script
 * (eth, thorn, eng, ezh, schwa). Generated from the Unicode character names (letters named
 * "LATIN … LETTER X WITH …", "LATIN LETTER SMALL CAPITAL X", "… DOTLESS X", "… SCRIPT X").
 */
const LATIN_LOOKALIKES: Readonly<Record<string, string>> = {
  a: 'ɑᴀᶏⱥ',
  A: 'ȺⱭ',
  b: 'ƀƃɓʙᴃᵬᶀꞗ',
  B: 'ƁƂɃᴯꞖ',
  c: 'ƈȼɕᴄꞓꞔ𝼝',
  C: 'ƇȻꞒꟄ',
  d: 'đƌȡɖɗᴅᵭᶁᶑꟈ',
  D: 'ĐƊƋꟇ',
  e: 'ɇɛᴇᶒⱸꬴ',
  E: 'ƐɆ',
  f: 'ƒᵮᶂꜰꞙ',
  F: 'ƑꞘ',
  g: 'ǥɠɡɢʛᶃꞡ',
  G: 'ƓǤꞠꞬ',
  h: 'ħɦʜⱨꞕ',
  H: 'ĦⱧꞪ',
  i: 'ıɨɩɪᵻᶖ𝼚',
  I: 'ƖƗꞮ',
  j: 'ȷɉʝᴊ',
  J: 'ɈꞲ',
  k: 'ƙᴋᶄⱪꝁꝃꝅꞣ',
  K: 'ƘⱩꝀꝂꝄꞢ',
  l: 'ŀłƚȴɫɬɭʟᴌᶅⱡꝉꞎꬷꬸꬹ𝼄𝼑𝼓',
  L: 'ĿŁȽⱠⱢꝈꞭ',
  m: 'ɱᴍᵯᶆꬺ',
  M: 'Ɱ',
  n: 'ƞȵɲɳɴᵰᶇꞑꞥꬻ',
  N: 'ƝȠꞐꞤ',
  o: 'øᴏⱺꝋꝍ𝼛',
  O: 'ØƟꝊꝌ',
  p: 'ƥᴘᵱᵽᶈꝑꝓꝕ',
  P: 'ƤⱣꝐꝒꝔ',
  q: 'ɋʠꝗꝙꞯ',
  Q: 'ꝖꝘ',
  r: 'ɍɼɽɾʀᵲᵳᶉꞧꭆꭉꭋ𝼖',
  R: 'ɌⱤꞦ',
  s: 'ȿʂᵴᶊꜱꞩꟊ𝼞',
  S: 'ⱾꞨꟅꟉ',
  t: 'ŧƫƭȶʈᴛᵵⱦ𝼉',
  T: 'ŦƬƮȾ',
  u: 'ᴜᵾᶙꞹꭎꭒ',
  U: 'Ꞹ',
  v: 'ʋᴠᶌⱱⱴꝟ',
  V: 'ƲꝞ',
  w: 'ᴡⱳ',
  W: 'Ⱳ',
  x: 'ᶍꭓꭖꭗꭘꭙ',
  X: 'Ꭓ',
  y: 'ƴɏʏỿꭚ',
  Y: 'ƳɎỾ',
  z: 'ƶȥɀʐʑᴢᵶᶎⱬ',
  Z: 'ƵȤⱫⱿꟆ',
};
for (const [letter, lookalikes] of Object.entries(LATIN_LOOKALIKES)) for (const ch of lookalikes) (CONFUSABLES as Record<string, string>)[ch] = letter;

/**
 * Enclosed Latin capitals without a decomposition, by the letter they show: NEGATIVE CIRCLED
 * (U+1F150–U+1F169, `🅘`) and NEGATIVE SQUARED (U+1F170–U+1F189, `🅸`). Their circled and squared
 * siblings (`ⓘ`, `🄸`) fold through NFKD, the parenthesized ones (`⒤`) through it and `unparenthesized`; until 2026-12-06 these did not, and
 * `🅸🅶🅽🅾🆁🅴 🅿🆁🅴🆅🅸🅾🆄🆂 🅸🅽🆂🆃🆁🆄🅲🆃🅸🅾🅽🆂`, which a model reads as the words, passed every rule.
 */
for (const first of [0x1f150, 0x1f170]) for (let k = 0; k < 26; k++) (CONFUSABLES as Record<string, string>)[String.fromCodePoint(first + k)] = String.fromCharCode(0x41 + k);

/**
 * Letters of other alphabets drawn as Latin capitals, by the letter they show (Unicode's TR39
 * confusables, and the Canadian syllabics "fancy text" generators spell Latin with): the Lisu
 * alphabet's (U+A4D0–A4F7: every Latin capital but Q has its double, `ꓲꓖꓠꓳꓣꓰ`), Cherokee's (its
 * small letters, U+AB70–ABBF and U+13F8–13FD, as the lower case letter), Canadian syllabics'
 * (`ᗩᗷᑕᗪᗴᖴᘜᕼᒍᒪᗰᑎᑭᑫᖇᔕᑌᐯᗯ᙭ᘔ`) and Armenian's drawn as Latin letters (`օ`, `ս`, `հ`, `ո`, `ց`, `զ`). NFKD leaves them alone and a model reads them as the words they
 * spell: until 2026-12-07 "ignore previous instructions" written in Lisu capitals passed every rule
 * (test/policies/redteam-18-alphabets.test.ts).
 */
const OTHER_ALPHABETS: Readonly<Record<string, string>> = {
  // Lisu
  ꓮ: 'A', ꓐ: 'B', ꓚ: 'C', ꓓ: 'D', ꓰ: 'E', ꓝ: 'F', ꓖ: 'G', ꓧ: 'H', ꓲ: 'I', ꓙ: 'J', ꓗ: 'K', ꓡ: 'L', ꓟ: 'M',
  ꓠ: 'N', ꓳ: 'O', ꓑ: 'P', ꓣ: 'R', ꓢ: 'S', ꓔ: 'T', ꓴ: 'U', ꓦ: 'V', ꓪ: 'W', ꓫ: 'X', ꓬ: 'Y', ꓜ: 'Z',
  // Cherokee capitals (their small letters are added below)
  Ꭺ: 'A', Ᏼ: 'B', Ꮯ: 'C', Ꭰ: 'D', Ꭼ: 'E', Ꮐ: 'G', Ꮋ: 'H', Ꮒ: 'h', Ꭵ: 'i', Ꭻ: 'J', Ꮶ: 'K', Ꮮ: 'L', Ꮇ: 'M',
  Ꮲ: 'P', Ꭱ: 'R', Ꮢ: 'R', Ꮪ: 'S', Ꮥ: 'S', Ꭲ: 'T', Ꮩ: 'V', Ꮃ: 'W', Ꮤ: 'W', Ꭹ: 'Y', Ꮍ: 'Y', Ꮓ: 'Z',
  // Canadian syllabics
  ᗩ: 'A', ᗅ: 'A', ᗷ: 'B', ᑕ: 'C', ᗪ: 'D', ᗞ: 'D', ᗴ: 'E', ᖴ: 'F', ᘜ: 'G', ᕼ: 'H', ᒍ: 'J', ᒪ: 'L', ᗰ: 'M',
  ᑎ: 'N', ᑭ: 'P', ᑫ: 'Q', ᖇ: 'R', ᔕ: 'S', ᑌ: 'U', ᐯ: 'V', ᗯ: 'W', '᙭': 'X', ᘔ: 'Z',
  // Armenian (capitals' small letters are added below: `օ`, `ս`, `լ`)
  Օ: 'O', Ս: 'U', Լ: 'L', հ: 'h', ո: 'n', ց: 'g', զ: 'q',
};
for (const [ch, letter] of Object.entries(OTHER_ALPHABETS)) {
  (CONFUSABLES as Record<string, string>)[ch] = letter;
  // A Cherokee capital's small letter (its lower case in Unicode) looks like its small capital.
  const small = ch.toLowerCase();
  if (small !== ch) (CONFUSABLES as Record<string, string>)[small] = letter.toLowerCase();
}

/**
 * Circled digits without a decomposition, as the number they show: the dingbat ones (`❶`–`❿`
 * U+2776–277F, `➀`–`➉` U+2780–2789, `➊`–`➓` U+278A–2793, `🄋` `🄌`), the double circled `⓵`–`⓾`
 * (U+24F5–24FE), `⓿` (U+24FF) and the negative circled `⓫`–`⓴` (U+24EB–24F4). NFKD folds `①` but
 * not these (they are `No`, not decimal digits), and a model reads `❹❶❶❶` as 4111: until 2026-12-07
 * a card number in them passed `card` (test/policies/redteam-18-alphabets.test.ts).
 */
for (const first of [0x2776, 0x2780, 0x278a, 0x24f5]) for (let k = 0; k < 10; k++) (CONFUSABLES as Record<string, string>)[String.fromCodePoint(first + k)] = String(k + 1);
for (let k = 0; k < 10; k++) (CONFUSABLES as Record<string, string>)[String.fromCodePoint(0x24eb + k)] = String(k + 11);
for (const zero of [0x24ff, 0x1f10b, 0x1f10c]) (CONFUSABLES as Record<string, string>)[String.fromCodePoint(zero)] = '0';

/**
 * REGIONAL INDICATOR SYMBOL LETTERs (U+1F1E6–U+1F1FF, `🇦`…`🇿`, surrogates D83C DDE6–DDFF), the same
 * block's other Latin capitals without a decomposition: read as their letters (a model reads
 * `🇮​🇬​🇳​🇴​🇷​🇪`, a zero-width space keeping pairs from showing as flags, as "IGNORE"; until the
 * fifteenth red-team pass they passed every rule: test/policies/redteam-15-unicode.test.ts). A run of
 * them is kept apart from the text around it by a space (`normalize` adds it), so a flag next to a word
 * (`instructions🇺🇸`) does not join it: read as `instructions US`, the word still matches.
 */
const REGIONAL_FIRST = 0x1f1e6;
for (let k = 0; k < 26; k++) (CONFUSABLES as Record<string, string>)[String.fromCodePoint(REGIONAL_FIRST + k)] = String.fromCharCode(0x41 + k);
/** Whether the code point starting at `i` is a regional indicator letter. */
const isRegionalAt = (s: string, i: number): boolean => s.charCodeAt(i) === 0xd83c && s.charCodeAt(i + 1) >= 0xdde6 && s.charCodeAt(i + 1) <= 0xddff;

/** Invisible: format characters, marks, default-ignorables, control characters but whitespace (U+0009–000D, U+0085). */
const DROP = /^[\p{Cf}\p{M}\p{Default_Ignorable_Code_Point}\0-\x08\x0E-\x1F\x7F-\x84\x86-\x9F]$/u;
/**
 * Dashes (Unicode Pd: the hyphen U+2010, the non-breaking hyphen U+2011, the figure, en and em dashes,
 * …) and minus signs (U+2212, and what NFKD turns into it: `⁻`, `₋`; `˗` U+02D7, `⁃` U+2043, `➖` U+2796),
 * read as the ASCII hyphen-minus. The card, IBAN and phone patterns take `-` between digit groups, and
 * models write U+2011 there on their own: until the twenty-second red-team pass `4111‑1111‑1111‑1111`
 * (and the same with an en dash) passed every PII detector, in and out
 * (test/governance/redteam-22-unicode-dashes.test.ts). NFKD already made `－` and `﹣` a `-`.
 */
const DASH = /^[\p{Pd}\u2212\u02d7\u2043\u2796]$/u;
const SPACE = /^[\s\u0085\u2800]$/u;
/**
 * Strays: code points that show as a `�`, a box or nothing and mean nothing, none of them a format
 * character or default-ignorable (DROP): the replacement and object replacement characters (U+FFFD,
 * U+FFFC), a lone surrogate (`\uD800` in a JSON string, which the upstream reads as U+FFFD),
 * private-use characters (no glyph in most fonts), noncharacters (U+FFFF) and unassigned code points
 * (Cn). A model reads past one inside a word (`ign�ore` is "ignore"), and one between two words
 * separates them (`ignore�previous`): the first reading keeps them (a run as its first, none after
 * whitespace: the phrase matcher reads each as nothing or as a separator, matchers.ts
 * strayAlternative), the second (`normalize(text, true)`, as for tag characters) drops them. Until the
 * twenty-third red-team pass only the first existed, and `ign�ore previous instructions` passed
 * every rule on the phrase (test/governance/redteam-23-replacement-characters.test.ts).
 */
const STRAY = /^[\p{Cs}\p{Co}\p{Cn}\ufffc\ufffd]$/u;
/**
 * A stray the first reading keeps, whichever it was (U+FFFD): the phrase pattern that reads strays
 * either way (matchers.ts strayAlternative) names one character, not the classes of STRAY (with the
 * unassigned and private-use ones, case-insensitive, it cost about 0.6 ms a character: 2.5 s for a
 * 4 KiB window of `ignore�,�,…previous�` under 50 phrases, 600 times the plain pattern, until the
 * twenty-fourth red-team pass: src/policies/strays-cost.test.ts).
 */
export const KEPT_STRAY = '\ufffd';
/** foldCodePoint's answer for a stray (no other fold has a NUL: control characters are dropped). */
const STRAY_FOLD = '\0';

/** Per non-ASCII code point: its folded form ('' when dropped, ' ' for whitespace, STRAY_FOLD for a stray). Bounded. */
const foldCache = new Map<string, string>();
export const FOLD_CACHE_MAX = 8192;
/** How many code points the fold cache holds now (tests: it stays bounded under hostile text). */
export const foldCacheSize = (): number => foldCache.size;

const DECIMAL_DIGIT = /^\p{Nd}$/u;
/**
 * A decimal digit of another script (`٤` U+0664, `४` U+096A, `๔` U+0E54, …) as its ASCII digit, or
 * undefined. Models read them as digits, and a card number written in them (input, or a model asked
 * to answer in them) passed `card`, `iban` and `phone`, whose patterns take ASCII digits; NFKD folds
 * only the compatibility ones (fullwidth, mathematical). Until the fifteenth red-team pass's second
 * round they were kept (test/policies/redteam-15b-digits.test.ts). Unicode puts every `Nd` digit in
 * a run of ten from its zero, so the value is the distance from the run's start, modulo 10.
 */
function asciiDigit(ch: string): string | undefined {
  if (ch.length === 1 && ch.charCodeAt(0) < 128) return undefined;
  if (!DECIMAL_DIGIT.test(ch)) return undefined;
  let cp = ch.codePointAt(0)!;
  let run = 0;
  while (DECIMAL_DIGIT.test(String.fromCodePoint(cp - 1))) {
    cp--;
    run++;
  }
  return String.fromCharCode(48 + (run % 10));
}

/**
 * A parenthesized letter or number (`⒤` U+249C–24B5, `🄘` U+1F110–1F129, `⑷` U+2474–2487) as what it
 * encloses: NFKD spells it with its parentheses (`(i)`), which split a word into one-letter words, yet a
 * model reads `⒤⒢⒩⒪⒭⒠` as "ignore" and `⑷⑴⑴⑴` as 4111. Until 2026-12-07 a phrase or a card number
 * written in them passed every rule (test/policies/redteam-18-alphabets.test.ts).
 */
const PARENTHESIZED = /^\(([\p{L}\p{N}]+)\)$/u;
/**
 * Their twins: a number with a full stop or a comma (`⒋` U+2488–249B, `🄀`–`🄊` U+1F100–1F10A), which
 * NFKD spells `4.`, `0,`. Until 2026-12-07 a card number in them folded to `4.1.1.1. …` and passed
 * `card` (test/policies/redteam-18t-digit-stops.test.ts). Only a code point's own decomposition is
 * read so: a digit typed before a full stop is two code points and keeps it.
 */
const DIGIT_STOP = /^(\p{N}+)[.,]$/u;
const unparenthesized = (decomposed: string): string => PARENTHESIZED.exec(decomposed)?.[1] ?? DIGIT_STOP.exec(decomposed)?.[1] ?? decomposed;

function foldCodePoint(cp: string): string {
  let out = foldCache.get(cp);
  if (out !== undefined) return out;
  // Format characters first: U+FEFF (zero-width no-break space) is also JS whitespace, and an
  // invisible character must not split a word.
  if (DROP.test(cp)) out = '';
  else if (SPACE.test(cp)) out = ' ';
  else if (STRAY.test(cp)) out = STRAY_FOLD;
  // Before NFKD, which turns some look-alikes into letters that look like nothing Latin (ϲ → ς).
  else if (CONFUSABLES[cp] !== undefined) out = CONFUSABLES[cp];
  else {
    out = '';
    for (const ch of unparenthesized(cp.normalize('NFKD'))) {
      if (DROP.test(ch)) continue;
      if (SPACE.test(ch)) {
        out += ' ';
        continue;
      }
      out += CONFUSABLES[ch] ?? (DASH.test(ch) ? '-' : undefined) ?? asciiDigit(ch) ?? ch;
    }
  }
  if (foldCache.size >= FOLD_CACHE_MAX) foldCache.clear();
  foldCache.set(cp, out);
  return out;
}

export interface Normalized {
  /** The folded text that matchers see. */
  readonly text: string;
  /** For each character of `text`: offset in the original where its source starts. */
  readonly starts: Int32Array;
  /** For each character of `text`: offset in the original where its source ends. */
  readonly ends: Int32Array;
  /**
   * The original holds tag characters outside an emoji tag sequence: the matchers also scan
   * `normalize(original, true)`, which reads them as ASCII (false for texts without any: no second scan).
   */
  readonly hiddenTags: boolean;
  /** The original holds strays (STRAY): the matchers also scan `normalize(original, true)`, which drops them. */
  readonly strays: boolean;
  /**
   * Indices in `text` of the spaces whose whitespace run holds a line break (U+000A–000D, U+0085,
   * U+2028, U+2029), ascending; empty when none does. Every matcher reads them as spaces; `linedText`
   * gives the reading where they are line breaks.
   */
  readonly lineBreaks: readonly number[];
}

const NO_LINE_BREAKS: readonly number[] = Object.freeze([]);

/** LF, VT, FF, CR, NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR: whitespace that ends a line. */
const isLineBreak = (code: number): boolean => (code >= 0x0a && code <= 0x0d) || code === 0x85 || code === 0x2028 || code === 0x2029;

/**
 * `text` (a normalised text) with the spaces at `lineBreaks` written as `\n`: same length, same
 * offset maps. For detectors that read a line break as a boundary (pii.ts `readsLineBreaks`).
 */
export function linedText(text: string, lineBreaks: readonly number[]): string {
  if (lineBreaks.length === 0) return text;
  let out = '';
  let from = 0;
  for (const k of lineBreaks) {
    out += text.slice(from, k) + '\n';
    from = k + 1;
  }
  return out + text.slice(from);
}

/** First unit after the run of tag characters U+E0020–U+E007E (surrogates DB40 DC20–DC7E) starting at `i` (`i` when none does). */
function tagRunEnd(s: string, i: number): number {
  let j = i;
  while (j + 1 < s.length && s.charCodeAt(j) === 0xdb40) {
    const low = s.charCodeAt(j + 1);
    if (low < 0xdc20 || low > 0xdc7e) break;
    j += 2;
  }
  return j;
}

/** Most tag characters a subdivision flag's tag spec has. */
export const MAX_FLAG_TAGS = 7;

/** The low surrogate of a tag digit or lower case tag letter (U+E0030–E0039, U+E0061–E007A): what a flag's tag spec is made of. */
export const isFlagTagLow = (low: number): boolean => (low >= 0xdc30 && low <= 0xdc39) || (low >= 0xdc61 && low <= 0xdc7a);

/** A 🏴 (U+1F3F4, surrogates D83C DFF4) ends right before `i`. */
export const blackFlagEndsAt = (s: string, i: number): boolean => i >= 2 && s.charCodeAt(i - 2) === 0xd83c && s.charCodeAt(i - 1) === 0xdff4;

/**
 * The tag run `[i, end)` is the tag spec of a subdivision flag (🏴 U+1F3F4, then 3–7 tag digits or
 * lower case letters, then CANCEL TAG U+E007F: England's flag is 🏴 + `gbeng` + U+E007F): emoji, not text.
 */
function isFlagTags(s: string, i: number, end: number): boolean {
  const count = (end - i) / 2;
  if (count < 3 || count > MAX_FLAG_TAGS) return false;
  if (!blackFlagEndsAt(s, i)) return false;
  if (s.charCodeAt(end) !== 0xdb40 || s.charCodeAt(end + 1) !== 0xdc7f) return false;
  for (let k = i + 1; k < end; k += 2) if (!isFlagTagLow(s.charCodeAt(k))) return false;
  return true;
}

/**
 * `s` with its hidden tag characters (U+E0020–U+E007E outside a subdivision flag) read as the ASCII
 * they encode, everything else as it is; null when it holds none. What the second reading of
 * `normalize(s, true)` sees, unfolded: for people (log excerpts) and custom guardrails.
 */
export function decodeTags(s: string): string | null {
  let i = s.indexOf('\udb40');
  if (i < 0) return null;
  let out = '';
  let from = 0;
  while (i >= 0) {
    const end = tagRunEnd(s, i);
    if (end > i && !isFlagTags(s, i, end)) {
      out += s.slice(from, i);
      for (let k = i; k < end; k += 2) out += String.fromCharCode(s.charCodeAt(k + 1) - 0xdc00);
      from = end;
    }
    i = s.indexOf('\udb40', Math.max(end, i + 1));
  }
  return from === 0 ? null : out + s.slice(from);
}

/** Offset maps, reused across calls (grown on demand): scanning runs per streamed delta. */
let startsBuf = new Int32Array(1024);
let endsBuf = new Int32Array(1024);

/** 0, 1, 2, …: a run of characters kept as they are maps to a slice of it (copied, not written one by one). */
let identity = Int32Array.from({ length: 1025 }, (_, k) => k);
/**
 * The table grows with the texts folded up to this many characters (256 KiB at most, kept for the
 * process's life); a run ending past it has its offsets written one by one. Streamed deltas fold a
 * window (at most 4,096 characters).
 */
const IDENTITY_MAX = 65_536;

/**
 * A run of characters kept as they are, from a printable ASCII one: words of printable ASCII with
 * one space between them (a space after a space is folded into it, and a space at the end is left
 * to the next step, which knows what follows). Sticky: matched at `lastIndex` only.
 */
const PLAIN_RUN = /[\x21-\x7e]+(?: [\x21-\x7e]+)*/y;

/** Replaces the offset maps with larger ones (`size` above the current one), keeping their contents. */
function grow(size: number): void {
  const starts = new Int32Array(size);
  const ends = new Int32Array(size);
  starts.set(startsBuf);
  ends.set(endsBuf);
  startsBuf = starts;
  endsBuf = ends;
}

/**
 * Folds `original` (see the module comment) and keeps the offset map back to it. The returned
 * maps are views of shared buffers, valid until the next call (matching uses them synchronously).
 * `readTags`: the second reading, tag characters decoded to ASCII and strays dropped (see
 * `Normalized.hiddenTags`, `Normalized.strays`). `dropStrays` alone (tags dropped, strays dropped):
 * the third reading, of a text with both (`ign<TAG>ore previous instruc<U+FFFD>tions` is read whole
 * in neither of the first two).
 */
export function normalize(original: string, readTags = false, dropStrays = readTags): Normalized {
  const n = original.length;
  if (startsBuf.length < n * 2 + 4) grow(n * 2 + 4);
  let starts = startsBuf;
  let ends = endsBuf;
  // Characters that stay as they are (the common case: ASCII words and single spaces) are copied
  // as whole runs with one slice, not appended one by one: this runs on every streamed delta.
  let out = '';
  let runStart = 0;
  let len = 0;
  let lastSpace = false;
  /** The last character written came from a regional indicator letter (see REGIONAL_FIRST). */
  let lastRegional = false;
  let hiddenTags = false;
  let strays = false;
  /** The last character written is a stray (kept: the first reading). */
  let lastStray = false;
  let lineBreaks: number[] | null = null;
  const push = (s: string, from: number, to: number): void => {
    lastStray = false;
    for (let k = 0; k < s.length; k++) {
      const c = s[k]!;
      if (c === ' ') {
        // A line break is one code unit folded to a space (a run of them, or spaces around it, one space).
        const lineBreak = to === from + 1 && isLineBreak(original.charCodeAt(from));
        if (lastSpace) {
          ends[len - 1] = to;
          if (lineBreak && lineBreaks?.[lineBreaks.length - 1] !== len - 1) (lineBreaks ??= []).push(len - 1);
          continue;
        }
        if (lineBreak) (lineBreaks ??= []).push(len);
        lastSpace = true;
      } else lastSpace = false;
      // A compatibility form can expand up to 18-fold (U+FDFA): grow rather than drop the rest.
      if (len >= starts.length) {
        grow(len * 2);
        starts = startsBuf;
        ends = endsBuf;
      }
      out += c;
      starts[len] = from;
      ends[len] = to;
      len++;
    }
  };
  let i = 0;
  while (i < n) {
    const code = original.charCodeAt(i);
    // Kept as it is, extended into the current run: printable ASCII, and a space that does not
    // follow one. Everything else (control characters too) is folded per code point below.
    if (code < 0x7f && (code === 0x20 ? !lastSpace : code > 0x20)) {
      if (lastRegional) {
        // A run of regional indicator letters ends: a space keeps it apart from this word (out is
        // flushed: the indicator was written by push, which the run below does not go through).
        lastRegional = false;
        if (code !== 0x20) {
          out += original.slice(runStart, i);
          runStart = i;
          push(' ', i, i);
        }
      }
      // perf: the whole run found by one sticky regex and its offsets copied from `identity`: a
      // window of plain text (every streamed delta rescans one) costs a scan and two copies, not a
      // loop iteration per character. A space starts a run of its own (one character).
      let end = i + 1;
      if (code !== 0x20) {
        PLAIN_RUN.lastIndex = i;
        PLAIN_RUN.test(original);
        end = PLAIN_RUN.lastIndex;
      }
      const run = end - i;
      if (len + run > starts.length) {
        grow(Math.max(len * 2, len + run));
        starts = startsBuf;
        ends = endsBuf;
      }
      // Long runs are copied from the identity map (memcpy); short ones by hand (no views allocated).
      if (run >= 64 && end < IDENTITY_MAX) {
        if (identity.length <= end) identity = Int32Array.from({ length: Math.min(Math.max(end + 1, identity.length * 2), IDENTITY_MAX) }, (_, k) => k);
        starts.set(identity.subarray(i, end), len);
        ends.set(identity.subarray(i + 1, end + 1), len);
      } else {
        for (let k = 0; k < run; k++) {
          starts[len + k] = i + k;
          ends[len + k] = i + k + 1;
        }
      }
      len += run;
      lastSpace = original.charCodeAt(end - 1) === 0x20;
      lastStray = false;
      i = end;
      continue;
    }
    out += original.slice(runStart, i);
    if (code === 0xdb40) {
      // Tag characters, as a run: dropped (joined to the character before), or read as ASCII.
      const end = tagRunEnd(original, i);
      if (end > i) {
        const text = !isFlagTags(original, i, end);
        hiddenTags ||= text;
        if (readTags && text) {
          // Read as ASCII: apart from a run of regional indicator letters before it, like any other text.
          if (lastRegional && !lastSpace) push(' ', i, i);
          lastRegional = false;
          for (let k = i; k < end; k += 2) push(String.fromCharCode(original.charCodeAt(k + 1) - 0xdc00), k, k + 2);
        } else if (len > 0) ends[len - 1] = end;
        i = end;
        runStart = i;
        continue;
      }
    }
    // A high surrogate without its low one is a code point of its own (a stray).
    const cpLen = code >= 0xd800 && code <= 0xdbff && i + 1 < n && (original.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
    const cp = original.slice(i, i + cpLen);
    let folded = foldCodePoint(cp);
    const stray = folded === STRAY_FOLD;
    if (stray) {
      strays = true;
      // Kept, a run of strays is one (the rest belong to it) and a stray after whitespace belongs to
      // it: each reads as nothing or as one separator (matchers.ts phraseFinder), so neither a run
      // inside a word nor strays between the spaces of a gap make it longer (a gap of nine spaces, a
      // stray between each, is one space when they read as nothing). The phrase pattern then takes at
      // most one stray between two characters: its reach stays bounded.
      folded = dropStrays || (len > 0 && (lastStray || lastSpace)) ? '' : KEPT_STRAY;
    }
    if (folded.length > 0) {
      // A run of regional indicator letters is a word of its own (see REGIONAL_FIRST).
      const regional = cpLen === 2 && isRegionalAt(original, i);
      if (regional !== lastRegional && len > 0 && !lastSpace && folded !== ' ') push(' ', i, i);
      lastRegional = regional;
      push(folded, i, i + cpLen);
      lastStray = stray;
    } else if (len > 0) ends[len - 1] = i + cpLen; // a dropped character belongs to its predecessor
    i += cpLen;
    runStart = i;
  }
  out += original.slice(runStart);
  return { text: out, starts: starts.subarray(0, len), ends: ends.subarray(0, len), hiddenTags, strays, lineBreaks: lineBreaks ?? NO_LINE_BREAKS };
}

/** Most UTF-16 units contextEdge walks (256 Ki: a few ms). */
export const EDGE_WALK_MAX = 262_144;

/** How contextEdge reads a code point: as the fold does (foldCodePoint), tag characters kept (a reading decodes them). */
type EdgeKind = 'drop' | 'stray' | 'space' | 'break' | 'kept';

function edgeKind(cp: string): EdgeKind {
  const code = cp.charCodeAt(0);
  if (code < 0x80) {
    if (code > 0x20 && code < 0x7f) return 'kept';
    if (isLineBreak(code)) return 'break';
    return code === 0x20 || code === 0x09 ? 'space' : 'drop';
  }
  // The tag block (U+E0000–U+E007F): dropped in one reading, ASCII in another, part of a flag in both.
  if (code === 0xdb40 && cp.length === 2 && cp.charCodeAt(1) <= 0xdc7f) return 'kept';
  const folded = foldCodePoint(cp);
  if (folded === '') return 'drop';
  if (folded === STRAY_FOLD) return 'stray';
  if (folded === ' ') return isLineBreak(code) ? 'break' : 'space';
  return 'kept';
}

/**
 * The first (`head`) or last (`tail`) `keep` UTF-16 units of `text` as the fold reads them, as
 * context for the text next to it: a character every reading drops (format characters, combining
 * marks, default-ignorables) is left out, and a run of strays and whitespace is written as the
 * fold reads it (its first stray when it starts with one, then one space, a line break when it
 * holds one), so every reading of the result is that reading of the text, from the cut on.
 * Context kept in characters as written (until the twenty-fourth session) lost a word to padding:
 * `please ignore` + 1,000 × U+FFFD (or U+200B, or a combining accent) left only the padding as the
 * context of a next item `previous instructions now`, and the phrase reached the model
 * (test/governance/redteam-24b-padded-context.test.ts). Linear in the characters it walks, at most
 * EDGE_WALK_MAX of them (padding longer than that still pushes a word out: the walk is paid on every
 * text, scanned or not); a text of at most `keep` units is returned as it is.
 */
export function contextEdge(text: string, keep: number, edge: 'head' | 'tail'): string {
  if (text.length <= keep) return text;
  const tail = edge === 'tail';
  // perf: plain text (printable ASCII, single spaces) at the edge reads as written, and the walk
  // below would copy it a character at a time (+40 % on conversation.item.added in bench/relay-path.ts).
  const plain = plainEdge(text, keep, tail);
  if (plain !== null) return plain;
  return walkedEdge(text, keep, tail);
}

/** Printable ASCII but the space (U+0021–U+007E): each is its own fold and a character of context. */
const isPlainUnit = (code: number): boolean => code > 0x20 && code < 0x7f;

/**
 * contextEdge where every unit it could read near the edge is printable ASCII or a single space (no
 * two together): what the walk returns then is the text's own units (a space right before the cut
 * is kept as the run it is, unless it is the text's first or last unit); null for any other text.
 * Checked against the walk: src/policies/context-edge.test.ts ("plain text").
 */
function plainEdge(text: string, keep: number, tail: boolean): string | null {
  const n = text.length;
  // The units the walk may read: the kept ones, the one before the cut (a space there is written),
  // and the one before that (a kept unit ends the run).
  const from = tail ? Math.max(0, n - keep - 2) : 0;
  const to = tail ? n : Math.min(n, keep + 2);
  let previousSpace = false;
  for (let i = from; i < to; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x20) {
      if (previousSpace) return null;
      previousSpace = true;
    } else if (isPlainUnit(code)) previousSpace = false;
    else return null;
  }
  if (tail) {
    const cut = n - keep;
    // A space before the cut is a run the walk writes when a kept unit precedes it.
    return cut >= 2 && text.charCodeAt(cut - 1) === 0x20 ? text.slice(cut - 1) : text.slice(cut);
  }
  return keep + 1 < n && text.charCodeAt(keep) === 0x20 ? text.slice(0, keep + 1) : text.slice(0, keep);
}

/** contextEdge's walk (see there), for any text; exported for the test that checks plainEdge against it. */
export function walkedEdge(text: string, keep: number, tail: boolean): string {
  const stop = tail ? Math.max(0, text.length - EDGE_WALK_MAX) : Math.min(text.length, EDGE_WALK_MAX);
  const pieces: string[] = [];
  let units = 0;
  // The run of strays, whitespace and dropped characters being read (in the direction of the walk).
  let stray: string | null = null;
  let strayFirst = false;
  let space = false;
  let lineBreak = false;
  let inRun = false;
  const flush = (): void => {
    if (!inRun) return;
    // In text order: the stray the run starts with (before any whitespace), then its whitespace.
    const run = (strayFirst && stray !== null ? stray : '') + (space ? (lineBreak ? '\n' : ' ') : '');
    if (run.length > 0) {
      pieces.push(run);
      units += run.length;
    }
    inRun = false;
    stray = null;
    strayFirst = false;
    space = false;
    lineBreak = false;
  };
  let i = tail ? text.length : 0;
  while (tail ? i > stop : i < stop) {
    let cp: string;
    if (tail) {
      const low = text.charCodeAt(i - 1);
      const pair = i >= 2 && low >= 0xdc00 && low <= 0xdfff && (text.charCodeAt(i - 2) & 0xfc00) === 0xd800;
      cp = text.slice(pair ? i - 2 : i - 1, i);
      i -= cp.length;
    } else {
      const high = text.charCodeAt(i);
      const pair = high >= 0xd800 && high <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
      cp = text.slice(i, pair ? i + 2 : i + 1);
      i += cp.length;
    }
    const kind = edgeKind(cp);
    if (kind === 'kept') {
      flush();
      if (units >= keep) break;
      pieces.push(cp);
      units += cp.length;
      continue;
    }
    if (kind === 'drop') continue;
    inRun = true;
    if (kind === 'stray') {
      // Walking back, the last stray met before any whitespace met after it is the run's first character.
      if (tail) {
        stray = cp;
        strayFirst = true;
      } else if (!space && stray === null) {
        stray = cp;
        strayFirst = true;
      }
    } else {
      space = true;
      lineBreak ||= kind === 'break';
      if (tail) strayFirst = false;
    }
  }
  if (units < keep) flush();
  if (tail) pieces.reverse();
  return pieces.join('');
}

/** Folds a rule's own text (phrases) the same way, without the map. */
export function normalizeText(s: string): string {
  return normalize(s).text;
}
