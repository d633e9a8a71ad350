/**
 * OpenAI's error messages can name the operator's organization and project (a rate limit: "… in
 * organization org-… on requests per min"). The proxy's tenants, and the browsers holding its client
 * secrets, are not the operator: those ids are replaced before an upstream answer is relayed to them.
 */
const ACCOUNT_ID = /\b(org|proj)([-_])[A-Za-z0-9]{6,}/g;

/** `text` with OpenAI organization (`org-…`) and project (`proj_…`) ids cut to their prefix. */
export function withoutAccountIds(text: string): string {
  return text.replace(ACCOUNT_ID, '$1$2…');
}
