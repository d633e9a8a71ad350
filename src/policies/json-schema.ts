import { z } from 'zod';
import { policyFileSchema } from './schema.js';

/** The policy file JSON Schema (input side: what an operator writes; defaults optional). */
export function policyJsonSchema(): string {
  const schema = z.toJSONSchema(policyFileSchema(), { io: 'input', unrepresentable: 'any' });
  return JSON.stringify({ ...schema, title: 'realtime-proxy policy file' }, null, 2);
}
