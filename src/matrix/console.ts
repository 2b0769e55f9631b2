import { COMMANDS, PREFIX, plain, type ConsoleContext } from './consoleCommands.ts';
import type { HomeserverClient } from './homeserverClient.ts';
import { logger } from '../log.ts';

const log = logger('Console');

/** Power level in the admin room that makes a member an operator (moderators and up). */
const OPERATOR_LEVEL = 50;

/** A room event as the appservice receives it (only what the console reads). */
export interface RoomEvent {
  room_id?: unknown;
  sender?: unknown;
  type?: unknown;
  content?: unknown;
}

export type { ConsoleContext } from './consoleCommands.ts';

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
