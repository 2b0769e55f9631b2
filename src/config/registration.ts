import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { z } from 'zod';
import { ConfigError } from './load.ts';

/**
 * The appservice registration: the file the homeserver loads (app_service_config_files)
 * and the bridge reads for its tokens. The sample in the repository holds placeholders;
 * the bridge refuses to start with them.
 */
export const PLACEHOLDER_MARK = 'CHANGE_ME';

const registrationSchema = z
  .object({
    id: z.string().min(1),
    url: z.string().nullable(),
    as_token: z.string().min(1),
    hs_token: z.string().min(1),
    sender_localpart: z.string().regex(/^[a-z0-9._=\-/+]+$/, 'must be a valid, lower-case localpart'),
    rate_limited: z.boolean().optional(),
    namespaces: z
      .object({
        users: z.array(z.object({ exclusive: z.boolean(), regex: z.string() }).loose()).default([]),
        aliases: z.array(z.unknown()).default([]),
        rooms: z.array(z.unknown()).default([]),
      })
      .loose(),
  })
  .loose();

export type Registration = z.output<typeof registrationSchema>;

export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function generateRegistration(options: {
  id?: string;
  url: string;
  domain: string;
  senderLocalpart?: string;
  /** The admin room's alias (default #scim-bridge-admin:<domain>), reserved so that the bot may create it. */
  adminRoomAlias?: string;
}): Registration {
  const adminRoomAlias = options.adminRoomAlias ?? `#scim-bridge-admin:${options.domain}`;
  return {
    id: options.id ?? 'matrix-scim-bridge',
    url: options.url,
    as_token: randomBytes(32).toString('base64url'),
    hs_token: randomBytes(32).toString('base64url'),
    sender_localpart: options.senderLocalpart ?? 'scim-bridge',
    rate_limited: false,
    // Non-exclusive: an exclusive namespace would stop the admin API and SSO from creating
    // users in it and hide them from the user directory. What the bridge may touch is
    // limited by its own store and the protected patterns, not by this regex.
    namespaces: {
      users: [{ exclusive: false, regex: `@.*:${escapeRegex(options.domain)}` }],
      // Synapse lets an appservice create only aliases in its namespace (else M_EXCLUSIVE).
      aliases: [{ exclusive: false, regex: `^${escapeRegex(adminRoomAlias)}$` }],
      rooms: [],
    },
  };
}

export function writeRegistration(file: string, registration: Registration): void {
  writeFileSync(file, yaml.dump(registration, { lineWidth: 120 }), { mode: 0o600 });
}

export function loadRegistration(file: string): Registration {
  let raw: unknown;
  try {
    raw = yaml.load(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(`cannot read the registration ${file}: ${(error as Error).message}`);
  }
  const result = registrationSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new ConfigError(`the registration ${file} is not valid:\n${lines.join('\n')}`);
  }
  const registration = result.data;
  for (const key of ['as_token', 'hs_token'] as const) {
    if (registration[key].includes(PLACEHOLDER_MARK)) {
      throw new ConfigError(
        `the registration ${file} still holds the placeholder ${key}: generate a real one with ` +
          '`matrix-scim-bridge generate-registration --config <config> --url <url the homeserver uses to reach the bridge>`, ' +
          'give it to the homeserver (app_service_config_files) and restart the homeserver',
      );
    }
  }
  if (registration.namespaces.users.length === 0) {
    throw new ConfigError(`the registration ${file} has no user namespace: the bridge cannot register users`);
  }
  return registration;
}
