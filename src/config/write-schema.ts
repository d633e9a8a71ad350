import { writeFileSync } from 'node:fs';
import { configJsonSchema } from './json-schema.js';

// `npm run schema`: regenerates config/config.schema.json for editors (a test checks it is current).
writeFileSync(new URL('../../config/config.schema.json', import.meta.url), configJsonSchema() + '\n');
