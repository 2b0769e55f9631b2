import { expect } from 'chai';
import { driftNews, planAccount, syncedOf, type PlanInput } from '../../src/provisioning/accountPlan.ts';
import type { DesiredAccount } from '../../src/provisioning/mapping.ts';
import type { AccountState } from '../../src/provisioning/ports.ts';

const bob = (over: Partial<DesiredAccount> = {}): DesiredAccount => ({
  matrixId: '@bob:hs',
  localpart: 'bob',
  displayName: 'Bob',
  avatar: null,
  emails: ['bob@example.com'],
  msisdns: [],
  externalId: null,
  active: true,
  ...over,
});

/** The homeserver holding exactly what the IdP wanted, changed by `over` (an operator). */
const held = (over: Partial<AccountState> = {}): AccountState => ({
  admin: false,
  deactivated: false,
  locked: false,
  suspended: false,
  displayName: 'Bob',
  avatarUrl: null,
  emails: ['bob@example.com'],
  msisdns: [],
  externalId: undefined,
  ...over,
});

const plan = (input: Partial<PlanInput> & { desired: DesiredAccount }) =>
  planAccount({ synced: syncedOf(bob()), current: held(), disablePolicy: 'lock', operatorDisabled: 'keep', assertsActive: false, ...input });

describe('What a write changes on an account the homeserver already holds', () => {
  it('creates a new account with everything the IdP gave, disabled if it says so', () => {
    const { write } = plan({ desired: bob({ active: false }), current: undefined, synced: undefined, password: 'pw' });
    expect(write).to.deep.include({ create: true, displayName: 'Bob', password: 'pw', disable: 'lock' });
    expect(write?.threepids).to.deep.equal({ emails: ['bob@example.com'], msisdns: [] });
  });

  it('writes nothing for an unrelated change, and never unlocks what an operator locked', () => {
    const result = plan({ desired: bob(), current: held({ locked: true }) });
    expect(result.write).to.equal(undefined);
    expect(result.drift).to.deep.equal([{ field: 'active', homeserver: 'locked', idp: 'active' }]);
  });

  it('leaves a deactivated account alone: no profile, 3PID or password write, and reports the difference', () => {
    const result = plan({ desired: bob({ displayName: 'Robert', emails: ['r@example.com'] }), current: held({ deactivated: true }), password: 'pw' });
    expect(result.write).to.equal(undefined);
    expect(result.drift.map((d) => d.field)).to.deep.equal(['displayName', 'emails', 'active']);
    expect(result.keptDisabled).to.deep.equal(['deactivated']);
  });

  it('keeps an operator\'s deactivation when the IdP says active:true, unless the operator let the IdP win', () => {
    const kept = plan({ desired: bob(), current: held({ deactivated: true }), assertsActive: true });
    expect(kept.write).to.equal(undefined);
    const won = plan({ desired: bob(), current: held({ deactivated: true }), assertsActive: true, operatorDisabled: 'idp-wins' });
    expect(won.write?.enable).to.deep.equal(['deactivated']);
    // idp-wins still needs the IdP to ask: an unrelated change does not reactivate.
    const unrelated = plan({ desired: bob(), current: held({ deactivated: true }), operatorDisabled: 'idp-wins' });
    expect(unrelated.write).to.equal(undefined);
  });

  it('undoes only its own disable when the IdP re-enables: an operator\'s suspension stays', () => {
    const result = plan({ desired: bob(), synced: syncedOf(bob({ active: false })), current: held({ locked: true, suspended: true }) });
    expect(result.write?.enable).to.deep.equal(['locked']);
    expect(result.keptDisabled).to.deep.equal(['suspended']);
  });

  it('disables with the configured policy, and does not lock an account an operator deactivated', () => {
    expect(plan({ desired: bob({ active: false }), disablePolicy: 'suspend' }).write?.disable).to.equal('suspend');
    expect(plan({ desired: bob({ active: false }), current: held({ deactivated: true }) }).write).to.equal(undefined);
  });

  it('keeps a name an operator set unless the IdP changes the name itself', () => {
    const renamed = held({ displayName: 'Bobby (ops)' });
    const unrelated = plan({ desired: bob(), current: renamed });
    expect(unrelated.write).to.equal(undefined);
    expect(unrelated.drift).to.deep.equal([{ field: 'displayName', homeserver: '"Bobby (ops)"', idp: '"Bob"' }]);
    expect(plan({ desired: bob({ displayName: 'Robert' }), current: renamed }).write?.displayName).to.equal('Robert');
  });

  it('applies the IdP\'s change to the homeserver\'s 3PID list, keeping an address an operator added', () => {
    const result = plan({
      desired: bob({ emails: ['bob@new.example'] }),
      current: held({ emails: ['bob@example.com', 'bob@ops.example'] }),
    });
    expect(result.write?.threepids).to.deep.equal({ emails: ['bob@ops.example', 'bob@new.example'], msisdns: [] });
  });

  it('repairs only the fields the operator asked for', () => {
    const current = held({ displayName: 'Bobby', emails: [] });
    const result = plan({ desired: bob(), current, repair: ['displayName'] });
    expect(result.write?.displayName).to.equal('Bob');
    expect(result.write?.threepids).to.equal(undefined);
    expect(result.drift.map((d) => d.field)).to.deep.equal(['emails']);
  });

  it('reads an account the bridge never wrote (adoption) as the starting point: what differs is written', () => {
    const result = plan({ desired: bob(), synced: undefined, current: held({ displayName: 'b', emails: [] }) });
    expect(result.write).to.deep.include({ displayName: 'Bob' });
    expect(result.write?.threepids?.emails).to.deep.equal(['bob@example.com']);
  });

  it('reports a drift once per value, and once when it goes away', () => {
    const drift = [{ field: 'displayName' as const, homeserver: '"X"', idp: '"Bob"' }];
    const first = driftNews({}, drift);
    expect(first.appeared).to.have.length(1);
    expect(driftNews(first.reported, drift).appeared).to.have.length(0);
    const changed = driftNews(first.reported, [{ field: 'displayName', homeserver: '"Y"', idp: '"Bob"' }]);
    expect(changed.appeared).to.have.length(1);
    expect(driftNews(first.reported, []).resolved).to.deep.equal(['displayName']);
  });
});
