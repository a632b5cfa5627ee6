// Writes docs/openapi.json from the zod schemas of the admin and user APIs (README "Admin API").
// Usage: npm run openapi   (broker/test/openapi.test.ts fails while the committed file is out of date)
import { writeFileSync } from 'node:fs';
import { OPENAPI_FILE, openApiFileText } from '../broker/http/routes/openapi-document.js';

writeFileSync(OPENAPI_FILE, openApiFileText());
console.log(`wrote ${OPENAPI_FILE}`);
