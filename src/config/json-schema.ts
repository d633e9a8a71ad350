import { z } from 'zod';
import { configSchema } from './schema.js';

/** The config's JSON Schema (input side: what a user writes, defaults optional). */
export function configJsonSchema(): string {
  const schema = z.toJSONSchema(configSchema(), { io: 'input', unrepresentable: 'any' });
  return JSON.stringify({ ...schema, title: 'realtime-proxy configuration' }, null, 2);
}
