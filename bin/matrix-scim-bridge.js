#!/usr/bin/env node
// Runs the compiled bridge (npm run build) when there is one, else the TypeScript sources
// directly (Node 22.18+ strips the types itself).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli.js', import.meta.url);
await import(existsSync(compiled) ? compiled.href : new URL('../src/cli.ts', import.meta.url).href);
