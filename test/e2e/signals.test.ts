// The bridge as a service: started as its command-line program (a child process) against
// the real homeserver, it rotates the SCIM tokens on SIGHUP without stopping, writes one
// audit line per provisioning action, keeps homeserver transactions out of the INFO log,
// and stops cleanly on SIGTERM.

import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { homeserver, SERVER_NAME, workFile } from './fixture.ts';
import { ScimClient, waitFor } from './helpers.ts';

const OLD = 'signals-old-token-0123456789';
const NEW = 'signals-new-token-9876543210';
const BIN = new URL('../../bin/matrix-scim-bridge.js', import.meta.url).pathname;

describe('Signals and logs of the running bridge', () => {
  let child: ChildProcess | undefined;
  const lines: string[] = [];
  const exited = (): Promise<number | null> =>
    new Promise((resolve) => {
      if (!child || child.exitCode !== null || child.signalCode !== null) resolve(child?.exitCode ?? null);
      else child.once('exit', (code) => resolve(code));
    });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited();
    }
  });

  it('reloads the token files on SIGHUP, keeps running, audits each action and stops on SIGTERM', async () => {
    const hs = homeserver();
    const dir = workFile('signals');
    mkdirSync(dir, { recursive: true });
    const tokenFile = join(dir, 'idp.token');
    writeFileSync(tokenFile, `${OLD}\n`, { mode: 0o600 });
    const configFile = join(dir, 'config.yaml');
    const raw = hs.bridgeConfig({
      scim: { tokens: [{ name: 'test-idp', token: { file: tokenFile } }] },
      database: { path: join(dir, 'bridge.db') },
      logging: { level: 'info' },
    });
    writeFileSync(configFile, yaml.dump(raw), { mode: 0o600 });

    child = spawn(process.execPath, [BIN, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let pending = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      lines.push(...parts);
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const lineMatching = (pattern: RegExp, what: string) =>
      waitFor(
        () => {
          if (child?.exitCode !== null) throw new Error(`the bridge exited (${String(child?.exitCode)}): ${stderr}`);
          return lines.find((l) => pattern.test(l));
        },
        60_000,
        what,
      );

    const listening = await lineMatching(/SCIM API listening at (\S+);/, 'the bridge to start');
    const scimUrl = /SCIM API listening at (\S+);/.exec(listening)?.[1] ?? '';
    expect(listening).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z INFO \[Bridge\] /);
    const scim = new ScimClient(scimUrl, OLD);

    const created = await scim.post('/Users', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName: 'signals.alice',
      password: 'a-password-that-must-not-be-logged',
    });
    expect(created.status, created.text).to.equal(201);
    const audit = await lineMatching(/audit: .*action=created user="signals\.alice"/, 'the audit line of the create');
    expect(audit).to.include(`by="test-idp" action=created user="signals.alice" mxid=@signals.alice:${SERVER_NAME} outcome="ok"`);

    // Rotation: the new token works and the old one no longer does, without a restart.
    writeFileSync(tokenFile, `${NEW}\n`);
    child.kill('SIGHUP');
    const reloaded = await lineMatching(/SCIM tokens reloaded/, 'the reload line');
    expect(reloaded).to.match(/INFO \[Bridge\] SCIM tokens reloaded from their files: test-idp \(changed: test-idp\)$/);
    expect((await scim.get('/Users?count=1', { token: NEW })).status).to.equal(200);
    expect((await scim.get('/Users?count=1', { token: OLD })).status).to.equal(401);

    // An unreadable file keeps the token in use, and says why.
    rmSync(tokenFile);
    child.kill('SIGHUP');
    const kept = await lineMatching(/SCIM token test-idp kept as it was/, 'the kept line');
    expect(kept).to.match(/WARN .*cannot read the file .*idp\.token/);
    expect((await scim.get('/Users?count=1', { token: NEW })).status).to.equal(200);
    expect(child.exitCode).to.equal(null);

    const log = lines.join('\n');
    for (const secret of [OLD, NEW, 'a-password-that-must-not-be-logged', hs.registration.as_token, hs.registration.hs_token]) {
      expect(log).to.not.include(secret);
    }
    // Homeserver transactions (the admin room's events reach the bridge this way) are debug lines.
    expect(lines.filter((l) => / INFO /.test(l) && /transactions/.test(l))).to.deep.equal([]);

    child.kill('SIGTERM');
    expect(await exited()).to.equal(0);
    expect(lines.some((l) => /INFO \[Main\] SIGTERM: stopping/.test(l))).to.equal(true);
  });
});
