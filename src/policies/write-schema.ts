import { writeFileSync } from 'node:fs';
import { policyJsonSchema } from './json-schema.js';

// `npx tsx src/policies/write-schema.ts`: regenerates policies/policy.schema.json for editors (a test checks it is current).
writeFileSync(new URL('../../policies/policy.schema.json', import.meta.url), policyJsonSchema() + '\n');
