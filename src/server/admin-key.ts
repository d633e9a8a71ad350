import { createHash, timingSafeEqual } from 'node:crypto';

const SHA256_HEX = /^[0-9a-f]{64}$/i;
const MIN_PLAIN_KEY_CHARS = 16;

export function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * The problem with a configured admin key, or null when it is usable: `sha256:` followed by 64
 * hex digits, or a plain key of at least 16 characters. Checked at boot (and by check-config) so
 * that a malformed hash cannot reach `timingSafeEqual` with a buffer of the wrong length.
 */
export function adminKeyProblem(key: string | undefined): string | null {
  // Unset or empty (an unset environment variable): the admin API is off.
  if (!key) return null;
  if (key.startsWith('sha256:')) {
    return SHA256_HEX.test(key.slice(7)) ? null : 'admin.key: "sha256:" must be followed by exactly 64 hex digits (the SHA-256 of the key)';
  }
  // A key read with its trailing newline (a Secret made from a file) never matches what a client can
  // send: every admin call was 401 until 2026-12-07 (test/ops/redteam-20-key-newline.test.ts).
  if (/[^\t\x20-\x7e\x80-\xff]|^\s|\s$/.test(key)) return 'admin.key: holds a line break, a control character or whitespace at an end: no client can send it (a value read with its trailing newline?)';
  return key.length >= MIN_PLAIN_KEY_CHARS ? null : `admin.key: a plain admin key must be at least ${MIN_PLAIN_KEY_CHARS} characters`;
}

/** Checks `Authorization: Bearer <key>` against the configured admin key in constant time. */
export class AdminKey {
  readonly #hash: Buffer;

  constructor(configured: string) {
    const problem = adminKeyProblem(configured);
    if (problem) throw new Error(problem);
    this.#hash = configured.startsWith('sha256:') ? Buffer.from(configured.slice(7), 'hex') : sha256(configured);
  }

  matches(authorization: string | undefined): boolean {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) return false;
    // Both sides are SHA-256 digests: equal lengths by construction.
    return timingSafeEqual(sha256(m[1]!), this.#hash);
  }
}
