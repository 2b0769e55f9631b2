import type { ReconcileRequest, ReconcileResult, RepairField } from '../provisioning/reconciler.ts';
import { DRIFT_FIELDS } from '../provisioning/accountPlan.ts';
import { escapeHtml } from './noticeRender.ts';

/** How the bridge stands, for `!scim status`. */
export interface BridgeStatus {
  homeserver: { reachable: boolean; detail: string };
  users: number;
  groups: number;
  journal: { pending: number; oldestAgeSeconds: number | null };
  /** Room joins and kicks not done yet, member by member, and the groups they are in. */
  membership: { joins: number; kicks: number; groups: number };
  /** The last SCIM request of each IdP token since the bridge started. */
  lastRequests: { source: string; at: string }[];
}

/** One thing shown side by side: the IdP's (the bridge's store) and the homeserver's. */
export interface SideBySide {
  title: string;
  rows: { label: string; idp: string; homeserver: string }[];
  differences: string[];
}

/** What the console's commands may do; the composition root provides it. */
export interface ConsoleContext {
  version: string;
  status(): Promise<BridgeStatus>;
  reconcile(request: ReconcileRequest): Promise<ReconcileResult>;
  /** A user by userName, Matrix ID or SCIM id. */
  user(query: string): Promise<SideBySide | undefined>;
  /** A group by displayName or SCIM id. */
  group(query: string): Promise<SideBySide | undefined>;
  /** Runs the journal now, back-off included; returns how many entries it ran. */
  retry(): Promise<number>;
}

export interface Reply {
  text: string;
  html: string;
}

/** A command declared as data: what it is, and what it does with its arguments. */
interface Command {
  name: string;
  usage: string;
  summary: string;
  run(args: string[], context: ConsoleContext): Promise<Reply>;
}

export const PREFIX = '!scim';
/** Lines of a long answer that are listed; the rest are counted. */
const MAX_LINES = 30;
const REPAIRABLE: readonly RepairField[] = [...DRIFT_FIELDS, 'members'];

export function plain(text: string): Reply {
  return { text, html: escapeHtml(text) };
}

function listing(head: string, lines: string[]): Reply {
  const shown = lines.slice(0, MAX_LINES);
  const more = lines.length - shown.length;
  const tail = more > 0 ? [`… and ${more} more`] : [];
  return {
    text: [head, ...shown.map((l) => `- ${l}`), ...tail].join('\n'),
    html: `<p>${escapeHtml(head)}</p>${shown.length > 0 ? `<ul>${shown.map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>` : ''}${tail
      .map((t) => `<p>${escapeHtml(t)}</p>`)
      .join('')}`,
  };
}

function summary(result: ReconcileResult, repaired: readonly RepairField[]): Reply {
  const checked = `Checked ${result.users} users and ${result.groups} groups`;
  const stopped = result.incomplete ? ` (stopped early: ${result.incomplete})` : '';
  const did = repaired.length > 0 ? `; repaired ${repaired.join(', ')} where it differed` : '';
  const found = result.differences.length === 0 ? ': no differences' : `: ${result.differences.length} differences`;
  return listing(`${checked}${stopped}${did}${found}`, result.differences);
}

/** A side-by-side table (HTML) and aligned lines (text), then the differences. */
function sideBySide(view: SideBySide): Reply {
  const width = Math.max(...view.rows.map((r) => r.label.length));
  const text = [
    view.title,
    ...view.rows.map((r) => `${r.label.padEnd(width)}  IdP: ${r.idp} | homeserver: ${r.homeserver}`),
    view.differences.length === 0 ? 'No differences.' : `Differences:\n${view.differences.map((d) => `- ${d}`).join('\n')}`,
  ].join('\n');
  const cells = view.rows
    .map((r) => `<tr><td>${escapeHtml(r.label)}</td><td>${escapeHtml(r.idp)}</td><td>${escapeHtml(r.homeserver)}</td></tr>`)
    .join('');
  const html =
    `<p><strong>${escapeHtml(view.title)}</strong></p>` +
    `<table><tr><th></th><th>IdP (the bridge's store)</th><th>homeserver</th></tr>${cells}</table>` +
    (view.differences.length === 0
      ? '<p>No differences.</p>'
      : `<p>Differences:</p><ul>${view.differences.map((d) => `<li>${escapeHtml(d)}</li>`).join('')}</ul>`);
  return { text, html };
}

function age(seconds: number | null): string {
  if (seconds === null) return '';
  if (seconds < 120) return `, oldest ${Math.round(seconds)} s`;
  if (seconds < 7200) return `, oldest ${Math.round(seconds / 60)} min`;
  return `, oldest ${Math.round(seconds / 3600)} h`;
}

function statusReply(status: BridgeStatus, version: string): Reply {
  const lines = [
    `homeserver: ${status.homeserver.reachable ? 'reachable' : 'UNREACHABLE'} (${status.homeserver.detail})`,
    `users: ${status.users}, groups: ${status.groups}`,
    `journal: ${status.journal.pending} entries pending${age(status.journal.oldestAgeSeconds)}`,
    `room work pending: ${status.membership.joins} joins and ${status.membership.kicks} kicks in ${status.membership.groups} groups`,
    status.lastRequests.length === 0
      ? 'no SCIM request since the bridge started'
      : `last SCIM request: ${status.lastRequests.map((r) => `${r.source} at ${r.at}`).join('; ')}`,
  ];
  return listing(`matrix-scim-bridge ${version}`, lines);
}

/** Parses `--repair a,b` or `--apply` (every field, members too). */
function repairOf(args: string[]): RepairField[] | string {
  let repair: RepairField[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--apply') {
      repair = [...REPAIRABLE];
      continue;
    }
    if (args[i] !== '--repair') return `unknown option ${args[i]}; usage: reconcile [--apply | --repair field,...]`;
    const fields = (args[++i] ?? '').split(',').filter((f) => f !== '');
    const unknown = fields.filter((f) => !(REPAIRABLE as readonly string[]).includes(f));
    if (fields.length === 0 || unknown.length > 0) {
      return `--repair takes a list of ${REPAIRABLE.join(', ')}${unknown.length > 0 ? `, not ${unknown.join(', ')}` : ''}`;
    }
    repair = fields as RepairField[];
  }
  return repair;
}

export const COMMANDS: Command[] = [
  {
    name: 'help',
    usage: 'help',
    summary: 'this list',
    run: async () => listing(`Commands (send them as ${PREFIX} <command>):`, COMMANDS.map((c) => `${c.usage}: ${c.summary}`)),
  },
  {
    name: 'version',
    usage: 'version',
    summary: 'the bridge\'s version',
    run: async (_args, context) => plain(`matrix-scim-bridge ${context.version}`),
  },
  {
    name: 'status',
    usage: 'status',
    summary: 'the homeserver, users and groups, pending work, the last request of each IdP',
    run: async (_args, context) => statusReply(await context.status(), context.version),
  },
  {
    name: 'user',
    usage: 'user <userName | localpart | @matrix:id | id>',
    summary: 'a user as the IdP sent it and as the homeserver holds it, with any difference',
    run: async (args, context) => {
      const query = args.join(' ').trim();
      if (query === '') return plain(`usage: ${PREFIX} user <userName | localpart | @matrix:id | id>`);
      const view = await context.user(query);
      return view ? sideBySide(view) : plain(`no user "${query}" (looked for a userName, a Matrix ID and an id)`);
    },
  },
  {
    name: 'group',
    usage: 'group <displayName | id>',
    summary: 'a group, its rooms and members, with any difference',
    run: async (args, context) => {
      const query = args.join(' ').trim();
      if (query === '') return plain(`usage: ${PREFIX} group <displayName | id>`);
      const view = await context.group(query);
      return view ? sideBySide(view) : plain(`no group "${query}" (looked for a displayName and an id)`);
    },
  },
  {
    name: 'drift',
    usage: 'drift',
    summary: 'compare every user and group with the homeserver now and list the differences (changes nothing)',
    run: async (_args, context) => summary(await context.reconcile({ repair: [] }), []),
  },
  {
    name: 'reconcile',
    usage: `reconcile [--apply | --repair ${REPAIRABLE.join(',')}]`,
    summary: 'the same; --repair sets the named fields back to the IdP\'s values where they differ, --apply all of them',
    run: async (args, context) => {
      const repair = repairOf(args);
      if (typeof repair === 'string') return plain(repair);
      return summary(await context.reconcile({ repair }), repair);
    },
  },
  {
    name: 'retry',
    usage: 'retry',
    summary: 'run the pending journal work now, without waiting for its back-off',
    run: async (_args, context) => {
      const ran = await context.retry();
      return plain(ran === 0 ? 'Nothing was pending.' : `Ran ${ran} pending journal entries; what failed again is in the room and the log.`);
    },
  },
];
