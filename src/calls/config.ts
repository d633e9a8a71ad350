import { z } from 'zod';
import { isLoopbackName } from '../server/http.js';
import { MAX_TRANSFER_URI_CHARS } from './transfer.js';

/** A webhook signing key shorter than this (in bytes) is refused (Standard Webhooks keys are 24 to 64 bytes). */
export const MIN_WEBHOOK_KEY_BYTES = 16;

/**
 * Why a `calls.corsAllowOrigins` entry can never equal a browser's `Origin` header, or null: it must
 * be `*` or an origin as browsers serialise it (lower-case scheme and host, no path, no trailing slash).
 */
export function corsOriginProblem(entry: string): string | null {
  // `null`: what a page opened from a file or a sandboxed iframe sends (the route trusts the bearer, not the origin).
  if (entry === '*' || entry === 'null') return null;
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return `"${entry}" is not an origin: write it as scheme://host[:port], e.g. https://app.example.com`;
  }
  // The URL standard gives a non-web scheme an opaque origin ("null"), yet browsers send it as
  // scheme://host: an extension's (chrome-extension://<id>), an app WebView's (capacitor://localhost).
  // Until 2026-12-07 (f704353 to this fix) such entries were refused at load
  // (test/calls/redteam-19p-cors-origins.test.ts).
  const opaque = url.origin === 'null' && url.host !== '' && url.pathname === '' && url.search === '' && url.hash === '' && url.username === '' && url.password === '';
  const origin = opaque ? `${url.protocol}//${url.host}` : url.origin;
  if (origin === 'null' || origin !== entry) return `"${entry}" is not an origin as a browser sends it: write ${origin === 'null' ? 'scheme://host[:port]' : origin}`;
  return null;
}

/**
 * Why a `calls.sip.webhookSecret` cannot be used, or null: after its optional `whsec_` prefix it must
 * be standard base64 (padding optional) of a key of at least MIN_WEBHOOK_KEY_BYTES bytes. Never
 * names the secret.
 */
export function webhookSecretProblem(secret: string): string | null {
  const raw = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  const bare = raw.replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(bare) || raw.length - bare.length > 2) return 'must be whsec_ followed by the base64 signing key';
  const key = Buffer.from(bare, 'base64');
  if (key.toString('base64').replace(/=+$/, '') !== bare) return 'is not valid base64 (after whsec_)';
  if (key.length < MIN_WEBHOOK_KEY_BYTES) return `holds a key of ${key.length} bytes (at least ${MIN_WEBHOOK_KEY_BYTES} are needed): is it complete?`;
  return null;
}

/**
 * Why a route's `notify.secret` cannot be used, or null: a Standard Webhooks secret with its `whsec_`
 * prefix. The prefix is required here (the incoming secret may omit it): without it the openai SDK's
 * `webhooks.unwrap` takes the secret's UTF-8 bytes as the key, not its base64 key, and the app would
 * refuse every announcement. Never names the secret.
 */
export function notifySecretProblem(secret: string): string | null {
  if (!secret.startsWith('whsec_')) return 'must be whsec_ followed by the base64 signing key (the form the openai SDK\'s webhooks.unwrap reads)';
  return webhookSecretProblem(secret);
}

/**
 * Why a route's `notify.url` cannot be used, or null: an absolute https URL without credentials, or
 * http to a loopback host; http elsewhere only with `allowHttp` (the announcement holds the call id,
 * which lets whoever reads it in transit learn of the call: the signature keeps it from being forged,
 * not from being read). Never quotes the URL (its query may hold a token).
 */
export function notifyUrlProblem(url: string, allowHttp: boolean): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not an absolute URL';
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return `has scheme ${parsed.protocol}, not https: or http:`;
  if (parsed.username !== '' || parsed.password !== '') return 'holds credentials (user:password@), which fetch refuses';
  // Hosts `http:` may name without `allowHttp`: the app on the proxy's own machine (or pod).
  if (parsed.protocol === 'http:' && !allowHttp && !isLoopbackName(parsed.hostname)) return 'is http: to a host that is not loopback';
  return null;
}

/**
 * A SIP routing rule's conditions (`to`, `header`; the header name compared case-insensitively, as
 * matching does) as one string: two rules with the same key match the same calls, so only the first
 * ever does (src/calls/sip.ts matchSipRoute).
 */
export function sipRouteConditionsKey(route: SipRouteConditions): string {
  return JSON.stringify(sipRouteConditions(route));
}

type SipRouteConditions = { to?: string | undefined; header?: { name: string; equals: string } | undefined };

/** A rule's conditions as `sipRouteConditionsKey` and `sipRouteKey` (sip.ts) serialise them. */
export function sipRouteConditions(route: SipRouteConditions): [string | null, [string, string] | null] {
  return [route.to ?? null, route.header ? [route.header.name.toLowerCase(), route.header.equals] : null];
}

/** Built per parse and dropped after (why: src/config/schema.ts). */
function build() {
  /** Where a route's accepted calls are announced to the tenant's app (src/calls/notify.ts). */
  const notifyTargetSchema = z
    .object({
      url: z.string().min(1).describe('The tenant app\'s webhook URL: https, or http to loopback (127.0.0.1, ::1, localhost) unless allowHttp. Redirects are not followed.'),
      secret: z
        .string()
        .refine((secret) => notifySecretProblem(secret) === null, { error: (issue) => notifySecretProblem(String(issue.input)) ?? 'invalid webhook secret' })
        .describe('The Standard Webhooks secret (whsec_…) the announcement is signed with; the app verifies it (openai SDK: client.webhooks.unwrap(body, headers, secret)). ${ENV} works here.'),
      allowHttp: z.boolean().default(false).describe('Allow an http: URL to a host that is not loopback (the call id then crosses the network unencrypted).'),
      waitForAppMs: z
        .number()
        .int()
        .min(0)
        .max(60_000)
        .default(5000)
        .describe(
          'How long the call answers nothing (turn detection\'s create_response kept off) while the app attaches: until the app\'s first session.update on the call took effect, at most this long from the call\'s governing, not at all once the announcement failed. 0: responses on as soon as the proxy governs the call.',
        ),
    })
    .strict();

  /** A SIP routing rule: the first rule whose conditions all match picks the tenant of an incoming call. */
  const sipRouteSchema = z
    .object({
      tenant: z.string().min(1).describe('Tenant id the call belongs to.'),
      to: z.string().min(1).optional().describe('Called number or SIP user (compared with the user part of the To header, e.g. +15551234567).'),
      header: z
        .object({ name: z.string().min(1), equals: z.string() })
        .strict()
        .optional()
        .describe('A SIP header (case-insensitive name) that must have exactly this value.'),
      session: z
        .record(z.string(), z.unknown())
        .default({})
        .describe('The session config the call is accepted with (e.g. model, instructions, audio.output.voice); the tenant policy applies to it first.'),
      notify: notifyTargetSchema
        .optional()
        .describe(
          'Announce each call this route accepted to the tenant\'s app: a Standard-Webhooks-signed realtime.call.incoming (OpenAI\'s shape: data.call_id, data.sip_headers) POSTed once the call is governed, so the app can attach its own sideband (?call_id=, its tenant key). Rejected calls are not announced.',
        ),
      transfer: z
        .object({
          allow: z
            .array(z.string().min(1).max(MAX_TRANSFER_URI_CHARS))
            .max(256)
            .describe(
              'Targets a call this route accepted may be transferred to (POST /v1/realtime/calls/{id}/refer, target_uri): tel:+<digits> (one number), tel:+<digits>* (numbers starting so), sip:<user>@<host>[:<port>] (one address), sip:<prefix>*@<host>[:<port>] (users starting so at exactly that host; sip:*@host for any; a phone-number prefix, sip:+1415555*@trunk, admits only + and at most 15 digits), sips: likewise; anything else beginning tel:, sip: or sips: (a URI with ;parameters or ?headers) is compared exactly. Separators (- . ( ) and spaces) in tel: numbers are dropped before comparing; a target the language cannot judge is refused unless listed exactly.',
            ),
        })
        .strict()
        .optional()
        .describe('Call transfer (SIP REFER) for the calls this route accepted: refused (403 transfer_not_allowed) to any target not on allow; without transfer, every transfer is refused.'),
    })
    .strict();

  const callsSchema = z
    .object({
      enabled: z
        .boolean()
        .default(false)
        .describe('Serve POST /v1/realtime/client_secrets and /v1/realtime/calls, govern every call over a proxy-owned sideband, and bind call ids to tenants.'),
      defaultSecretTtlSec: z.number().int().min(10).max(7200).default(600).describe('Expiry of a client secret whose request names none.'),
      maxSecretTtlSec: z.number().int().min(10).max(7200).default(600).describe('Longer requested expiries are lowered to this.'),
      maxLiveSecretsPerTenant: z
        .number()
        .int()
        .positive()
        .default(1000)
        .describe('Unexpired client secrets one tenant may hold, per proxy instance: each keeps its session config (up to maxBodyBytes) in the store until it expires.'),
      onCap: z
        .enum(['hangup', 'cancel'])
        .default('hangup')
        .describe('A call over its cost cap: its response is cancelled and the output audio cleared; hangup also ends the call at once, cancel ends it when a second response starts over the cap.'),
      leaseSec: z
        .number()
        .int()
        .min(3)
        .max(300)
        .default(15)
        .describe(
          'A governed call stays with the instance holding its sideband while that instance renews this lease (every third of it). A call whose lease lapses (its instance crashed or lost the store) gets a new sideband from any instance sharing the store, this one after a restart included: after a crash a call runs unmetered and unguarded for at most about this long.',
        ),
      onShutdown: z
        .enum(['hangup', 'handover'])
        .default('hangup')
        .describe(
          'What a shutting-down instance does with the calls it governs: hang them up, or hand them over to the next instance sharing the store that looks for them (within leaseSec/3, or a restarted one at its start); meanwhile they run unmetered and unguarded.',
        ),
      sidebandReadyTimeoutMs: z
        .number()
        .int()
        .positive()
        .default(5000)
        .describe(
          'A WebRTC call is answered (its SDP answer returned to the browser) only once the proxy\'s sideband is attached and has read session.created, so the browser cannot act on its data channel before the call is governed. A sideband not ready within this is ended with the call (502 upstream_unavailable).',
        ),
      bindingTtlSec: z.number().int().positive().default(7200).describe('How long a call id stays bound to its tenant, and the longest a call is governed: one still running when its binding expires is hung up (Realtime sessions last at most 60 minutes).'),
      upstreamTimeoutMs: z.number().int().positive().default(10_000).describe('Bound on each HTTP request to the upstream (mint, SDP, accept, hangup, refer).'),
      corsAllowOrigins: z
        // Compared with the browser's Origin exactly: an app URL (`https://app.example/`) or a path never
        // matched, and every preflight was refused without a word (until 2026-12-07).
        .array(z.string().min(1).refine((entry) => corsOriginProblem(entry) === null, { error: (issue) => corsOriginProblem(String(issue.input)) ?? 'not an origin' }))
        .default(['*'])
        .describe('Browser origins that may POST an SDP offer to /v1/realtime/calls (CORS; the route is authenticated by the bearer secret, never by cookies). Each is * or an origin exactly as a browser sends it (https://app.example.com: no path, no trailing slash, default port left out); anything else is refused when the config loads. [] turns CORS off.'),
      maxBodyBytes: z.number().int().positive().default(256 * 1024).describe('Largest request body (SDP offer, session JSON, webhook) the call routes accept.'),
      sip: z
        .object({
          webhookSecret: z
            .string()
            // A secret with no key (`whsec_`, a template whose variable was empty) or one that is not base64
            // decoded to an empty or truncated HMAC key, and deliveries forged with it verified (until 2026-12-05).
            .refine((secret) => webhookSecretProblem(secret) === null, { error: (issue) => webhookSecretProblem(String(issue.input)) ?? 'invalid webhook secret' })
            .optional()
            .describe('The OpenAI webhook signing secret (whsec_…); the webhook route is off without it.'),
          toleranceSec: z.number().int().positive().default(300).describe('A webhook older or newer than this (webhook-timestamp) is refused as a replay.'),
          maxBodyBytes: z
            .number()
            .int()
            .positive()
            .default(64 * 1024)
            .describe('Largest webhook body read (its signature can only be checked once it is complete); a larger one gets 413. Read only after the signature headers look valid.'),
          routes: z.array(sipRouteSchema).default([]),
          notifyDelivery: z
            .object({
              timeoutMs: z.number().int().positive().max(60_000).default(5000).describe('Bound on one attempt (connect, send, response headers); the response body is not read.'),
              attempts: z.number().int().min(1).max(10).default(4).describe('Attempts per announcement: a non-2xx answer, a timeout or a network error is retried, pausing retryPauseMs, then twice that, and so on.'),
              retryPauseMs: z.number().int().positive().max(60_000).default(1000).describe('The pause before the second attempt (doubled for each later one).'),
              maxPending: z
                .number()
                .int()
                .positive()
                .default(1000)
                .describe('Announcements being delivered or waiting to be retried, per process; one more is dropped (logged sip_notify_dropped, counted in rtproxy_calls_notifications_total{rtproxy_notify_outcome="dropped"}).'),
              tenantShare: z
                .number()
                .gt(0)
                .max(1)
                .optional()
                .describe(
                  'The fraction of maxPending one tenant\'s announcements may take (at least one; default: 0.5 when the routes announce to more than one tenant\'s apps, 1 with one). Past it that tenant\'s next announcement is dropped (sip_notify_dropped, reason tenant_share); other tenants\' are unaffected by its hanging app.',
                ),
            })
            .strict()
            .prefault({})
            .describe('Bounds on the announcements of routes with notify (src/calls/notify.ts).'),
        })
        .strict()
        .prefault({}),
    })
    .strict();
  return { sipRouteSchema, notifyTargetSchema, callsSchema };
}

type Built = ReturnType<typeof build>;

export const callsSchema = (): Built['callsSchema'] => build().callsSchema;

export type CallsConfig = z.infer<Built['callsSchema']>;
export type SipRoute = z.infer<Built['sipRouteSchema']>;
export type NotifyTarget = z.infer<Built['notifyTargetSchema']>;
export type TransferRule = NonNullable<SipRoute['transfer']>;
export type NotifyDelivery = CallsConfig['sip']['notifyDelivery'];
