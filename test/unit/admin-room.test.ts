import { expect } from 'chai';
import { AdminRoomReporter, type ProvisioningEvent } from '../../src/matrix/adminRoom.ts';

class RecordingSender {
  readonly notices: { text: string; html: string }[] = [];
  failures = 0;
  async sendNotice(text: string, html: string): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('homeserver unreachable');
    }
    this.notices.push({ text, html });
  }
}

const created = (n: number): ProvisioningEvent => ({
  kind: 'created',
  userName: `user${n}@example.com`,
  matrixId: `@user${n}:example.org`,
  source: 'entra',
});

const options = { burstThreshold: 3, windowMs: 60_000, retryDelaysMs: [1, 1], redeliverAfterMs: 60_000 };

describe('admin room reporter', () => {
  it('posts one notice per event, in order, naming the user and the IdP', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, options);
    reporter.report(created(1));
    reporter.report({ kind: 'updated', userName: 'user1@example.com', matrixId: '@user1:example.org', changed: ['displayName', 'emails'] });
    await reporter.stop();
    expect(sender.notices.map((n) => n.text)).to.deep.equal([
      '✅ Created @user1:example.org (userName user1@example.com) [entra]',
      '✏️ Updated @user1:example.org (userName user1@example.com): displayName, emails',
    ]);
  });

  it('turns a burst into one digest with counts, failures listed first', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, { ...options, maxDigestLines: 2 });
    for (let i = 0; i < 5; i++) reporter.report(created(i));
    reporter.report({ kind: 'failed', userName: 'broken@example.com', reason: 'email held by @x:example.org' });
    await reporter.stop();
    expect(sender.notices).to.have.length(1);
    const digest = sender.notices[0]!.text.split('\n');
    expect(digest[0]).to.equal('Provisioning digest: 5 created, 1 failed');
    expect(digest[1]).to.match(/Failed to provision broken@example\.com: email held by @x:example\.org/);
    expect(digest.at(-1)).to.equal('… and 4 more');
  });

  it('shows every failure of a burst even beyond the digest length', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, { ...options, maxDigestLines: 1 });
    for (let i = 0; i < 4; i++) reporter.report({ kind: 'failed', userName: `u${i}`, reason: 'r' });
    await reporter.stop();
    expect(sender.notices[0]!.text.match(/Failed to provision/g)).to.have.length(4);
  });

  it('never throws from report() and retries a failing send', async () => {
    const sender = new RecordingSender();
    sender.failures = 2;
    const reporter = new AdminRoomReporter(sender, options);
    expect(() => reporter.report(created(1))).to.not.throw();
    await reporter.stop();
    expect(sender.notices).to.have.length(1);
  });

  it('keeps notices while the homeserver is down and posts them once it is back', async () => {
    const sender = new RecordingSender();
    sender.failures = 100;
    const reporter = new AdminRoomReporter(sender, options);
    reporter.report(created(1));
    reporter.report(created(2));
    await reporter.flush();
    expect(sender.notices).to.have.length(0);
    sender.failures = 0;
    await reporter.stop();
    expect(sender.notices.map((n) => n.text)).to.have.length(2);
    expect(sender.notices[0]!.text).to.include('@user1:example.org');
  });

  it('escapes user-supplied text in the HTML body', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, options);
    reporter.report({ kind: 'created', userName: '<script>alert(1)</script>' });
    await reporter.stop();
    expect(sender.notices[0]!.html).to.not.include('<script>');
    expect(sender.notices[0]!.html).to.include('&#60;script&#62;');
  });
});
