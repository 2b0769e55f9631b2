/**
 * The core User schema (RFC 7643 §4.1, characteristics as in §8.7.1) and the attributes common
 * to every resource (§3.1), as data.
 */
import { attribute, complex, str, type AttributeDef, type SchemaDef } from './types.ts';
import { CORE_USER_SCHEMA } from './urns.ts';

const readOnly = { mutability: 'readOnly' } as const;

/**
 * The sub-attributes shared by the plural "value/display/type/primary" attributes. `unique`
 * describes a value no two users may hold: its `value` is then `uniqueness: server`.
 */
function plural(what: string, valueType: 'string' | 'reference' | 'binary', types: string[] | undefined, unique?: string): AttributeDef[] {
  return [
    attribute('value', valueType, unique ? `The ${what} itself; ${unique}` : `The ${what} itself.`, {
      ...(valueType === 'binary' ? { caseExact: true } : {}),
      ...(valueType === 'reference' ? { referenceTypes: ['external'] } : {}),
      ...(unique ? { uniqueness: 'server' as const } : {}),
    }),
    str('display', `A human-readable form of the ${what}, for display only.`),
    str('type', `What kind of ${what} this is.`, types ? { canonicalValues: types } : {}),
    attribute('primary', 'boolean', `Whether this is the preferred ${what}; at most one entry is primary.`),
  ];
}

const multi = (name: string, description: string, subs: AttributeDef[]): AttributeDef =>
  complex(name, description, subs, { multiValued: true });

const nameAttribute = complex('name', "The parts of the person's name.", [
  str('formatted', 'The whole name, formatted for display.'),
  str('familyName', 'The family name (last name in most Western languages).'),
  str('givenName', 'The given name (first name in most Western languages).'),
  str('middleName', 'The middle name or names.'),
  str('honorificPrefix', 'A title before the name, such as "Dr." or "Ms.".'),
  str('honorificSuffix', 'A suffix after the name, such as "III" or "PhD".'),
]);

const addresses = multi('addresses', 'Postal addresses of the person.', [
  str('formatted', 'The whole address, formatted for display or a mailing label.'),
  str('streetAddress', 'Street, house number and any further delivery lines.'),
  str('locality', 'City or locality.'),
  str('region', 'State, province or region.'),
  str('postalCode', 'Postal or ZIP code.'),
  str('country', 'Country, as an ISO 3166-1 alpha-2 code.'),
  str('type', 'What kind of address this is.', { canonicalValues: ['work', 'home', 'other'] }),
  attribute('primary', 'boolean', 'Whether this is the preferred address; at most one entry is primary.'),
]);

const groups = complex('groups', 'The groups the user belongs to; maintained by the server through group membership.', [
  str('value', 'The id of the group.', readOnly),
  attribute('$ref', 'reference', 'The URI of the group resource.', { ...readOnly, referenceTypes: ['User', 'Group'] }),
  str('display', "The group's display name.", readOnly),
  str('type', 'Whether the membership is direct or inherited.', { ...readOnly, canonicalValues: ['direct', 'indirect'] }),
], { multiValued: true, ...readOnly });

export const CORE_USER_ATTRIBUTES: AttributeDef[] = [
  str('userName', 'The name the user signs in with; unique on this server, compared without regard to case.', {
    required: true,
    uniqueness: 'server',
  }),
  nameAttribute,
  str('displayName', 'The name shown for the user; becomes the Matrix display name.'),
  str('nickName', 'A casual name for the user.'),
  attribute('profileUrl', 'reference', "A link to the user's online profile.", { referenceTypes: ['external'] }),
  str('title', "The user's job title."),
  str('userType', 'How the organisation classifies the user, for example "Employee" or "Contractor".'),
  str('preferredLanguage', "The user's preferred written or spoken languages, as an HTTP Accept-Language value."),
  str('locale', "The user's default location for localising dates, numbers and currency, e.g. en-US."),
  str('timezone', "The user's time zone as an IANA name, e.g. Europe/Berlin."),
  attribute('active', 'boolean', 'Whether the account may be used; false locks the Matrix account.'),
  str('password', "The user's clear-text password; accepted, passed to the homeserver, never stored or returned.", {
    mutability: 'writeOnly',
    returned: 'never',
  }),
  // The addresses become the account's Matrix 3PIDs, which the homeserver lets one account hold
  // (a 409 names the holder): unique per address, so `value` is `server`, not the list as a whole.
  multi(
    'emails',
    'Email addresses of the user.',
    plural('email address', 'string', ['work', 'home', 'other'], 'no other user on this server may hold it (compared without regard to case).'),
  ),
  multi(
    'phoneNumbers',
    'Telephone numbers of the user.',
    plural(
      'telephone number',
      'string',
      ['work', 'home', 'mobile', 'fax', 'pager', 'other'],
      'no other user on this server may hold it (compared by its digits, without an extension).',
    ),
  ),
  multi('ims', 'Instant messaging addresses of the user.', plural('instant messaging address', 'string', ['aim', 'gtalk', 'icq', 'xmpp', 'msn', 'skype', 'qq', 'yahoo'])),
  multi('photos', 'Links to images of the user.', plural('image URL', 'reference', ['photo', 'thumbnail'])),
  addresses,
  groups,
  multi('entitlements', 'Things the user is entitled to.', plural('entitlement', 'string', undefined)),
  multi('roles', 'Roles of the user.', plural('role', 'string', undefined)),
  multi('x509Certificates', 'X.509 certificates issued to the user.', plural('DER-encoded certificate, base64', 'binary', undefined)),
];

/** id, externalId and meta (RFC 7643 §3.1); not listed in /Schemas, as §3.1 intends. */
export const COMMON_ATTRIBUTES: AttributeDef[] = [
  str('id', 'The identifier the server gave the resource; stable and opaque.', {
    caseExact: true,
    mutability: 'readOnly',
    returned: 'always',
    uniqueness: 'server',
  }),
  str('externalId', "The identifier the provisioning client uses for the resource.", { caseExact: true }),
  complex(
    'meta',
    'Information about the resource kept by the server.',
    [
      str('resourceType', 'The kind of resource.', { ...readOnly, caseExact: true }),
      attribute('created', 'dateTime', 'When the resource was created.', readOnly),
      attribute('lastModified', 'dateTime', 'When the resource was last changed.', readOnly),
      attribute('location', 'reference', 'The URI of the resource.', { ...readOnly, referenceTypes: ['uri'] }),
      str('version', 'The entity tag of the current version.', { ...readOnly, caseExact: true }),
    ],
    readOnly,
  ),
];

export const CORE_USER: SchemaDef = {
  id: CORE_USER_SCHEMA,
  name: 'User',
  description: 'A person with an account on the Matrix homeserver',
  attributes: CORE_USER_ATTRIBUTES,
};
