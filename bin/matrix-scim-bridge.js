#!/usr/bin/env node
// The matrix-scim-bridge command. Plain JavaScript that any Node still around can parse
// (nothing newer than Node 20 here, no import of node:sqlite), so that an old Node is told
// which version to install instead of failing deep inside a dependency.
//
// It runs the compiled bridge (dist/, built by `npm run build` and on `npm pack`) when
// there is one, else the TypeScript sources directly (Node strips the types itself).
import { existsSync } from 'node:fs';
import Module from 'node:module';
import { fileURLToPath } from 'node:url';
import { NODE_ENV, NODE_FLAGS } from './node-flags.js';

const compiled = new URL('../dist/cli.js', import.meta.url);
const sources = new URL('../src/cli.ts', import.meta.url);
const useCompiled = existsSync(compiled);

// Oldest minor per major line: dist/ needs node:sqlite without a flag and with
// StatementSync.iterate (22.13, 23.4); the sources also need type stripping on by default
// (22.18, 23.6). Every later major has both.
const MINIMUM = useCompiled ? { 22: 13, 23: 4 } : { 22: 18, 23: 6 };
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || minor < (MINIMUM[major] ?? 0)) {
  const needed = major === 23 ? `23.${MINIMUM[23]}` : `22.${MINIMUM[22]}`;
  const hint = useCompiled ? '' : ' to run from its TypeScript sources (npm run build lowers that to 22.13)';
  process.stderr.write(
    `matrix-scim-bridge needs Node.js ${needed} or newer${hint}; found Node.js ${process.versions.node} (${process.execPath})\n`,
  );
  process.exit(1);
}
if (!useCompiled && (!existsSync(sources) || fileURLToPath(sources).split(/[\\/]/).includes('node_modules'))) {
  // Node never strips types under node_modules: an installed package must carry dist/.
  process.stderr.write('matrix-scim-bridge: this installed copy has no dist/ (it was packed without its prepack build)\n');
  process.exit(1);
}

// Heap sizes are fixed as V8 starts, malloc's arenas as the process starts: the bridge
// starts itself over (execve: same process id, nothing left behind) with the flags and
// environment of node-flags.js that the operator did not set (on the command line, in
// NODE_OPTIONS or in the environment). Only as the program itself (import.meta.main), on a
// Node with process.execve (22.15+); elsewhere it runs with Node's defaults.
const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map((arg) => arg.split('=')[0]);
const missingFlags = NODE_FLAGS.filter((flag) => !given.includes(flag.split('=')[0]));
const missingEnv = Object.entries(NODE_ENV).filter(([name]) => process.env[name] === undefined);
const restart = missingFlags.length > 0 || missingEnv.length > 0;
if (restart && import.meta.main && typeof process.execve === 'function' && process.platform !== 'win32') {
  process.execve(
    process.execPath,
    [process.execPath, ...process.execArgv, ...missingFlags, ...process.argv.slice(1)],
    { ...process.env, ...Object.fromEntries(missingEnv) },
  );
}

// DEP0060 (util._extend) comes from a dependency of matrix-appservice-bridge at load time
// and is nothing an operator can act on. Only that code is dropped; every other warning
// still reaches Node's own printer unchanged.
const emitWarning = process.emitWarning;
process.emitWarning = function (warning, ...rest) {
  const options = rest[0];
  const code =
    typeof options === 'object' && options !== null ? options.code : (rest[1] ?? (warning && warning.code));
  if (code === 'DEP0060') return;
  return emitWarning.call(process, warning, ...rest);
};

// The bridge never encrypts, yet the bot SDK loads the native Matrix crypto bindings at
// start-up; the real package fetches its binary from outside the npm registry on install,
// which may fail or be skipped (--ignore-scripts). The project's package.json overrides it
// with the stub in packages/no-e2ee-crypto, but overrides do not apply when this package is
// installed as a dependency, so the stub, shipped in the package, is also put in its place
// here, for that one module name only.
const CRYPTO = '@matrix-org/matrix-sdk-crypto-nodejs';
const cryptoStub = fileURLToPath(new URL('../packages/no-e2ee-crypto/index.js', import.meta.url));
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return resolveFilename.call(this, request === CRYPTO ? cryptoStub : request, ...rest);
};

await import((useCompiled ? compiled : sources).href);
