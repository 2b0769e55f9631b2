import type { ReconcileRequest, ReconcileResult, RepairField } from '../provisioning/reconciler.ts';
import { DRIFT_FIELDS } from '../provisioning/accountPlan.ts';
import type { HomeserverClient } from './homeserverClient.ts';
import { escapeHtml } from './noticeRender.ts';
import { logger } from '../log.ts';

const log = logger('Console');

/** A room event as the appservice receives it (only what the console reads). */
export interface RoomEvent {
  room_id?: unknown;
  sender?: unknown;
  type?: unknown;
  content?: unknown;
}

/** What the console's commands may do. */
export interface ConsoleContext {
  reconcile(request: ReconcileRequest): Promise<ReconcileResult>;
}

/** How the console reaches the room: reading power levels and answering. */
export interface ConsoleRoom {
  powerLevelOf(userId: string): Promise<number>;
  reply(text: string, html: string): Promise<void>;
}

/** The admin room through the client-server API, as the bot. */
export function consoleRoom(client: HomeserverClient, roomId: string): ConsoleRoom {
  return {
    powerLevelOf: async (userId) => {
      const levels = (await client.getState(roomId, 'm.room.power_levels')) ?? {};
      const users = (levels['users'] ?? {}) as Record<string, unknown>;
      const level = users[userId] ?? levels['users_default'] ?? 0;
      return typeof level === 'number' ? level : 0;
    },
    reply: (text, html) => client.sendNotice(roomId, text, html),
  };
}

interface Reply {
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

const PREFIX = '!scim';
/** Power level in the admin room that makes a member an operator (moderators and up). */
const OPERATOR_LEVEL = 50;
/** Lines of a long answer that are listed; the rest are counted. */
const MAX_LINES = 30;
const REPAIRABLE: readonly RepairField[] = [...DRIFT_FIELDS, 'members'];

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

function plain(text: string): Reply {
  return { text, html: escapeHtml(text) };
}

const COMMANDS: Command[] = [
  {
    name: 'help',
    usage: 'help',
    summary: 'this list',
    run: async () => listing('Commands (send them as !scim <command>):', COMMANDS.map((c) => `${c.usage}: ${c.summary}`)),
  },
  {
    name: 'drift',
    usage: 'drift',
    summary: 'compare every user and group with the homeserver now and list the differences (changes nothing)',
    run: async (_args, context) => summary(await context.reconcile({ repair: [] }), []),
  },
  {
    name: 'reconcile',
    usage: `reconcile [--repair ${REPAIRABLE.join(',')}]`,
    summary: 'the same, setting the named fields back to the IdP\'s values where they differ',
    run: async (args, context) => {
      let repair: RepairField[] = [];
      for (let i = 0; i < args.length; i++) {
        if (args[i] !== '--repair') return plain(`unknown option ${args[i]}; usage: reconcile [--repair field,...]`);
        const fields = (args[++i] ?? '').split(',').filter((f) => f !== '');
        const unknown = fields.filter((f) => !(REPAIRABLE as readonly string[]).includes(f));
        if (fields.length === 0 || unknown.length > 0) {
          return plain(`--repair takes a list of ${REPAIRABLE.join(', ')}${unknown.length > 0 ? `, not ${unknown.join(', ')}` : ''}`);
        }
        repair = fields as RepairField[];
      }
      return summary(await context.reconcile({ repair }), repair);
    },
  },
];

/**
 * The operator console in the admin room: `!scim <command>` from an operator (listed in
 * adminRoom.operators, or power level 50 or more in the room) is answered with a notice;
 * anything else, and anyone else, is ignored.
 */
export class AdminConsole {
  readonly #roomId: string;
  readonly #botUserId: string;
  readonly #operators: ReadonlySet<string>;
  readonly #room: ConsoleRoom;
  readonly #context: ConsoleContext;

  constructor(options: { roomId: string; botUserId: string; operators: string[]; room: ConsoleRoom; context: ConsoleContext }) {
    this.#roomId = options.roomId;
    this.#botUserId = options.botUserId;
    this.#operators = new Set(options.operators);
    this.#room = options.room;
    this.#context = options.context;
  }

  /** Handles one event; never throws (a failing command is answered with what went wrong). */
  async handle(event: RoomEvent): Promise<void> {
    if (event.room_id !== this.#roomId || event.type !== 'm.room.message' || typeof event.sender !== 'string') return;
    if (event.sender === this.#botUserId) return;
    const content = event.content && typeof event.content === 'object' ? (event.content as Record<string, unknown>) : {};
    const body = typeof content['body'] === 'string' ? content['body'].trim() : '';
    const words = body.split(/\s+/);
    if (words[0]?.toLowerCase() !== PREFIX) return;
    try {
      if (!(await this.#isOperator(event.sender))) {
        log.info(`ignored a command from ${event.sender}, who is not an operator`);
        return;
      }
      const name = (words[1] ?? 'help').toLowerCase();
      const command = COMMANDS.find((c) => c.name === name);
      log.info(`${event.sender}: ${PREFIX} ${words.slice(1).join(' ')}`);
      const reply = command ? await command.run(words.slice(2), this.#context) : plain(`unknown command "${name}"; try ${PREFIX} help`);
      await this.#room.reply(reply.text, reply.html);
    } catch (error) {
      log.warn(`command from ${event.sender} failed`, error);
      const answer = plain(`the command failed: ${error instanceof Error ? error.message : String(error)}`);
      await this.#room.reply(answer.text, answer.html).catch(() => undefined);
    }
  }

  async #isOperator(userId: string): Promise<boolean> {
    return this.#operators.has(userId) || (await this.#room.powerLevelOf(userId)) >= OPERATOR_LEVEL;
  }
}
