// After a fuzz run: does the homeserver hold what the store says, and nothing more? Every
// user the store holds as provisioned must exist on Synapse with the display name, 3PIDs and
// locked/deactivated state its SCIM document implies (by the bridge's own mapping), every
// deleted one must be deactivated, nothing may be left pending; and every Synapse account
// made since the run began must be a user of the store.

import { DatabaseSync } from 'node:sqlite';
import type { BridgeHandles } from '../../src/app.ts';
import { desiredAccount } from '../../src/provisioning/mapping.ts';
import type { UserRecord } from '../../src/store/types.ts';
import type { AdminApi, Json } from '../../test/e2e/helpers.ts';

export type DisablePolicy = 'lock' | 'suspend' | 'deactivate';

export interface ConsistencyOptions {
  handles: BridgeHandles;
  /** Synapse's admin API with a server admin's token. */
  admin: AdminApi;
  /** The bridge's SQLite file (read, read-only, for every user id and open journal entry). */
  databasePath: string;
  /** Synapse accounts that existed before the run (the bot, the bootstrap admin, other tests' users). */
  baseline: ReadonlySet<string>;
  disablePolicy?: DisablePolicy;
  /** Rounds of runJournal() at most while draining (default 60). */
  maxJournalRounds?: number;
  log?: (line: string) => void;
}

export interface Mismatch {
  matrixId: string;
  userId?: string;
  userName?: string;
  state?: string;
  problem: string;
}

export interface OpenJournalEntry {
  resourceId: string;
  action: string;
  attempts: number;
  lastError: string | null;
}

export interface ConsistencyReport {
  storeUsers: number;
  byState: Record<string, number>;
  synapseUsers: number;
  journalRounds: number;
  /** Entries still open after draining (group ones included). */
  openJournal: OpenJournalEntry[];
  mismatches: Mismatch[];
  ms: number;
}

const enc = encodeURIComponent;
const clip = (text: string, max = 120): string => (text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text);
const show = (value: unknown): string => clip(JSON.stringify(value) ?? 'undefined');
const sameSet = (a: readonly string[], b: readonly string[]): boolean => {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
};

/** Runs the journal until nothing is due (back-off skipped), or the rounds run out. */
export async function drainJournal(handles: BridgeHandles, maxRounds = 60): Promise<number> {
  let rounds = 0;
  for (; rounds < maxRounds; rounds++) {
    const handled = await handles.runJournal(new Date(Date.now() + 7 * 86_400_000));
    if (handled === 0) break;
  }
  return rounds;
}

function readDatabase(path: string): { userIds: string[]; journal: OpenJournalEntry[] } {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const userIds = db.prepare('SELECT id FROM users ORDER BY created').all().map((row) => String(row['id']));
    const journal = db
      .prepare('SELECT resource_id, action, attempts, last_error FROM journal ORDER BY id')
      .all()
      .map((row) => ({
        resourceId: String(row['resource_id']),
        action: String(row['action']),
        attempts: Number(row['attempts']),
        lastError: row['last_error'] === null ? null : String(row['last_error']),
      }));
    return { userIds, journal };
  } finally {
    db.close();
  }
}

/** Every account Synapse holds (deactivated and locked ones included: the list leaves locked ones out by default), by Matrix ID. */
async function synapseAccounts(admin: AdminApi): Promise<Map<string, Json>> {
  const accounts = new Map<string, Json>();
  let from = '0';
  for (let page = 0; page < 10_000; page++) {
    const res = await admin.request('GET', `/_synapse/admin/v2/users?from=${enc(from)}&limit=500&guests=false&deactivated=true&locked=true`);
    if (res.status !== 200) throw new Error(`GET admin users: HTTP ${res.status} ${res.text.slice(0, 300)}`);
    const users = Array.isArray(res.body['users']) ? (res.body['users'] as Json[]) : [];
    for (const u of users) accounts.set(String(u['name']), u);
    const next = res.body['next_token'];
    if (next === undefined || next === null || users.length === 0) break;
    from = String(next);
  }
  return accounts;
}

function threepidsOf(account: Json, medium: string): string[] {
  const list = account['threepids'];
  if (!Array.isArray(list)) return [];
  return (list as Json[]).filter((t) => t['medium'] === medium).map((t) => String(t['address']));
}

/** What is wrong with a provisioned user's account, compared with what its document implies. */
async function provisionedProblems(record: UserRecord, account: Json | undefined, admin: AdminApi, policy: DisablePolicy): Promise<string[]> {
  if (!account) return ['missing on Synapse'];
  const problems: string[] = [];
  const desired = desiredAccount(record.document, record.matrixId, record.active);
  const deactivated = account['deactivated'] === true;
  const locked = account['locked'] === true;
  const suspended = account['suspended'] === true;

  if (desired.active) {
    if (deactivated) problems.push('deactivated on Synapse, active in the store');
    if (locked) problems.push('locked on Synapse, active in the store');
    if (suspended) problems.push('suspended on Synapse, active in the store');
  } else {
    const expected = policy === 'lock' ? locked : policy === 'suspend' ? suspended : deactivated;
    if (!expected) problems.push(`not ${policy === 'lock' ? 'locked' : policy === 'suspend' ? 'suspended' : 'deactivated'} on Synapse, active: false in the store`);
    if (policy !== 'deactivate' && deactivated) problems.push('deactivated on Synapse, only disabled in the store');
  }
  if (deactivated && desired.active) return problems;

  if (desired.displayName !== null) {
    const profile = await admin.request('GET', `/_matrix/client/v3/profile/${enc(record.matrixId)}`);
    const shown = profile.status === 200 ? profile.body['displayname'] : account['displayname'];
    if (shown !== desired.displayName) problems.push(`display name ${show(shown)} on Synapse, ${show(desired.displayName)} implied by the store`);
  }
  const emails = threepidsOf(account, 'email');
  if (!sameSet(emails, desired.emails)) problems.push(`emails ${show(emails)} on Synapse, ${show(desired.emails)} implied by the store`);
  const msisdns = threepidsOf(account, 'msisdn');
  if (!sameSet(msisdns, desired.msisdns)) problems.push(`msisdns ${show(msisdns)} on Synapse, ${show(desired.msisdns)} implied by the store`);
  if (desired.avatar?.kind === 'mxc' && account['avatar_url'] !== desired.avatar.uri) {
    problems.push(`avatar ${show(account['avatar_url'])} on Synapse, ${show(desired.avatar.uri)} implied by the store`);
  }
  return problems;
}

export async function checkConsistency(options: ConsistencyOptions): Promise<ConsistencyReport> {
  const started = Date.now();
  const { handles, admin } = options;
  const policy = options.disablePolicy ?? 'lock';
  const journalRounds = await drainJournal(handles, options.maxJournalRounds ?? 60);
  const { userIds, journal } = readDatabase(options.databasePath);
  const openFor = new Map<string, OpenJournalEntry[]>();
  for (const entry of journal) openFor.set(entry.resourceId, [...(openFor.get(entry.resourceId) ?? []), entry]);

  const accounts = await synapseAccounts(admin);
  const mismatches: Mismatch[] = [];
  const byState: Record<string, number> = {};
  const inStore = new Set<string>();

  for (const id of userIds) {
    const record = await handles.store.getUserAnyState(id);
    if (!record) continue;
    byState[record.state] = (byState[record.state] ?? 0) + 1;
    inStore.add(record.matrixId);
    const where = { matrixId: record.matrixId, userId: record.id, userName: clip(record.userName, 80), state: record.state };
    const open = openFor.get(record.id) ?? [];
    const openNote = open.length > 0 ? ` (journal: ${open.map((e) => `${e.action} ×${e.attempts}: ${clip(e.lastError ?? 'no error yet', 200)}`).join('; ')})` : '';
    // Details from Synapse's own view of this one user (the list omits threepids).
    const detail = await admin.user(record.matrixId);
    if (detail && !accounts.has(record.matrixId)) mismatches.push({ ...where, problem: 'on Synapse, but not in its admin API user list' });
    switch (record.state) {
      case 'pending':
      case 'deleting':
        mismatches.push({ ...where, problem: `still ${record.state} after the journal was drained${openNote}` });
        break;
      case 'provisioned':
        for (const problem of await provisionedProblems(record, detail, admin, policy)) mismatches.push({ ...where, problem: `${problem}${openNote}` });
        break;
      case 'deleted':
        if (detail && detail['deactivated'] !== true) mismatches.push({ ...where, problem: `deleted in the store, not deactivated on Synapse${openNote}` });
        break;
    }
  }

  for (const [matrixId, account] of accounts) {
    if (options.baseline.has(matrixId) || inStore.has(matrixId)) continue;
    mismatches.push({
      matrixId,
      problem: `on Synapse (${account['deactivated'] === true ? 'deactivated' : 'active'}${account['locked'] === true ? ', locked' : ''}) but not in the store`,
    });
  }

  options.log?.(`consistency: ${userIds.length} store users, ${accounts.size} Synapse accounts, journal drained in ${journalRounds} rounds`);
  return { storeUsers: userIds.length, byState, synapseUsers: accounts.size, journalRounds, openJournal: journal, mismatches, ms: Date.now() - started };
}

/** Synapse's accounts now: the baseline a later check leaves out. */
export async function synapseBaseline(admin: AdminApi): Promise<Set<string>> {
  return new Set((await synapseAccounts(admin)).keys());
}
