// How the bridge's Node is started, for its memory: the launcher (matrix-scim-bridge.js)
// starts itself over with these unless the operator set them, and bench/reads.ts starts its
// measured server with them. Plain JavaScript, as the launcher.
//
// Measured by bench/reads.ts, serving 100k users under list load (RSS at peak):
// - V8 grows its young generation to 2 × 64 MiB under steady load; 16 MiB semi-spaces cut
//   the peak by ~80 MiB, for ~5–10% of the list rate in more frequent scavenges.
// - glibc gives each thread that allocates (V8's compiler and GC helpers, libuv) an arena of
//   its own, which keeps what was freed in it: two arenas cut ~10 MiB idle and ~15 at peak.
export const NODE_FLAGS = ['--max-semi-space-size=16'];
export const NODE_ENV = { MALLOC_ARENA_MAX: '2' };
