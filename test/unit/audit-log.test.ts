import { expect } from 'chai';
import type { Log } from '../../src/log.ts';
import { AuditLog, auditLine } from '../../src/provisioning/auditLog.ts';
import type { EventSink, ProvisioningEvent } from '../../src/provisioning/events.ts';

function recorder() {
  const lines: { level: string; message: string }[] = [];
  const log: Log = {
    debug: (message) => lines.push({ level: 'debug', message }),
    info: (message) => lines.push({ level: 'info', message }),
    warn: (message) => lines.push({ level: 'warn', message }),
    error: (message) => lines.push({ level: 'error', message }),
  };
  const forwarded: ProvisioningEvent[] = [];
  const next: EventSink = { report: (event) => forwarded.push(event) };
  return { lines, forwarded, audit: new AuditLog(next, log) };
}

describe('The audit log of provisioning events', () => {
  it('logs one info line per action, naming the IdP token, the action, the user and the Matrix ID, and forwards the event', () => {
    const { lines, forwarded, audit } = recorder();
    const event: ProvisioningEvent = { kind: 'created', userName: 'alice.smith@example.com', matrixId: '@alice.smith:example.org', source: 'entra' };
    audit.report(event);
    expect(forwarded).to.deep.equal([event]);
    expect(lines).to.deep.equal([
      {
        level: 'info',
        message: 'audit: by="entra" action=created user="alice.smith@example.com" mxid=@alice.smith:example.org outcome="ok"',
      },
    ]);
  });

  it('says how, what changed (names only) and why, and logs a failure at warn', () => {
    const { lines, audit } = recorder();
    audit.report({ kind: 'updated', userName: 'bob', matrixId: '@bob:example.org', changed: ['displayName', 'password'], source: 'okta' });
    audit.report({ kind: 'disabled', userName: 'bob', matrixId: '@bob:example.org', how: 'locked', source: 'okta' });
    audit.report({ kind: 'refused', userName: 'root', reason: 'the account is protected', source: 'okta' });
    audit.report({ kind: 'failed', userName: 'carol', reason: 'the homeserver is down', willRetry: true, source: 'okta' });
    expect(lines.map((l) => l.level)).to.deep.equal(['info', 'info', 'info', 'warn']);
    expect(lines[0]?.message).to.include('changed=displayName,password outcome="ok"');
    expect(lines[1]?.message).to.include('action=disabled').and.include('how="locked"');
    expect(lines[2]?.message).to.include('outcome="refused" reason="the account is protected"');
    expect(lines[3]?.message).to.include('outcome="failed, will retry" reason="the homeserver is down"');
  });

  it('names a group and its room', () => {
    expect(auditLine({ kind: 'deleted', subject: 'group', userName: 'Sales', matrixId: '!room:example.org', source: 'entra' })).to.equal(
      'audit: by="entra" action=deleted group="Sales" room=!room:example.org outcome="ok"',
    );
  });

  it('quotes a userName so that it cannot forge another field', () => {
    const line = auditLine({ kind: 'created', userName: 'x" outcome="ok', source: 'entra' });
    expect(line).to.include('user="x\\" outcome=\\"ok"');
  });

  it('credits the reconciler with drift and the bridge with work that has no IdP request behind it', () => {
    expect(auditLine({ kind: 'drift', userName: 'bob', reason: 'locked on the homeserver' })).to.match(/^audit: by="reconciler" action=drift /);
    expect(auditLine({ kind: 'created', userName: 'bob' })).to.match(/^audit: by="bridge" action=created /);
  });

  it('still forwards the event when logging throws', () => {
    const forwarded: ProvisioningEvent[] = [];
    const broken: Log = { debug: () => {}, info: () => { throw new Error('disk full'); }, warn: () => {}, error: () => {} };
    new AuditLog({ report: (e) => forwarded.push(e) }, broken).report({ kind: 'created', userName: 'dave' });
    expect(forwarded).to.have.length(1);
  });
});
