// scim2-tester (python-scim's conformance checker) against the real bridge and Synapse:
// discovery endpoints, then create/read/query/replace/patch/delete on every resource type
// the bridge publishes in /ResourceTypes. Every check must come back SUCCESS.

import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { runTool, startBridge, type ComplianceBridge } from './fixture.ts';

const RUNNER = fileURLToPath(new URL('./run_scim2_tester.py', import.meta.url));

interface Check {
  title: string;
  target: string | null;
  status: string;
  reason: string | null;
  resourceType: string | null;
  tags: string[];
  data: string | null;
}

const label = (c: Check): string =>
  `${c.resourceType ? `${c.resourceType}: ` : ''}${c.title}${c.target ? ` ${c.target}` : ''}`;

describe('scim2-tester', function () {
  let bridge: ComplianceBridge | undefined;
  let checks: Check[] = [];

  before(async function () {
    this.timeout(600_000);
    bridge = await startBridge('scim2-tester');
    const run = await runTool(bridge.tools.python, [RUNNER, bridge.scimUrl], { SCIM_TOKEN: bridge.token }, 540_000);
    if (run.code !== 0) throw new Error(`scim2-tester exited with ${run.code}:\n${run.stderr}${run.stdout}`);
    checks = (JSON.parse(run.stdout) as { results: Check[] }).results;
    const width = Math.max(...checks.map((c) => label(c).length));
    console.log(`  scim2-tester ran ${checks.length} checks against ${bridge.scimUrl}:`);
    for (const c of checks) console.log(`    ${label(c).padEnd(width)}  ${c.status}`);
    const byStatus = new Map<string, number>();
    for (const c of checks) byStatus.set(c.status, (byStatus.get(c.status) ?? 0) + 1);
    console.log(`  scim2-tester: ${[...byStatus].map(([status, n]) => `${n} ${status}`).join(', ')}`);
  });

  after(async function () {
    this.timeout(60_000);
    await bridge?.handles.stop();
  });

  it('checks the discovery endpoints', () => {
    const tags = new Set(checks.flatMap((c) => c.tags));
    expect([...tags]).to.include.members(['service-provider-config', 'resource-types', 'schemas']);
  });

  for (const type of ['User', 'Group']) {
    it(`checks the ${type} resource type: create, read, query, replace, patch, delete`, () => {
      const tags = new Set(checks.filter((c) => c.resourceType === type).flatMap((c) => c.tags));
      expect([...tags]).to.include.members(['crud:create', 'crud:read', 'crud:update', 'crud:delete', 'patch:add', 'patch:remove', 'patch:replace']);
    });
  }

  it('finds every check SUCCESS', () => {
    const failed = checks.filter((c) => c.status !== 'SUCCESS');
    if (failed.length > 0) {
      const lines = failed.map((c) => `${label(c)}: ${c.status}: ${c.reason ?? '(no reason)'}${c.data ? `\n      data: ${c.data}` : ''}`);
      expect.fail(`${failed.length} of ${checks.length} scim2-tester checks are not SUCCESS:\n  ${lines.join('\n  ')}`);
    }
  });
});
