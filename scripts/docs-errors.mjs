// Writes docs/errors.md from the catalogue (run after `npm run build`; `npm run docs:errors` does both).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderErrorsDoc } from '../dist/errors/docs.js';

const out = fileURLToPath(new URL('../docs/errors.md', import.meta.url));
writeFileSync(out, renderErrorsDoc());
console.log(`wrote ${out}`);
