// `scim test` of scim2-cli (the command line of python-scim) against the real bridge and
// Synapse: it discovers the server, runs scim2-tester's checks and exits 0 only when
// every one of them is SUCCESS.

import { expect } from 'chai';
import { runTool, startBridge, type ComplianceBridge } from './fixture.ts';

describe('scim2-cli `scim test`', function () {
  let bridge: ComplianceBridge | undefined;

  before(async function () {
    this.timeout(120_000);
    bridge = await startBridge('scim2-cli');
  });

  after(async function () {
    this.timeout(60_000);
    await bridge?.handles.stop();
  });

  it('exits 0: every check SUCCESS', async function () {
    this.timeout(600_000);
    if (!bridge) throw new Error('no bridge');
    // The token goes through the environment: other users can read command lines.
    const run = await runTool(
      bridge.tools.scimCli,
      ['--url', bridge.scimUrl, 'test'],
      { SCIM_CLI_HEADERS: `Authorization: Bearer ${bridge.token}` },
      540_000,
    );
    const output = `${run.stdout}${run.stderr}`.trimEnd();
    console.log(output.replace(/^/gm, '    '));
    // Each check is one line `<STATUS> <name>`, its reason indented below it.
    const failed: string[] = [];
    let inFailure = false;
    for (const line of output.split('\n')) {
      if (/^[A-Z]+ /.test(line)) inFailure = !line.startsWith('SUCCESS ');
      if (inFailure) failed.push(line);
    }
    expect(run.code, `scim test exited with ${run.code}; not SUCCESS:\n  ${failed.join('\n  ')}`).to.equal(0);
  });
});
