import type { SyncedAccount } from '../store/types.ts';
import type { AvatarSource, DesiredAccount } from './mapping.ts';
import type { AccountState, AccountWrite, DisablePolicy, DisabledState } from './ports.ts';

/**
 * What to write to an account, and what differs from the IdP's wish without being written.
 * Pure: the homeserver's state is an input (architecture.md: the homeserver is shared with
 * its operators). The rule: write what the IdP changed since the last successful write;
 * leave what an operator changed, and call it drift.
 */

/** A difference between what the IdP wants and what the homeserver holds. */
export interface Drift {
  field: DriftField;
  /** The homeserver's value, as shown to operators (also the key that a report is not repeated). */
  homeserver: string;
  /** The IdP's value, as shown to operators. */
  idp: string;
}

export type DriftField = 'displayName' | 'avatar' | 'emails' | 'phoneNumbers' | 'externalId' | 'active';

export const DRIFT_FIELDS: readonly DriftField[] = ['displayName', 'avatar', 'emails', 'phoneNumbers', 'externalId', 'active'];

/** Who wins when the IdP asks for an account an operator disabled outside the bridge. */
export type OperatorDisablePolicy = 'keep' | 'idp-wins';

export interface PlanInput {
  desired: DesiredAccount;
  /** The IdP's wish at the last successful write; undefined for a new account or an old record. */
  synced: SyncedAccount | undefined;
  current: AccountState | undefined;
  /** When `synced` is unknown: whether the IdP had the account active before this write. */
  previousActive?: boolean;
  password?: string;
  disablePolicy: DisablePolicy;
  operatorDisabled: OperatorDisablePolicy;
  /** This request itself says `active: true` (not merely kept it). */
  assertsActive: boolean;
  /** The mxc URI a URL photo was uploaded as, when that photo is the current one. */
  uploadedAvatar?: { source: string; mxc: string };
  /** Fields to write from the IdP's values whatever the homeserver holds (an operator's repair). */
  repair?: readonly DriftField[];
}

export interface AccountPlan {
  /** undefined: nothing to write. */
  write: AccountWrite | undefined;
  /** What differs after the write, not written because an operator changed it. */
  drift: Drift[];
  /** The account stays disabled on the homeserver although the IdP has it active. */
  keptDisabled: DisabledState[];
}

const avatarKey = (a: AvatarSource | null): string | null => (a === null ? null : a.kind === 'mxc' ? a.uri : a.url);

export function syncedOf(desired: DesiredAccount): SyncedAccount {
  return {
    displayName: desired.displayName,
    avatar: avatarKey(desired.avatar),
    emails: [...desired.emails],
    msisdns: [...desired.msisdns],
    externalId: desired.externalId,
    active: desired.active,
  };
}

function disabledStates(current: AccountState): DisabledState[] {
  const out: DisabledState[] = [];
  if (current.locked) out.push('locked');
  if (current.suspended) out.push('suspended');
  if (current.deactivated) out.push('deactivated');
  return out;
}

const POLICY_STATE: Record<DisablePolicy, DisabledState> = { lock: 'locked', suspend: 'suspended', deactivate: 'deactivated' };

export function policyState(policy: DisablePolicy): DisabledState {
  return POLICY_STATE[policy];
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x) => b.includes(x));

/** The IdP's change to a list, applied to the homeserver's list: entries an operator added stay. */
function applyListChange(current: readonly string[], before: readonly string[], after: readonly string[]): string[] {
  const removed = before.filter((x) => !after.includes(x));
  const kept = current.filter((x) => !removed.includes(x));
  return [...kept, ...after.filter((x) => !kept.includes(x))];
}

const show = (value: string | null | undefined): string => (value === null || value === undefined || value === '' ? '(none)' : `"${value}"`);
const showList = (list: readonly string[]): string => (list.length === 0 ? '(none)' : list.join(', '));

/** What the homeserver holds, read as if the IdP had wished it (for accounts the bridge never wrote). */
function syncedFromHomeserver(current: AccountState, active: boolean): SyncedAccount {
  return {
    displayName: current.displayName,
    avatar: current.avatarUrl,
    emails: current.emails,
    msisdns: current.msisdns,
    externalId: current.externalId ?? null,
    active,
  };
}

export function planAccount(input: PlanInput): AccountPlan {
  const { desired, current } = input;
  const base = { matrixId: desired.matrixId, localpart: desired.localpart };
  if (!current) return { write: creation(input, base), drift: [], keptDisabled: [] };

  const synced = input.synced ?? syncedFromHomeserver(current, input.previousActive ?? true);
  const repair = new Set(input.repair ?? []);
  const changed = (field: DriftField, idpChanged: boolean) => idpChanged || repair.has(field);
  const write: AccountWrite = { ...base, create: false };
  const keptDisabled: DisabledState[] = [];

  // Activity first: a deactivated account that stays deactivated takes no other write, since
  // writing 3PIDs or a password would undo part of what the operator's deactivation did.
  const disabled = disabledStates(current);
  const policy = policyState(input.disablePolicy);
  if (!desired.active && (synced.active || repair.has('active'))) {
    if (!current.deactivated && !disabled.includes(policy)) write.disable = input.disablePolicy;
  } else if (desired.active && disabled.length > 0) {
    const idpWins = repair.has('active') || (input.operatorDisabled === 'idp-wins' && input.assertsActive);
    // Re-enabling undoes what the bridge did (its policy's state); an operator's own lock or
    // deactivation is undone only when the operator let the IdP win.
    const enable = idpWins ? disabled : !synced.active ? disabled.filter((d) => d === policy) : [];
    if (enable.length > 0) write.enable = enable;
    keptDisabled.push(...disabled.filter((d) => !enable.includes(d)));
  }
  const frozen = current.deactivated && !write.enable?.includes('deactivated');

  if (!frozen) {
    // A null display name is the IdP having none, not asking to clear the Matrix one.
    if (
      desired.displayName !== null &&
      changed('displayName', desired.displayName !== synced.displayName) &&
      desired.displayName !== current.displayName
    ) {
      write.displayName = desired.displayName;
    }
    if (changed('avatar', avatarKey(desired.avatar) !== synced.avatar)) write.avatar = desired.avatar;
    const emailsChanged = changed('emails', !sameSet(desired.emails, synced.emails));
    const msisdnsChanged = changed('phoneNumbers', !sameSet(desired.msisdns, synced.msisdns));
    if (emailsChanged || msisdnsChanged) {
      const emails = repair.has('emails') ? desired.emails : emailsChanged ? applyListChange(current.emails, synced.emails, desired.emails) : current.emails;
      const msisdns = repair.has('phoneNumbers')
        ? desired.msisdns
        : msisdnsChanged
          ? applyListChange(current.msisdns, synced.msisdns, desired.msisdns)
          : current.msisdns;
      if (!sameSet(emails, current.emails) || !sameSet(msisdns, current.msisdns)) write.threepids = { emails, msisdns };
    }
    if (
      current.externalId !== undefined &&
      changed('externalId', desired.externalId !== synced.externalId) &&
      desired.externalId !== current.externalId
    ) {
      write.externalId = desired.externalId;
    }
    if (input.password !== undefined) write.password = input.password;
  }

  const drift = driftAfter(input, current, write, keptDisabled);
  const writes = Object.keys(write).some((k) => !['matrixId', 'localpart', 'create'].includes(k));
  return { write: writes ? write : undefined, drift, keptDisabled };
}

function creation(input: PlanInput, base: { matrixId: string; localpart: string }): AccountWrite {
  const { desired } = input;
  const write: AccountWrite = { ...base, create: true };
  if (desired.displayName !== null) write.displayName = desired.displayName;
  if (desired.avatar !== null) write.avatar = desired.avatar;
  if (desired.emails.length > 0 || desired.msisdns.length > 0) write.threepids = { emails: desired.emails, msisdns: desired.msisdns };
  if (desired.externalId !== null) write.externalId = desired.externalId;
  if (input.password !== undefined) write.password = input.password;
  if (!desired.active) write.disable = input.disablePolicy;
  return write;
}

/** What still differs from the IdP's wish once `write` is done. */
function driftAfter(input: PlanInput, current: AccountState, write: AccountWrite, keptDisabled: DisabledState[]): Drift[] {
  const { desired } = input;
  const drift: Drift[] = [];
  if (!('displayName' in write) && desired.displayName !== null && desired.displayName !== current.displayName) {
    drift.push({ field: 'displayName', homeserver: show(current.displayName), idp: show(desired.displayName) });
  }
  if (!('avatar' in write) && desired.avatar !== null) {
    const expected =
      desired.avatar.kind === 'mxc'
        ? desired.avatar.uri
        : input.uploadedAvatar?.source === desired.avatar.url
          ? input.uploadedAvatar.mxc
          : undefined;
    if (expected !== undefined && expected !== (current.avatarUrl ?? null)) {
      drift.push({ field: 'avatar', homeserver: show(current.avatarUrl), idp: show(avatarKey(desired.avatar)) });
    }
  }
  if (!write.threepids) {
    if (!sameSet(desired.emails, current.emails)) drift.push({ field: 'emails', homeserver: showList(current.emails), idp: showList(desired.emails) });
    if (!sameSet(desired.msisdns, current.msisdns)) {
      drift.push({ field: 'phoneNumbers', homeserver: showList(current.msisdns), idp: showList(desired.msisdns) });
    }
  }
  if (!('externalId' in write) && current.externalId !== undefined && desired.externalId !== current.externalId) {
    drift.push({ field: 'externalId', homeserver: show(current.externalId), idp: show(desired.externalId) });
  }
  if (desired.active && keptDisabled.length > 0) {
    drift.push({ field: 'active', homeserver: keptDisabled.join(' and '), idp: 'active' });
  } else if (!desired.active && !write.disable && !current.deactivated && !current.locked && !current.suspended) {
    drift.push({ field: 'active', homeserver: 'active', idp: 'disabled' });
  }
  return drift;
}

/** Says a drift in one line, for the admin room. */
export function describeDrift(d: Drift): string {
  const label: Record<DriftField, string> = {
    displayName: 'display name',
    avatar: 'avatar',
    emails: 'emails',
    phoneNumbers: 'phone numbers',
    externalId: 'external id',
    active: 'account',
  };
  if (d.field === 'active' && d.homeserver === 'missing') return 'the account no longer exists on the homeserver';
  return `${label[d.field]} is ${d.homeserver} on the homeserver, ${d.idp} in the IdP`;
}

/**
 * What is news in a drift check, given what was reported before (field → the homeserver's
 * value then): drift is reported once per value, and once more when it goes away.
 */
export function driftNews(
  reported: Readonly<Record<string, string>>,
  drift: readonly Drift[],
): { appeared: Drift[]; resolved: string[]; reported: Record<string, string> } {
  const now: Record<string, string> = {};
  for (const d of drift) now[d.field] = d.homeserver;
  return {
    appeared: drift.filter((d) => reported[d.field] !== d.homeserver),
    resolved: Object.keys(reported).filter((field) => !(field in now)),
    reported: now,
  };
}
