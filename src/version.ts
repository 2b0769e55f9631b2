import { readFileSync } from 'node:fs';

/** The bridge's version, from its package.json (one folder up from src/ and from dist/). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
