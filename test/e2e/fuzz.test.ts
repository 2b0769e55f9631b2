// A small fuzz run (the generator of `npm run fuzz`, fixed seed, 300 requests) against the
// real bridge and Synapse: hostile bodies, filters, PATCH paths, query parameters, headers,
// raw HTTP framing and /Bulk, mixed with valid creates, updates and deletes. No request may
// get a 500 or 502, and afterwards every user of the store must exist, complete, on Synapse
// and every account made during the run must be a user of the store.

import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { checkConsistency, synapseBaseline, type ConsistencyReport } from '../../bench/lib/fuzzConsistency.ts';
import { runFuzz, summarize, type FuzzOutcome } from '../../bench/lib/fuzzRun.ts';
import { LogTap } from '../../bench/lib/logTap.ts';
import { homeserver, startBridge, workFile } from './fixture.ts';
import { AdminApi } from './helpers.ts';

const SEED = 7;
const REQUESTS = 300;

describe('Fuzz (smoke): hostile SCIM requests against the real bridge and Synapse', function () {
  this.timeout(120_000);
  let bridge: BridgeHandles | undefined;
  let admin: AdminApi;
  let baseline: Set<string>;
  let outcome: FuzzOutcome | undefined;
  let consistency: ConsistencyReport | undefined;
  const databasePath = (): string => workFile('fuzz.db');

  before(async function () {
    const hs = homeserver();
    bridge = await startBridge({ database: { path: databasePath() }, logging: { level: 'warn' } });
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
    // Accounts other suites made on this homeserver are not this run's business.
    baseline = await synapseBaseline(admin);
  });

  after(async function () {
    await bridge?.stop();
  });

  it(`answers ${REQUESTS} hostile requests (seed ${SEED}) with no 500 or 502, no hang, no polluted prototype`, async function () {
    const tap = new LogTap(workFile('fuzz-bridge.log'));
    tap.start();
    try {
      outcome = await runFuzz({ scimUrl: bridge!.scimUrl, token: homeserver().scimToken, seed: SEED, requests: REQUESTS, prefix: 'fzsmoke', tap });
    } finally {
      tap.stop();
    }
    const summary = summarize(outcome).join('\n');
    expect(outcome.requests).to.equal(REQUESTS);
    expect(outcome.serverErrors.map((i) => `#${i.index} ${i.method} ${i.target} → ${i.status}`), summary).to.deep.equal([]);
    expect(outcome.wrong503.map((i) => `#${i.index} ${i.method} ${i.target} → 503`), summary).to.deep.equal([]);
    expect(outcome.noAnswer.map((i) => `#${i.index} ${i.method} ${i.target}: ${i.failure}`), summary).to.deep.equal([]);
    expect(outcome.pollution, summary).to.deep.equal([]);
    expect(outcome.unhandled, summary).to.deep.equal([]);
  });

  it('leaves every store user complete on Synapse, and no Synapse account outside the store', async function () {
    if (!outcome) this.skip();
    consistency = await checkConsistency({ handles: bridge!, admin, databasePath: databasePath(), baseline });
    const summary = summarize(outcome!, consistency).join('\n');
    expect(consistency.storeUsers, 'the run made no users at all').to.be.greaterThan(10);
    expect(consistency.mismatches.map((m) => `${m.matrixId}: ${m.problem}`), summary).to.deep.equal([]);
    expect(consistency.openJournal.map((e) => `${e.action} ${e.resourceId}: ${e.lastError}`), summary).to.deep.equal([]);
  });
});
