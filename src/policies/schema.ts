import { z } from 'zod';
import { IdleTimer } from '../background/idle.js';
import { checkRegex } from './regex-safety.js';

/**
 * The schema of one policy file in `policies/` (YAML). `policies/policy.schema.json` is generated
 * from it for editors (`npx tsx src/policies/write-schema.ts`; a test keeps it current).
 */

/** Built when policies compile and released when compiling is over (below; why: src/config/schema.ts). */
function build() {
  const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'ids are 1-64 of [A-Za-z0-9_.-], starting with a letter or digit');

  const sourceSchema = z
    .enum(['input', 'output', 'tool_call', 'tool_output', 'image'])
    .describe('input: user speech transcripts and user text items; output: assistant transcripts and text; tool_call: function-call name and arguments from the model; tool_output: function_call_output items from the client; image: input_image data (size limits only).');

  const actionSchema = z
    .enum(['log', 'redact', 'block', 'cancel_response', 'end_session'])
    .describe('log: report only; redact: rewrite the matched text in the forwarded event; block: drop the event and tell the client; cancel_response: stop the response in flight; end_session: close with 4003.');

  const fallbackSchema = z.enum(['allow', 'log', 'block', 'cancel_response', 'end_session']);

  const regexEntry = z.union([
    z.string().min(1),
    z
      .object({
        pattern: z.string().min(1),
        flags: z.string().regex(/^[imsu]*$/, 'allowed flags: i, m, s, u').default(''),
      })
      .strict(),
  ]);

  const matchSchema = z
    .object({
      phrases: z.array(z.string().min(1)).optional().describe('Keywords or phrases, case-insensitive; whitespace inside a phrase matches any run of up to 8 characters that are neither letters nor digits (spaces, punctuation, symbols).'),
      wholeWords: z.boolean().default(true).describe('Phrases match whole words only (default true).'),
      regex: z.array(regexEntry).optional().describe('Regular expressions, screened at load against catastrophic backtracking (see policies/README.md).'),
      pii: z.array(z.string().min(1)).optional().describe('PII detector names: email, phone, card, iban, or a name from guardrails.piiDetectors.'),
      maxChars: z.number().int().positive().optional().describe('Trips when the text (or an image data URL) is longer than this.'),
      functions: z.array(z.string().min(1)).optional().describe('tool_call only: function names (a trailing * matches a prefix).'),
    })
    .strict();

  const ruleSchema = z
    .object({
      id,
      description: z.string().optional(),
      sources: z.array(sourceSchema).min(1),
      events: z.array(z.string().min(1)).optional().describe('Limit the rule to these event types (default: every event of its sources).'),
      match: matchSchema,
      action: actionSchema,
      replacement: z.string().optional().describe('Redaction text; {type} becomes the matcher (phrase, regex, email, card, …). Default from guardrails.defaults.'),
      logMatches: z.boolean().optional().describe('Log the matched text (default: the policy-wide logMatches, itself false).'),
    })
    .strict()
    .superRefine((r, ctx) => {
      const m = r.match;
      const spanMatchers = (m.phrases?.length ?? 0) + (m.regex?.length ?? 0) + (m.pii?.length ?? 0);
      if (spanMatchers === 0 && m.maxChars === undefined && (m.functions?.length ?? 0) === 0) {
        ctx.addIssue({ code: 'custom', path: ['match'], message: 'a rule needs at least one matcher (phrases, regex, pii, maxChars, functions)' });
      }
      if (r.action === 'redact' && spanMatchers === 0) {
        ctx.addIssue({ code: 'custom', path: ['action'], message: 'redact needs a matcher that finds text (phrases, regex or pii)' });
      }
      if (m.functions && !r.sources.includes('tool_call')) {
        ctx.addIssue({ code: 'custom', path: ['match', 'functions'], message: 'functions only applies to the tool_call source' });
      }
      if (r.sources.includes('image') && spanMatchers > 0) {
        ctx.addIssue({ code: 'custom', path: ['sources'], message: 'image rules can only use maxChars' });
      }
      m.regex?.forEach((entry, j) => {
        const [pattern, flags] = typeof entry === 'string' ? [entry, ''] : [entry.pattern, entry.flags];
        for (const problem of checkRegex(pattern, flags)) ctx.addIssue({ code: 'custom', path: ['match', 'regex', j], message: problem });
      });
    });

  const customSchema = z
    .object({
      id,
      module: z.string().min(1).describe('Path of a .ts/.js module relative to the policy file, exporting a defineGuardrail() result (default export or `guardrail`).'),
      export: z.string().min(1).optional().describe('Named export to use instead of the default export.'),
      sources: z.array(sourceSchema).min(1).optional().describe("Which texts it sees (default: the guardrail's own `wants`)."),
      mode: z
        .enum(['sync', 'blocking', 'parallel'])
        .default('sync')
        .describe('sync: must answer synchronously; blocking: may return a Promise and pauses that direction until it settles or times out; parallel: the frame passes at once and a late verdict is applied to the response afterwards.'),
      timeoutMs: z.number().int().positive().max(30_000).optional().describe('Deadline for an async verdict (default: guardrails.defaults.timeoutMs).'),
      onTimeout: fallbackSchema.optional().describe('Applied when the deadline passes (default: guardrails.defaults.onTimeout).'),
      onError: fallbackSchema.optional().describe('Applied when the guardrail throws or rejects (default: guardrails.defaults.onError).'),
      options: z.record(z.string(), z.unknown()).optional().describe('Passed to the guardrail as ctx.options.'),
    })
    .strict();

  const piiDetectorSchema = z
    .object({
      name: z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'detector names are lower-case [a-z0-9_]'),
      pattern: z.string().min(1),
      flags: z.string().regex(/^[imsu]*$/, 'allowed flags: i, m, s, u').default(''),
      validate: z.enum(['none', 'luhn', 'mod97']).default('none'),
      maxLength: z.number().int().positive().max(4096).default(64).describe('Longest text a match can span.'),
    })
    .strict()
    .superRefine((d, ctx) => {
      for (const problem of checkRegex(d.pattern, d.flags)) ctx.addIssue({ code: 'custom', path: ['pattern'], message: problem });
    });

  const guardrailsSchema = z
    .object({
      streamWindowChars: z.number().int().min(16).max(4096).default(128).describe('Characters of earlier deltas kept to match across delta boundaries (grown to the longest bounded match of any rule, plus 16).'),
      maxInputChars: z.number().int().min(256).max(1_000_000).default(1024).describe('Longest text one regex run sees; longer texts are scanned in windows of this size, the event loop yielded between them (the cost of one window bounds how long one event holds it).'),
      maxScanChars: z
        .number()
        .int()
        .min(1024)
        .max(100_000_000)
        .default(1_000_000)
        .describe('Longest text scanned in one event (bounds the event-loop time one frame can take); longer texts get overScanLimit.'),
      overScanLimit: z
        .enum(['block', 'pass_unscanned'])
        .default('block')
        .describe('A text over maxScanChars: block the event (guardrail_blocked, rule scan_limit), or relay it unscanned (logged as rule scan_limit).'),
      defaults: z
        .object({
          replacement: z.string().default('[REDACTED:{type}]'),
          timeoutMs: z.number().int().positive().max(30_000).default(50),
          onTimeout: fallbackSchema.default('log'),
          onError: fallbackSchema.default('log'),
        })
        .strict()
        .prefault({}),
      unknownContentEvents: z
        .enum(['pass', 'block'])
        .default('pass')
        .describe('An event type the content-path table does not know (or an item of an unknown type): pass it (default) or block it. Logged once per type per session (16 types) and counted either way.'),
      inputTranscriptionFailure: z
        .object({
          action: z
            .enum(['pass', 'block', 'end_session'])
            .optional()
            .describe('pass: the turn goes unchecked; block: the user item is deleted upstream and its response cancelled; end_session: close with 4003. Default pass, or block with holdSpokenInput (holding fails closed).'),
          timeoutMs: z.number().int().positive().max(600_000).optional().describe('Also apply `action` when no transcript (completed or failed) arrived this long after the audio was committed.'),
        })
        .strict()
        .prefault({})
        .describe('Fail closed on speech whose transcript failed or did not arrive: input rules cannot check it.'),
      holdSpokenInput: z
        .object({
          enabled: z.boolean().default(false).describe('Hold every spoken turn until its transcript passed the input rules: turn_detection.create_response is forced off and the proxy sends response.create itself.'),
          timeoutMs: z
            .number()
            .int()
            .min(100)
            .max(30_000)
            .default(5000)
            .describe('Longest wait for a held turn\'s transcript (and for a client response.create held behind it); then inputTranscriptionFailure.action applies.'),
        })
        .strict()
        .prefault({})
        .describe('Fail-closed input rules for speech: the model never answers a turn whose transcript broke an input rule (it is deleted upstream first). Adds the transcription time to every spoken turn. Needs locks.inputTranscription.'),
      rules: z.array(ruleSchema).default([]),
      custom: z.array(customSchema).default([]),
      piiDetectors: z.array(piiDetectorSchema).default([]),
    })
    .strict();

  const onViolation = z.enum(['rewrite', 'reject']);

  const instructionsLock = z
    .object({
      locked: z.string().optional().describe('The only instructions allowed; client changes are rewritten to this (or rejected).'),
      prefix: z.string().optional().describe('Instructions must start with this.'),
      suffix: z.string().optional().describe('Instructions must end with this.'),
      systemItems: z
        .enum(['lock', 'allow'])
        .default('lock')
        .describe(
          'System- and developer-role messages (conversation.item.create, response.input) instruct the model too. lock: they follow onViolation (rewrite makes them user messages, reject refuses them); allow: they pass.',
        ),
      onViolation: onViolation.default('rewrite'),
    })
    .strict();

  const modelLock = z
    .object({
      allow: z.array(z.string().min(1)).min(1).optional().describe('Models a session may use (the URL ?model=); others are refused before the upgrade.'),
      aliases: z.record(z.string(), z.string()).default({}).describe('Deprecated model → successor.'),
    })
    .strict();

  const allowLock = z
    .object({
      allow: z.array(z.string().min(1)).min(1),
      default: z.string().optional().describe('Value used when rewriting (default: the first allowed).'),
      onViolation: onViolation.default('rewrite'),
    })
    .strict();

  const modalitiesLock = z
    .object({
      allow: z.array(z.array(z.enum(['audio', 'text'])).min(1)).min(1).describe('Allowed output_modalities values, e.g. [[audio]] or [[audio], [text]].'),
      onViolation: onViolation.default('rewrite'),
    })
    .strict();

  const toolsLock = z
    .object({
      functions: z.array(z.string().min(1)).default([]).describe('Function tools a client may declare and the model may call (a trailing * matches a prefix).'),
      mcpServerUrls: z.array(z.string().url()).default([]).describe('MCP tools are allowed only for these server URLs (same origin, path prefix).'),
      requireApproval: z.enum(['always', 'never', 'client']).default('always').describe("Forced require_approval of MCP tools ('client' leaves it alone)."),
      onViolation: onViolation.default('rewrite'),
    })
    .strict();

  const toolChoiceLock = z
    .object({
      allow: z.array(z.enum(['auto', 'none', 'required', 'function', 'mcp'])).min(1),
      onViolation: onViolation.default('rewrite'),
    })
    .strict();

  const promptLock = z
    .object({
      id: z.string().min(1).optional().describe('The reusable prompt every session uses; a prompt outside the allowlist is rewritten to it.'),
      version: z.string().optional().describe('The version of `id` (absent: any version of `id`).'),
      allow: z
        .array(
          z
            .object({
              id: z.string().min(1),
              versions: z.array(z.string().min(1)).min(1).optional().describe('Allowed versions (absent: any version).'),
            })
            .strict(),
        )
        .optional()
        .describe('Further reusable prompts a client may choose (id and versions).'),
      onViolation: onViolation.default('rewrite'),
    })
    .strict()
    .superRefine((p, ctx) => {
      if (p.id === undefined && (p.allow?.length ?? 0) === 0) ctx.addIssue({ code: 'custom', path: [], message: 'set id or allow' });
      if (p.id === undefined && p.version !== undefined) ctx.addIssue({ code: 'custom', path: ['version'], message: 'version needs id' });
    });

  const tracingValue = z.union([
    z.literal('auto'),
    z.null(),
    z
      .object({
        workflow_name: z.string().optional(),
        group_id: z.string().optional(),
        metadata: z.record(z.string(), z.unknown()).optional(),
      })
      .strict(),
  ]);

  const tracingLock = z
    .object({
      value: tracingValue.describe("The tracing setting every session gets: 'auto', null (off) or a tracing config."),
      onViolation: onViolation.default('rewrite'),
    })
    .strict();

  const locksSchema = z
    .object({
      instructions: instructionsLock.optional(),
      model: modelLock.optional(),
      voice: allowLock.optional(),
      outputModalities: modalitiesLock.optional(),
      tools: toolsLock.optional(),
      toolChoice: toolChoiceLock.optional(),
      imageInput: z.boolean().optional().describe('false: input_image content (in items, response.input and prompt variables) is refused.'),
      prompt: promptLock.optional(),
      tracing: tracingLock.optional(),
      inputTranscription: z
        .object({
          model: z.string().min(1),
          language: z.string().optional(),
          prompt: z.string().optional().describe('Transcription prompt (vocabulary); a client cannot set its own.'),
        })
        .strict()
        .optional()
        .describe('Input transcription on, with this model, language and prompt (input guardrails read its transcripts; a client prompt or language could steer them).'),
    })
    .strict();

  const upstreamTruncationSchema = z.union([
    z.literal('auto'),
    z.literal('disabled'),
    z
      .object({
        type: z.literal('retention_ratio'),
        retention_ratio: z.number().gt(0).lte(1),
        token_limits: z.object({ post_instructions: z.number().int().positive().optional() }).strict().optional(),
      })
      .strict(),
  ]);

  const truncationSchema = z
    .object({
      upstream: upstreamTruncationSchema.optional().describe('The session.truncation setting forced on every session.'),
      budget: z
        .object({
          maxTokens: z.number().int().positive().describe('Hard context budget: when the estimated context exceeds it, the oldest items are deleted.'),
          targetRatio: z.number().gt(0).lte(1).default(0.75).describe('Prune down to this fraction of maxTokens.'),
          keepFirst: z.number().int().nonnegative().default(0).describe('Keep the first N items, oldest first while together within half the prune target.'),
          keepSystem: z.boolean().default(true).describe('Never delete the oldest system messages, as many as fit together in half of maxTokens × targetRatio (the first that does not fit ends it); the others are deleted like any item.'),
          keepLast: z.number().int().nonnegative().default(2).describe('Never delete the latest N items.'),
        })
        .strict()
        .optional(),
    })
    .strict();

  const policyFileSchema = z
    .object({
      $schema: z.string().optional(),
      name: z.string().optional().describe('Must equal the file name without extension when present.'),
      version: z.union([z.string(), z.number()]).optional().describe('Reported with every decision (default: a hash of the file).'),
      description: z.string().optional(),
      logMatches: z.boolean().default(false).describe('Allow matched text in logs (default false: rule ids only).'),
      guardrails: guardrailsSchema.prefault({}),
      locks: locksSchema.prefault({}),
      truncation: truncationSchema.prefault({}),
    })
    .strict()
    .superRefine((p, ctx) => {
      const detectors = new Set(['email', 'phone', 'card', 'iban', ...p.guardrails.piiDetectors.map((d) => d.name)]);
      const ids = new Set<string>();
      const checkId = (ruleId: string, path: (string | number)[]) => {
        if (ids.has(ruleId)) ctx.addIssue({ code: 'custom', path, message: `duplicate rule id "${ruleId}"` });
        ids.add(ruleId);
      };
      p.guardrails.rules.forEach((r, i) => {
        const at = (...rest: (string | number)[]) => ['guardrails', 'rules', i, ...rest];
        checkId(r.id, at('id'));
        r.match.pii?.forEach((name, j) => {
          if (!detectors.has(name)) ctx.addIssue({ code: 'custom', path: at('match', 'pii', j), message: `unknown PII detector "${name}" (known: ${[...detectors].join(', ')})` });
        });
      });
      p.guardrails.custom.forEach((c, i) => checkId(c.id, ['guardrails', 'custom', i, 'id']));
      const ins = p.locks.instructions;
      if (ins && ins.locked === undefined && ins.prefix === undefined && ins.suffix === undefined) {
        ctx.addIssue({ code: 'custom', path: ['locks', 'instructions'], message: 'set locked, prefix or suffix' });
      }
      if (ins && ins.locked !== undefined && (ins.prefix !== undefined || ins.suffix !== undefined)) {
        ctx.addIssue({ code: 'custom', path: ['locks', 'instructions'], message: 'locked excludes prefix/suffix' });
      }
      for (const key of ['voice'] as const) {
        const lock = p.locks[key];
        if (lock?.default !== undefined && !lock.allow.includes(lock.default)) {
          ctx.addIssue({ code: 'custom', path: ['locks', key, 'default'], message: 'default must be one of allow' });
        }
      }
      if (p.guardrails.holdSpokenInput.enabled && !p.locks.inputTranscription) {
        ctx.addIssue({
          code: 'custom',
          path: ['guardrails', 'holdSpokenInput', 'enabled'],
          message: 'holding spoken turns needs their transcripts: set locks.inputTranscription (the transcription model the proxy turns on)',
        });
      }
      const model = p.locks.model;
      if (model?.allow) {
        for (const [from, to] of Object.entries(model.aliases)) {
          if (!model.allow.includes(to)) ctx.addIssue({ code: 'custom', path: ['locks', 'model', 'aliases', from], message: `alias target "${to}" is not in allow` });
        }
      }
    });
  return { fallbackSchema, tracingValue, upstreamTruncationSchema, policyFileSchema };
}

type Built = ReturnType<typeof build>;

/**
 * Policies are compiled at start and on hot reloads, where files often change in bursts; building the
 * schema takes tens of ms on a busy core, so it is kept while compiles follow each other and released
 * once none has run for this long.
 */
const KEEP_MS = 10_000;
let kept: Built | null = null;
const release = new IdleTimer(KEEP_MS, () => (kept = null));

function schemas(): Built {
  kept ??= build();
  release.touch();
  return kept;
}

export const policyFileSchema = (): Built['policyFileSchema'] => schemas().policyFileSchema;

export type PolicyFile = z.infer<Built['policyFileSchema']>;
export type PolicyFileInput = z.input<Built['policyFileSchema']>;
export type PolicyRule = PolicyFile['guardrails']['rules'][number];
export type PolicyCustom = PolicyFile['guardrails']['custom'][number];
export type PolicyLocks = PolicyFile['locks'];
export type PolicyTruncation = PolicyFile['truncation'];
export type UpstreamTruncation = z.infer<Built['upstreamTruncationSchema']>;
export type TracingValue = z.infer<Built['tracingValue']>;
export type FallbackAction = z.infer<Built['fallbackSchema']>;
