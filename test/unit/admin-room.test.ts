import { expect } from 'chai';
import { AdminRoomReporter, type ProvisioningEvent, type ReporterClock, type ReporterOptions } from '../../src/matrix/adminRoom.ts';

class RecordingSender {
  readonly notices: { text: string; html: string }[] = [];
  attempts = 0;
  failures = 0;
  async sendNotice(text: string, html: string): Promise<void> {
    this.attempts++;
    if (this.failures > 0) {
      this.failures--;
      throw new Error('homeserver unreachable');
    }
    this.notices.push({ text, html });
  }
  get texts(): string[] {
    return this.notices.map((n) => n.text);
  }
}

/** Time that moves only when the test says so. */
class FakeClock implements ReporterClock {
  time = 1_000_000;
  #timers = new Map<number, { at: number; callback: () => void }>();
  #next = 1;
  now(): number {
    return this.time;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.time + ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  /** Moves time on by ms, running each timer that falls due on the way. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.time = due[1].at;
      due[1].callback();
    }
    this.time = end;
  }
}

/** Lets promise chains that never wait for real time (the fake sender) run to the end. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const created = (n: number): ProvisioningEvent => ({
  kind: 'created',
  userName: `user${n}@example.com`,
  matrixId: `@user${n}:example.org`,
  source: 'entra',
});

const failed = (n: number, reason = 'email held by @x:example.org'): ProvisioningEvent => ({
  kind: 'failed',
  userName: `broken${n}@example.com`,
  reason,
});

const options: ReporterOptions = { burstThreshold: 3, windowMs: 60_000, retryDelaysMs: [1, 1], redeliverAfterMs: 60_000 };

describe('admin room reporter', () => {
  it('posts one readable notice per event, in order, naming the user and the IdP', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, { ...options, burstThreshold: 10 });
    reporter.report({ kind: 'created', userName: 'Alice.Smith@example.com', matrixId: '@alice.smith:example.org', source: 'entra' });
    reporter.report({ kind: 'updated', userName: 'Alice.Smith@example.com', matrixId: '@alice.smith:example.org', changed: ['displayName', 'emails'] });
    reporter.report({ kind: 'disabled', userName: 'Alice.Smith@example.com', matrixId: '@alice.smith:example.org' });
    reporter.report({ kind: 'enabled', userName: 'Alice.Smith@example.com', matrixId: '@alice.smith:example.org' });
    reporter.report({ kind: 'deleted', userName: 'Alice.Smith@example.com', matrixId: '@alice.smith:example.org' });
    reporter.report({ kind: 'failed', userName: 'Bob@example.com', reason: 'userName is taken' });
    await reporter.stop();
    expect(sender.texts).to.deep.equal([
      '✅ Created @alice.smith:example.org (userName Alice.Smith@example.com) (via entra)',
      '✏️ Updated @alice.smith:example.org (userName Alice.Smith@example.com): displayName, emails',
      '🔒 Disabled @alice.smith:example.org (userName Alice.Smith@example.com)',
      '🔓 Re-enabled @alice.smith:example.org (userName Alice.Smith@example.com)',
      '🗑️ Deleted @alice.smith:example.org (userName Alice.Smith@example.com)',
      '⚠️ Failed to provision Bob@example.com: userName is taken',
    ]);
    expect(sender.notices[0]!.html).to.equal(
      '✅ Created <code>@alice.smith:example.org</code> (userName Alice.Smith@example.com) (via entra)',
    );
  });

  it('posts from its own loop without anyone calling flush', async () => {
    const clock = new FakeClock();
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, { ...options, clock });
    reporter.report(created(1));
    expect(sender.notices, 'report() does not send by itself').to.have.length(0);
    clock.advance(0);
    await settle();
    expect(sender.texts).to.deep.equal(['✅ Created @user1:example.org (userName user1@example.com) (via entra)']);
    await reporter.stop();
  });

  it('turns a burst into one digest with counts per kind', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, options);
    for (let i = 0; i < 3; i++) reporter.report(failed(i));
    for (let i = 0; i < 2_314; i++) reporter.report(created(i));
    for (let i = 0; i < 12; i++) reporter.report({ kind: 'updated', userName: `u${i}`, changed: ['title'] });
    await reporter.stop();
    expect(sender.notices).to.have.length(1);
    expect(sender.texts[0]!.split('\n')[0]).to.equal('Provisioning digest: 2,314 created, 12 updated, 3 failed');
  });

  it('lists failures first with their reasons, then other events up to the limit', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, { ...options, maxDigestLines: 3 });
    for (let i = 0; i < 5; i++) reporter.report(created(i));
    reporter.report(failed(1, 'email held by @x:example.org'));
    await reporter.stop();
    expect(sender.texts[0]!.split('\n')).to.deep.equal([
      'Provisioning digest: 5 created, 1 failed',
      '- ⚠️ Failed to provision broken1@example.com: email held by @x:example.org',
      '- ✅ Created @user0:example.org (userName user0@example.com) (via entra)',
      '- ✅ Created @user1:example.org (userName user1@example.com) (via entra)',
      '… and 3 more',
    ]);
    expect(sender.notices[0]!.html).to.match(/^<p><strong>Provisioning digest<\/strong>: 5 created, 1 failed<\/p><ul><li>⚠️ Failed/);
  });

  it('lists every failure of a burst even beyond the digest length', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, { ...options, maxDigestLines: 1 });
    for (let i = 0; i < 4; i++) reporter.report(failed(i));
    reporter.report(created(9));
    await reporter.stop();
    expect(sender.texts[0]!.match(/Failed to provision/g)).to.have.length(4);
    expect(sender.texts[0]).to.not.include('@user9');
    expect(sender.texts[0]!.split('\n').at(-1)).to.equal('… and 1 more');
  });

  it('splits a digest with thousands of failures into notices that each fit in a Matrix event', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, options);
    for (let i = 0; i < 3_000; i++) reporter.report(failed(i, `the homeserver refused: ${'x'.repeat(100)}`));
    await reporter.stop();
    expect(sender.notices.length).to.be.greaterThan(1);
    for (const n of sender.notices) expect(Buffer.byteLength(n.text) + Buffer.byteLength(n.html)).to.be.below(60_000);
    const listed = sender.texts.join('\n').match(/Failed to provision broken\d+@example\.com/g) ?? [];
    expect(new Set(listed).size).to.equal(3_000);
    expect(sender.texts[0]!.split('\n')[0]).to.equal('Provisioning digest: 3,000 failed');
    expect(sender.texts[1]!.split('\n')[0]).to.equal('Provisioning digest (continued)');
  });

  it('posts a digest every window during a long stream instead of waiting for it to end', async () => {
    const clock = new FakeClock();
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, { ...options, burstThreshold: 3, windowMs: 10_000, clock });
    // 10 events a second for 25 seconds.
    for (let tick = 0; tick < 250; tick++) {
      reporter.report(created(tick));
      clock.advance(100);
      await settle();
    }
    const digests = sender.texts.filter((t) => t.startsWith('Provisioning digest'));
    expect(digests.length, sender.texts.map((t) => t.split('\n')[0]).join(' | ')).to.be.within(2, 3);
    await reporter.stop();
    const counted = sender.texts.reduce((sum, t) => sum + Number(/Provisioning digest: ([\d,]+) created/.exec(t)?.[1]?.replace(/,/g, '') ?? 0), 0);
    const single = sender.texts.filter((t) => t.startsWith('✅')).length;
    expect(counted + single, 'every event is accounted for').to.equal(250);
  });

  it('posts events one by one when they arrive slower than the burst rate', async () => {
    const clock = new FakeClock();
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, { ...options, burstThreshold: 3, windowMs: 10_000, clock });
    for (let i = 0; i < 8; i++) {
      reporter.report(created(i));
      clock.advance(5_000);
      await settle();
    }
    await reporter.stop();
    expect(sender.texts).to.have.length(8);
    expect(sender.texts.every((t) => t.startsWith('✅ Created'))).to.equal(true);
  });

  it('holds a bounded number of events, counts the rest, and still lists failures past the bound', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, { ...options, maxDigestLines: 2 });
    for (let i = 0; i < 10_050; i++) reporter.report(created(i));
    reporter.report(failed(1, 'late failure'));
    await reporter.stop();
    expect(sender.notices).to.have.length(1);
    const lines = sender.texts[0]!.split('\n');
    expect(lines[0]).to.equal('Provisioning digest: 10,050 created, 1 failed');
    expect(lines[1]).to.equal('- ⚠️ Failed to provision broken1@example.com: late failure');
    expect(lines.slice(-2)).to.deep.equal(['… and 9,999 more', '50 events not shown (too many at once)']);
  });

  it('never throws from report() and retries a failing send', async () => {
    const sender = new RecordingSender();
    sender.failures = 2;
    const reporter = new AdminRoomReporter(sender, options);
    expect(() => reporter.report(created(1))).to.not.throw();
    await reporter.stop();
    expect(sender.attempts).to.equal(3);
    expect(sender.notices).to.have.length(1);
  });

  it('gives up quietly when the homeserver stays down, and posts the notices once it is back', async () => {
    const sender = new RecordingSender();
    sender.failures = 100;
    const reporter = new AdminRoomReporter(sender, options);
    reporter.report(created(1));
    reporter.report(created(2));
    await reporter.flush();
    expect(sender.notices).to.have.length(0);
    expect(sender.attempts, 'one try and two retries, then it stops trying').to.equal(3);
    sender.failures = 0;
    await reporter.stop();
    expect(sender.texts.map((t) => t.match(/@user\d/)?.[0])).to.deep.equal(['@user1', '@user2']);
  });

  it('survives a sender that throws instead of rejecting', async () => {
    const reporter = new AdminRoomReporter(
      {
        sendNotice: () => {
          throw new Error('not even a promise');
        },
      },
      { ...options, retryDelaysMs: [] },
    );
    expect(() => reporter.report(created(1))).to.not.throw();
    await reporter.stop();
  });

  it('escapes user-supplied text in the HTML body', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, options);
    reporter.report({ kind: 'failed', userName: '<script>alert(1)</script>', reason: '<b>&"\'', source: '<i>' });
    await reporter.stop();
    const html = sender.notices[0]!.html;
    expect(html).to.not.match(/<script|<b>|<i>/);
    expect(html).to.include('&#60;script&#62;alert(1)&#60;/script&#62;');
    expect(html).to.include('&#60;b&#62;&#38;&#34;&#39;');
    expect(sender.texts[0]).to.include('<script>alert(1)</script>');
  });

  it('does not let a userName fake extra lines in a digest or reorder text', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, options);
    reporter.report({ kind: 'created', userName: 'eve\n- ✅ Created @ceo:example.org\u202e' });
    for (let i = 0; i < 4; i++) reporter.report(created(i));
    await reporter.stop();
    const lines = sender.texts[0]!.split('\n');
    expect(lines).to.have.length(6);
    expect(lines[1]).to.equal('- ✅ Created eve\ufffd- ✅ Created @ceo:example.org\ufffd');
  });
});
