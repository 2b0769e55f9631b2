import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import {
  AdminRoomReporter,
  MemoryNoticeOutbox,
  type ProvisioningEvent,
  type ReporterClock,
  type ReporterOptions,
} from '../../src/matrix/adminRoom.ts';
import { HomeserverError } from '../../src/provisioning/ports.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';

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

const hasLoneSurrogate = (s: string): boolean => /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);

/**
 * A homeserver that fails the way Synapse does: HTTP 500 for an event holding a lone
 * surrogate; chosen answers for notices containing a marker; everything fails while down.
 */
class FlakyHomeserver {
  readonly notices: { text: string; html: string }[] = [];
  readonly attempts: string[] = [];
  /** While true, every send fails with downStatus (0: unreachable). */
  down = false;
  downStatus = 0;
  readonly answers: { marker: string; status: number; errcode: string }[] = [];
  async sendNotice(text: string, html: string): Promise<void> {
    this.attempts.push(text);
    if (this.down) throw new HomeserverError(`HTTP ${this.downStatus}`, this.downStatus, undefined, true);
    if (hasLoneSurrogate(text) || hasLoneSurrogate(html)) throw new HomeserverError('Internal server error', 500, 'M_UNKNOWN', true);
    const answer = this.answers.find((a) => text.includes(a.marker));
    if (answer) throw new HomeserverError(`HTTP ${answer.status}`, answer.status, answer.errcode, answer.status >= 500);
    this.notices.push({ text, html });
  }
  get texts(): string[] {
    return this.notices.map((n) => n.text);
  }
}

const userOf = (text: string): string | undefined => /@user\d+/.exec(text)?.[0];

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
    expect(sender.texts[0]).to.match(/^⚠️ The homeserver was unreachable from \S+Z to \S+Z; 2 notices were delayed and follow$/);
    expect(sender.texts.slice(1).map((t) => t.match(/@user\d/)?.[0])).to.deep.equal(['@user1', '@user2']);
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

  it('renders how it was done, and whether the bridge retries a failure', async () => {
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, { ...options, burstThreshold: 10 });
    const bob = { userName: 'bob@example.com', matrixId: '@bob:example.org' };
    reporter.report({ kind: 'adopted', ...bob, source: 'entra' });
    reporter.report({ kind: 'disabled', ...bob, how: 'locked', source: 'entra' });
    reporter.report({ kind: 'deleted', ...bob, how: 'deactivated, not erased' });
    reporter.report({ kind: 'failed', ...bob, reason: 'the homeserver is unreachable', willRetry: true, source: 'entra' });
    reporter.report({ kind: 'failed', userName: 'carol@example.com', willRetry: true });
    reporter.report({ kind: 'drift', ...bob, reason: 'display name is "Bobby" on the homeserver, "Bob" in the IdP' });
    reporter.report({ kind: 'drift-resolved', ...bob, reason: 'display name' });
    await reporter.stop();
    expect(sender.texts).to.deep.equal([
      '📥 Adopted existing account @bob:example.org (userName bob@example.com) (via entra)',
      '🔒 Disabled (locked) @bob:example.org (userName bob@example.com) (via entra)',
      '🗑️ Deleted (deactivated, not erased) @bob:example.org (userName bob@example.com)',
      '⚠️ Failed to provision @bob:example.org (userName bob@example.com): the homeserver is unreachable; will retry (via entra)',
      '⚠️ Failed to provision carol@example.com (will retry)',
      '🔀 Drift on @bob:example.org (userName bob@example.com): display name is "Bobby" on the homeserver, "Bob" in the IdP',
      '🟰 Drift resolved on @bob:example.org (userName bob@example.com): display name',
    ]);
    expect(sender.notices[1]!.html).to.equal('🔒 Disabled (locked) <code>@bob:example.org</code> (userName bob@example.com) (via entra)');
    expect(sender.notices[5]!.html).to.include('display name is &#34;Bobby&#34; on the homeserver');
  });

  it('gathers refused requests per IdP over the window into one line each, never a notice each', async () => {
    const clock = new FakeClock();
    const sender = new RecordingSender();
    const reporter = new AdminRoomReporter(sender, { ...options, burstThreshold: 10, windowMs: 10_000, clock });
    const refused = (userName: string, reason: string, source: string): ProvisioningEvent => ({ kind: 'refused', userName, reason, source });
    reporter.report(refused('alice@example.com', 'userName is taken', 'entra'));
    reporter.report(created(1));
    clock.advance(2_000);
    reporter.report(refused('bob@example.com', 'email bob@example.com is held by @robert:example.org', 'entra'));
    reporter.report(refused('carol@example.com', 'userName is taken', 'okta'));
    reporter.report(refused('admin@example.com', '@admin:example.org is protected', 'entra'));
    clock.advance(7_000);
    await settle();
    expect(sender.texts, 'refusals wait for the end of the window').to.deep.equal([
      '✅ Created @user1:example.org (userName user1@example.com) (via entra)',
    ]);
    clock.advance(1_000);
    await settle();
    expect(sender.texts.slice(1)).to.deep.equal([
      '⛔ Refused 3 requests from entra: alice@example.com (userName is taken); ' +
        'bob@example.com (email bob@example.com is held by @robert:example.org); admin@example.com (@admin:example.org is protected)',
      '⛔ Refused a request for carol@example.com: userName is taken (via okta)',
    ]);

    for (let i = 0; i < 25; i++) reporter.report(refused(`u${i}@example.com`, 'userName is taken', 'entra'));
    clock.advance(10_000);
    await settle();
    expect(sender.texts).to.have.length(4);
    expect(sender.texts[3]).to.match(/^⛔ Refused 25 requests from entra: u0@example\.com \(userName is taken\); .* and 15 more$/);
    await reporter.stop();
  });

  it('replaces a lone surrogate the homeserver would refuse, and posts the ten notices after it', async () => {
    const homeserver = new FlakyHomeserver();
    const reporter = new AdminRoomReporter(homeserver, { ...options, burstThreshold: 20 });
    reporter.report({ kind: 'created', subject: 'group', userName: 'G \ud800 x', matrixId: '!room:example.org', source: 'entra' });
    for (let i = 0; i < 10; i++) reporter.report(created(i));
    await reporter.stop();
    expect(homeserver.texts).to.have.length(11);
    expect(homeserver.texts[0]).to.equal('✅ Created group "G \ufffd x" (room !room:example.org) (via entra)');
    expect(homeserver.notices[0]!.html).to.include('G \ufffd x');
    expect(homeserver.texts.slice(1).map(userOf)).to.deep.equal([...Array(10).keys()].map((i) => `@user${i}`));
  });

  it('drops a notice the homeserver refuses, without retrying it, and posts the later ones', async () => {
    const homeserver = new FlakyHomeserver();
    homeserver.answers.push({ marker: 'user1@', status: 413, errcode: 'M_TOO_LARGE' });
    const outbox = new MemoryNoticeOutbox();
    const reporter = new AdminRoomReporter(homeserver, { ...options, burstThreshold: 20, outbox });
    for (let i = 0; i < 4; i++) reporter.report(created(i));
    await reporter.stop();
    expect(homeserver.texts.map(userOf)).to.deep.equal(['@user0', '@user2', '@user3']);
    expect(homeserver.attempts.filter((t) => t.includes('user1@')), 'a refusal is not retried').to.have.length(1);
    expect(outbox.size).to.equal(0);
  });

  it('posts a plain fallback in place of a notice the homeserver fails on while it takes others', async () => {
    const homeserver = new FlakyHomeserver();
    homeserver.answers.push({ marker: 'user1@', status: 500, errcode: 'M_UNKNOWN' });
    const outbox = new MemoryNoticeOutbox();
    const reporter = new AdminRoomReporter(homeserver, { ...options, burstThreshold: 20, outbox });
    for (let i = 0; i < 4; i++) reporter.report(created(i));
    await reporter.stop();
    expect(homeserver.texts).to.have.length(4);
    expect(homeserver.texts.map(userOf)).to.deep.equal(['@user0', undefined, '@user2', '@user3']);
    expect(homeserver.texts[1]).to.match(
      /^A notice could not be posted here: the homeserver failed on it \(HTTP 500 M_UNKNOWN\)\. Its text is in the bridge's log under ref [0-9a-f]{8}\.$/,
    );
    expect(homeserver.texts[1]).to.match(/^[\x20-\x7e]+$/);
    expect(outbox.size).to.equal(0);
  });

  it('holds every notice while the homeserver fails on all of them, fallback included, and drops none', async () => {
    const homeserver = new FlakyHomeserver();
    homeserver.down = true;
    homeserver.downStatus = 500;
    const outbox = new MemoryNoticeOutbox();
    const reporter = new AdminRoomReporter(homeserver, { ...options, burstThreshold: 20, outbox });
    reporter.report(created(1));
    reporter.report(created(2));
    await reporter.flush();
    expect(outbox.size).to.equal(2);
    homeserver.down = false;
    await reporter.stop();
    expect(homeserver.texts.map(userOf)).to.deep.equal([undefined, '@user1', '@user2']);
    expect(homeserver.texts[0]).to.match(/^⚠️ The homeserver was unreachable from .*; 2 notices were delayed and follow$/);
    expect(outbox.size).to.equal(0);
  });

  it('tells the room how long the homeserver was away, then posts the held notices in order', async () => {
    const clock = new FakeClock();
    const homeserver = new FlakyHomeserver();
    const outbox = new MemoryNoticeOutbox();
    const reporter = new AdminRoomReporter(homeserver, {
      ...options,
      burstThreshold: 20,
      retryDelaysMs: [],
      redeliverAfterMs: 30_000,
      outbox,
      clock,
    });
    homeserver.down = true;
    reporter.report(created(1));
    clock.advance(0);
    await settle();
    expect(outbox.size, 'held in the outbox, not only in memory').to.equal(1);
    clock.advance(5_000);
    reporter.report(created(2));
    clock.advance(0);
    await settle();
    expect(outbox.size).to.equal(2);
    expect(homeserver.attempts, 'new events during an outage wait for the next try').to.have.length(1);
    clock.advance(25_000);
    await settle();
    expect(homeserver.attempts, 'tried again after redeliverAfterMs').to.have.length(2);
    homeserver.down = false;
    reporter.report(created(3));
    clock.advance(30_000);
    await settle();
    expect(homeserver.texts).to.deep.equal([
      '⚠️ The homeserver was unreachable from 1970-01-01T00:16:40Z to 1970-01-01T00:17:40Z; 3 notices were delayed and follow',
      '✅ Created @user1:example.org (userName user1@example.com) (via entra)',
      '✅ Created @user2:example.org (userName user2@example.com) (via entra)',
      '✅ Created @user3:example.org (userName user3@example.com) (via entra)',
    ]);
    expect(outbox.size).to.equal(0);
    reporter.report(created(4));
    clock.advance(0);
    await settle();
    expect(homeserver.texts.at(-1), 'back to posting straight away').to.include('@user4');
    await reporter.stop();
  });

  it('keeps a bounded number of held notices and says how many it had to drop', async () => {
    const homeserver = new FlakyHomeserver();
    homeserver.down = true;
    const outbox = new MemoryNoticeOutbox();
    const reporter = new AdminRoomReporter(homeserver, { ...options, burstThreshold: 1_000, retryDelaysMs: [], outbox });
    for (let i = 0; i < 205; i++) reporter.report(created(i));
    await reporter.flush();
    expect(outbox.size).to.equal(200);
    homeserver.down = false;
    await reporter.stop();
    expect(homeserver.texts[0]).to.match(
      /; 200 notices were delayed and follow; 5 notices could not be kept and are only in the bridge's log$/,
    );
    expect(homeserver.texts.slice(1).map(userOf)).to.deep.equal([...Array(200).keys()].map((i) => `@user${i + 5}`));
  });

  it('posts the notices an earlier run held, first thing after a restart', async () => {
    const clock = new FakeClock();
    const homeserver = new FlakyHomeserver();
    homeserver.down = true;
    const outbox = new MemoryNoticeOutbox();
    const before = new AdminRoomReporter(homeserver, { ...options, burstThreshold: 20, retryDelaysMs: [], outbox, clock });
    before.report(created(1));
    before.report(created(2));
    await before.stop();
    expect(outbox.size).to.equal(2);

    clock.time += 3_600_000;
    homeserver.down = false;
    const after = new AdminRoomReporter(homeserver, { ...options, burstThreshold: 20, outbox, clock });
    after.report(created(3));
    clock.advance(0);
    await settle();
    expect(homeserver.texts[0]).to.equal(
      '⚠️ Notices could not be posted from 1970-01-01T00:16:40Z to 1970-01-01T01:16:40Z ' +
        '(the homeserver was unreachable, then the bridge restarted); 2 notices were delayed and follow',
    );
    expect(homeserver.texts.slice(1).map(userOf)).to.deep.equal(['@user1', '@user2', '@user3']);
    expect(outbox.size).to.equal(0);
    await after.stop();
  });

  it('keeps held notices in the database across closing and reopening it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'msb-outbox-'));
    try {
      const file = path.join(dir, 'bridge.db');
      const homeserver = new FlakyHomeserver();
      homeserver.down = true;
      let store = await openSqliteStore(file);
      const before = new AdminRoomReporter(homeserver, { ...options, burstThreshold: 20, retryDelaysMs: [], outbox: store.notices });
      before.report(created(1));
      before.report(failed(2, 'the homeserver <refused> it'));
      await before.stop();
      await store.close();

      store = await openSqliteStore(file);
      const held = await store.notices.pending(10);
      expect(held.map((h) => h.notice.text)).to.deep.equal([
        '✅ Created @user1:example.org (userName user1@example.com) (via entra)',
        '⚠️ Failed to provision broken2@example.com: the homeserver <refused> it',
      ]);
      expect(held[1]!.notice.html).to.include('&#60;refused&#62;');
      expect(held[0]!.id).to.be.below(held[1]!.id);
      homeserver.down = false;
      const after = new AdminRoomReporter(homeserver, { ...options, burstThreshold: 20, outbox: store.notices });
      await after.stop();
      expect(homeserver.texts.slice(1)).to.deep.equal(held.map((h) => h.notice.text));
      expect(await store.notices.pending(10)).to.deep.equal([]);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the SQLite outbox hands notices back in the order they were added, and forgets removed ones', async () => {
    const store = await openSqliteStore(':memory:');
    try {
      const ids = await store.notices.add(
        [
          { text: 'a', html: '<p>a</p>' },
          { text: 'b', html: 'b' },
          { text: 'c', html: 'c' },
        ],
        '2025-01-01T00:00:00.000Z',
      );
      expect(ids).to.have.length(3);
      await store.notices.remove([ids[1]!]);
      const more = await store.notices.add([{ text: 'd', html: 'd' }], '2025-01-01T00:01:00.000Z');
      expect(more[0]).to.be.above(ids[2]!);
      const held = await store.notices.pending(10);
      expect(held.map((h) => h.notice.text)).to.deep.equal(['a', 'c', 'd']);
      expect(held[0]).to.deep.equal({ id: ids[0], notice: { text: 'a', html: '<p>a</p>' }, heldAt: '2025-01-01T00:00:00.000Z' });
      expect(await store.notices.pending(1)).to.have.length(1);
    } finally {
      await store.close();
    }
  });
});
