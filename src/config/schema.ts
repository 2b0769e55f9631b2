import { z } from 'zod';

/** A room ID (`!opaque:server`, or just `!opaque` from room version 12 on) or an alias (`#name:server`). */
const ROOM_REFERENCE = /^(![^\s]+|#[^\s:]+:[^\s]+)$/;

/**
 * The bridge's configuration, validated once at start-up. Every key is described here;
 * config/config.sample.yaml documents the same keys for operators. `.strict()` everywhere
 * so that a typo stops the bridge instead of being silently ignored.
 */

/** A secret given inline, or read from a file (preferred: keeps it out of the config). */
const secret = (what: string) =>
  z
    .union([
      z.string().min(1).describe(`${what}, inline`),
      z.object({ file: z.string().min(1).describe(`path of a file holding ${what}`) }).strict(),
    ])
    .describe(`${what}: a string, or { file: path }`);

const localpartPolicy = z
  .object({
    stripEmailDomain: z
      .boolean()
      .default(true)
      .describe('userName "alice@example.com" becomes localpart "alice" (true) or "alice_example.com" (false)'),
    replacement: z
      .string()
      .regex(/^[a-z0-9._=\-/+]?$/, 'must be one allowed localpart character or empty')
      .default('_')
      .describe('what replaces each character that a Matrix localpart may not hold'),
    prefix: z.string().regex(/^[a-z0-9._=\-/+]*$/).default('').describe('prepended to every localpart, e.g. "corp_"'),
  })
  .strict();

export const configSchema = z
  .object({
    homeserver: z
      .object({
        url: z.url().describe('client-server API base URL of the homeserver, as the bridge reaches it'),
        domain: z.string().min(1).describe('the server name: the part after the colon in @alice:example.org'),
        auth: z
          .enum(['synapse', 'mas'])
          .default('synapse')
          .describe('who holds the accounts: synapse (its admin API), or mas (the Matrix Authentication Service Synapse delegates to; see the mas section)'),
      })
      .strict(),
    mas: z
      .object({
        url: z.url().describe("MAS's public base URL (its issuer), as the bridge reaches it"),
        clientId: z.string().min(1).describe("an OAuth client in MAS's config, listed in its policy data's admin_clients (client_secret_basic)"),
        clientSecret: secret("that client's secret"),
        upstreamProviderId: z
          .string()
          .regex(/^[0-9A-HJKMNP-TV-Z]{26}$/, 'must be a ULID, as MAS shows it')
          .optional()
          .describe("MAS's id of the upstream OAuth provider that externalId links to (the IdP's subject), so that SSO lands in the provisioned account"),
      })
      .strict()
      .optional()
      .describe('the Matrix Authentication Service, when homeserver.auth is mas'),
    appservice: z
      .object({
        registration: z.string().min(1).describe('path of the appservice registration YAML loaded by the homeserver'),
        bindAddress: z.string().default('127.0.0.1').describe('address of the listener the homeserver calls'),
        port: z.number().int().min(1).max(65535).describe('port of that listener (must match the registration url)'),
      })
      .strict(),
    scim: z
      .object({
        bindAddress: z.string().default('127.0.0.1').describe('address of the SCIM listener (put TLS in front of it)'),
        port: z.number().int().min(0).max(65535).describe('port of the SCIM listener (0: any free port)'),
        publicUrl: z
          .url()
          .optional()
          .describe('URL the IdP uses to reach the SCIM listener, without /scim/v2; used in Location and meta.location'),
        tokens: z
          .array(
            z
              .object({
                name: z.string().min(1).describe('who uses this token (shown in logs and the admin room), e.g. "entra"'),
                token: secret('the bearer token this IdP sends'),
                scope: z
                  .enum(['all', 'own'])
                  .default('all')
                  .describe('all: this IdP sees and changes every user and group; own: only those it created (two IdPs kept apart)'),
              })
              .strict(),
          )
          .min(1)
          .describe('bearer tokens accepted on the SCIM API, one per IdP'),
      })
      .strict(),
    adminApi: z
      .object({
        accessToken: secret('an access token of a server admin').optional(),
      })
      .strict()
      .default({})
      .describe('credentials for the Synapse admin API; without accessToken the bot (as_token) is used and must be a server admin'),
    adminRoom: z
      .object({
        room: z
          .string()
          .regex(ROOM_REFERENCE, 'must be a room ID (!id) or an alias (#alias:server)')
          .optional()
          .describe('room ID or alias of the admin room; an alias that does not exist yet is created'),
        operators: z.array(z.string().regex(/^@.+:.+$/, 'must be a Matrix user ID')).default([]).describe('invited to the admin room'),
        burstThreshold: z.number().int().min(1).default(10).describe('more events than this within burstWindowSeconds become one digest'),
        burstWindowSeconds: z.number().positive().default(10).describe('the window for burstThreshold'),
      })
      .strict()
      .default({ operators: [], burstThreshold: 10, burstWindowSeconds: 10 }),
    provisioning: z
      .object({
        localpart: localpartPolicy.default({ stripEmailDomain: true, replacement: '_', prefix: '' }),
        onDisable: z
          .enum(['lock', 'suspend', 'deactivate'])
          .default('lock')
          .describe('what active:false does: lock (reversible, keeps rooms), suspend (read-only), or deactivate'),
        eraseOnDelete: z.boolean().default(false).describe('erase the user (GDPR) when the IdP deletes it'),
        externalIdProvider: z
          .string()
          .optional()
          .describe('SSO auth provider id (e.g. oidc-keycloak): externalId is linked to it so SSO logins land in the account'),
        protectedUsers: z
          .array(z.string())
          .default([])
          .describe('regular expressions of Matrix IDs the bridge never touches (admins, bots)'),
        adoptExistingUsers: z
          .boolean()
          .default(false)
          .describe('take over accounts that exist on the homeserver but were not made by the bridge (never a server admin)'),
        operatorDisabled: z
          .enum(['keep', 'idp-wins'])
          .default('keep')
          .describe(
            'when the IdP asks for active:true on an account an operator locked, suspended or deactivated on the homeserver: keep it as the operator left it and report the drift, or let the IdP win',
          ),
      })
      .strict()
      .default({
        localpart: { stripEmailDomain: true, replacement: '_', prefix: '' },
        onDisable: 'lock',
        eraseOnDelete: false,
        protectedUsers: [],
        adoptExistingUsers: false,
        operatorDisabled: 'keep',
      }),
    drift: z
      .object({
        checkIntervalMinutes: z
          .number()
          .min(0)
          .default(60)
          .describe('how often (minutes) every user and group is compared with the homeserver and differences reported; the first check runs a minute after start (0: only on demand)'),
        repair: z
          .array(z.enum(['displayName', 'avatar', 'emails', 'phoneNumbers', 'externalId', 'active']))
          .default([])
          .describe('fields the bridge sets back to the IdP\'s value when it finds drift (default: none, report only)'),
      })
      .strict()
      .default({ checkIntervalMinutes: 60, repair: [] }),
    avatars: z
      .object({
        enabled: z.boolean().default(true).describe('set avatars from photos'),
        maxBytes: z.number().int().positive().default(5 * 1024 * 1024).describe('largest image fetched'),
        timeoutSeconds: z.number().positive().default(10).describe('time limit of one fetch'),
        allowHttp: z.boolean().default(false).describe('also fetch plain http URLs (testing only)'),
        allowedNetworks: z
          .array(z.string())
          .default([])
          .describe('private networks (CIDR) photos may be fetched from; public addresses are always allowed'),
      })
      .strict()
      .default({ enabled: true, maxBytes: 5 * 1024 * 1024, timeoutSeconds: 10, allowHttp: false, allowedNetworks: [] }),
    groups: z
      .object({
        roomType: z.enum(['room', 'space']).default('room').describe('what the bridge creates for a SCIM group: a private room or a space'),
        onDelete: z
          .enum(['keep', 'close'])
          .default('keep')
          .describe('after a group is deleted and its members removed: keep the room, or close it (renamed, the bot leaves)'),
        memberPowerLevel: z.number().int().min(0).max(100).optional().describe('power level members get in their group rooms'),
        links: z
          .array(
            z
              .object({
                displayName: z.string().min(1).describe('the SCIM group (by displayName, any case) to link'),
                rooms: z.array(z.string().regex(ROOM_REFERENCE, 'must be a room ID (!id) or an alias (#alias:server)')).min(1).describe('existing rooms or spaces its members join'),
                powerLevel: z.number().int().min(0).max(100).optional().describe('power level of its members in those rooms'),
              })
              .strict(),
          )
          .default([])
          .describe('groups whose members join existing rooms instead of a room of their own'),
        batchSize: z.number().int().min(1).default(200).describe('room joins and kicks done per journal run, so that other work gets a turn'),
      })
      .strict()
      .default({ roomType: 'room', onDelete: 'keep', links: [], batchSize: 200 }),
    database: z
      .object({
        engine: z
          .enum(['sqlite', 'postgres'])
          .default('sqlite')
          .describe('sqlite: one embedded file, one bridge; postgres: a shared server, any number of bridge replicas'),
        path: z.string().min(1).default('scim-bridge.db').describe('SQLite file, relative to the working directory (engine sqlite)'),
        url: secret('a PostgreSQL connection string, postgres://user:password@host:port/db (engine postgres)')
          .optional(),
        ssl: z
          .object({
            mode: z
              .enum(['disable', 'require', 'verify-full'])
              .default('disable')
              .describe('disable: plain TCP (loopback, sockets); require: TLS without checking the certificate; verify-full: TLS, certificate and host name checked'),
            caFile: z.string().min(1).optional().describe('PEM file of the CA that signed the server certificate (verify-full)'),
          })
          .strict()
          .default({ mode: 'disable' }),
        poolSize: z.number().int().min(2).max(200).default(20).describe('connections per bridge process (engine postgres)'),
      })
      .strict()
      .default({ engine: 'sqlite', path: 'scim-bridge.db', ssl: { mode: 'disable' }, poolSize: 20 }),
    metrics: z
      .object({
        enabled: z.boolean().default(false).describe('serve Prometheus metrics at /metrics on a listener of their own'),
        bindAddress: z.string().default('127.0.0.1').describe('address of the metrics listener (keep it internal)'),
        port: z.number().int().min(0).max(65535).default(9741).describe('port of the metrics listener (0: any free port)'),
      })
      .strict()
      .default({ enabled: false, bindAddress: '127.0.0.1', port: 9741 })
      .describe('the Prometheus metrics listener'),
    logging: z
      .object({
        level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
        format: z
          .enum(['text', 'json'])
          .default('text')
          .describe('text: one line per entry with an ISO-8601 UTC timestamp; json: one JSON object per line'),
      })
      .strict()
      .default({ level: 'info', format: 'text' }),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type SecretValue = string | { file: string };
