// Mocha (12, on Node 24) traps unhandled promise rejections from test code and re-emits
// them on `process`, where with no listener they are silently dropped: a rejected
// promise nobody awaited would pass the run. This root-hook plugin (loaded with
// `require` in test/.mocharc.*.json) records them and fails the test during which they
// surfaced, naming the reason; one that surfaces after the last test fails the run.

const pending: unknown[] = [];

function describeReason(reason: unknown): string {
  return reason instanceof Error ? (reason.stack ?? reason.message) : String(reason);
}

process.on('unhandledRejection', (reason) => {
  pending.push(reason);
});

process.on('exit', (code) => {
  if (pending.length > 0 && code === 0) {
    process.stderr.write(`\nunhandled promise rejection(s) after the last test:\n${pending.map(describeReason).join('\n')}\n`);
    process.exitCode = 1;
  }
});

export const mochaHooks = {
  afterEach(): void {
    if (pending.length === 0) return;
    const reasons = pending.splice(0).map(describeReason);
    throw new Error(`unhandled promise rejection(s) during this test:\n${reasons.join('\n')}`);
  },
};
