import { MATRIX_USER_SCHEMA } from '../scim/schema/urns.ts';
import { escapeRegex } from '../config/registration.ts';
import { loneSurrogateAt } from '../scim/patch/values.ts';

/**
 * How a SCIM User becomes a Matrix account (architecture.md, "Attribute mapping"): pure
 * functions from the stored document to the account the homeserver should hold.
 */
export interface LocalpartPolicy {
  stripEmailDomain: boolean;
  replacement: string;
  prefix: string;
}

export type AvatarSource = { kind: 'mxc'; uri: string } | { kind: 'url'; url: string };

/** The account as the homeserver should hold it. */
export interface DesiredAccount {
  matrixId: string;
  localpart: string;
  displayName: string | null;
  avatar: AvatarSource | null;
  emails: string[];
  msisdns: string[];
  externalId: string | null;
  active: boolean;
}

type Doc = Record<string, unknown>;

const LOCALPART_ALLOWED = /[a-z0-9._=\-/+]/;

/** Derives the Matrix localpart from a userName, or explains why it cannot. */
export function localpartFor(userName: string, policy: LocalpartPolicy): string {
  let base = userName.trim().toLowerCase();
  if (policy.stripEmailDomain) {
    const at = base.lastIndexOf('@');
    if (at > 0) base = base.slice(0, at);
  }
  let out = '';
  for (const ch of base.normalize('NFKD')) {
    if (/\p{M}/u.test(ch)) continue; // drop accents: "José" → "jose"
    out += LOCALPART_ALLOWED.test(ch) ? ch : policy.replacement;
  }
  out = policy.prefix + out;
  if (out.replace(/[._=\-/+]/g, '') === '') {
    throw new Error(`userName ${quoted(userName)} gives no usable Matrix localpart`);
  }
  return out;
}

/**
 * Python's str.strip(), which Synapse applies to display names and email addresses: JS's
 * trim() leaves \x1c-\x1f and \x85 that Python strips, and strips U+FEFF that Python keeps.
 * Stripped otherwise, "Name\x1f" would be "Name" on Synapse and drift for ever.
 */
const PY_EDGE_SPACE = /^[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

function str(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const stripped = value.replace(PY_EDGE_SPACE, '');
  return stripped === '' ? null : stripped;
}

function isDoc(value: unknown): value is Doc {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The entries of a multi-valued attribute that are objects, with their index in the list. */
function indexedEntries(doc: Doc, attr: string): { entry: Doc; index: number }[] {
  const value = doc[attr];
  return Array.isArray(value) ? value.flatMap((entry: unknown, index) => (isDoc(entry) ? [{ entry, index }] : [])) : [];
}

/** A value the account takes, with the SCIM attribute it was read from. */
interface Sourced {
  attribute: string;
  value: string;
}

/**
 * Where the Matrix display name comes from: the Matrix extension's displayName, else
 * displayName, else name.formatted, else the given and family names.
 */
function displayNameSource(doc: Doc): Sourced | null {
  const matrix = doc[MATRIX_USER_SCHEMA];
  const override = isDoc(matrix) ? str(matrix['displayName']) : null;
  if (override) return { attribute: `${MATRIX_USER_SCHEMA}:displayName`, value: override };
  const direct = str(doc['displayName']);
  if (direct) return { attribute: 'displayName', value: direct };
  const name = doc['name'];
  if (!isDoc(name)) return null;
  const formatted = str(name['formatted']);
  if (formatted) return { attribute: 'name.formatted', value: formatted };
  const parts = ['givenName', 'familyName'].flatMap((key) => {
    const part = str(name[key]);
    return part ? [{ attribute: `name.${key}`, value: part }] : [];
  });
  if (parts.length === 0) return null;
  return { attribute: parts.map((p) => p.attribute).join(' and '), value: parts.map((p) => p.value).join(' ') };
}

export function displayNameOf(doc: Doc): string | null {
  return displayNameSource(doc)?.value ?? null;
}

/** The entries of a multi-valued attribute, the primary one first. */
function primaryFirst(doc: Doc, attr: string): { entry: Doc; index: number }[] {
  const list = indexedEntries(doc, attr);
  return [...list.filter((e) => e.entry['primary'] === true), ...list.filter((e) => e.entry['primary'] !== true)];
}

/** The photo the avatar comes from: the primary one, else the first. */
function avatarSource(doc: Doc): Sourced | null {
  const photo = primaryFirst(doc, 'photos')[0];
  const value = photo ? str(photo.entry['value']) : null;
  return photo && value ? { attribute: `photos[${photo.index}].value`, value } : null;
}

export function avatarOf(doc: Doc): AvatarSource | null {
  const value = avatarSource(doc)?.value;
  if (!value) return null;
  if (value.startsWith('mxc://')) return { kind: 'mxc', uri: value };
  return { kind: 'url', url: value };
}

/** Cherokee letters: Unicode case folding maps them to upper case, the other way round. */
const CHEROKEE = /[\u13a0-\u13f5\u13f8-\u13fd\uab70-\uabbf]/;

/**
 * Unicode case folding as Python's str.casefold() does it, near enough: upper then lower
 * case maps "ß" to "ss", "ς" to "σ" and "ﬀ" to "ff" as casefold does; the dotless "ı" is
 * kept, and Cherokee folds to upper case. Checked against Python 3.11 over every code point
 * to U+2FFFF: the only differences left are letters added after Unicode 14, which that
 * Python (and so Synapse on it) does not fold at all.
 */
function casefold(text: string): string {
  let out = '';
  for (const ch of text) {
    // "ẞ" goes to "ß" and back to "ẞ" in that round trip; casefold gives "ss".
    out += ch === 'ı' ? ch : CHEROKEE.test(ch) ? ch.toUpperCase() : ch === 'ẞ' ? 'ss' : ch.toUpperCase().toLowerCase();
  }
  return out;
}

/**
 * An email address as Synapse stores it (synapse/util/threepids.py canonicalise_email): the
 * local part case-folded, the domain lower-cased. Compared any other way, "ß@example.com"
 * would never match the "ss@example.com" Synapse holds.
 */
export function canonicalEmail(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? address.toLowerCase() : `${casefold(address.slice(0, at))}@${address.slice(at + 1).toLowerCase()}`;
}

export function emailsOf(doc: Doc): string[] {
  const out = new Set<string>();
  for (const { entry } of primaryFirst(doc, 'emails')) {
    const value = str(entry['value']);
    if (value) out.add(canonicalEmail(value));
  }
  return [...out];
}

// Where the number ends: RFC 3966 parameters (";ext=1234", ";isub=", ";phone-context="),
// dial-string pauses and "#", or an extension written out ("x123", "ext. 123", "extension 5").
// "x" and "ext" count only as words of their own, so that "+1 800 TAXI" is not cut at its x.
const NUMBER_END = /[;,#]|(?<![a-z])(?:extension|extn|ext|x)(?![a-z])/i;

/**
 * The msisdn a phone number stands for, as Synapse stores it: the digits of the number,
 * country code first (E.164 without "+"), without any extension, which reaches a desk behind
 * the number and is no part of it. "+1 425-555-0100 x123" and "tel:+1-425-555-0100;ext=123"
 * are both 14255550100. Numbers written without their country code stay as they are.
 */
export function msisdnOf(phone: string): string {
  const number = phone.trim().replace(/^tel:/i, '');
  const end = number.search(NUMBER_END);
  return (end < 0 ? number : number.slice(0, end)).replace(/[^0-9]/g, '');
}

const MIN_MSISDN_DIGITS = 5;
/** ITU-T E.164: an international number has at most 15 digits, country code included. */
const MAX_MSISDN_DIGITS = 15;

/** Phone numbers as Synapse stores msisdns: digits only, country code first, no extension. */
export function msisdnsOf(doc: Doc): string[] {
  const out = new Set<string>();
  for (const { entry } of primaryFirst(doc, 'phoneNumbers')) {
    const value = str(entry['value']);
    const digits = value ? msisdnOf(value) : '';
    if (digits.length >= MIN_MSISDN_DIGITS) out.add(digits);
  }
  return [...out];
}

/**
 * What Synapse refuses, read from its source (github.com/element-hq/synapse, commit a58ad44 of
 * July 2026). Each is checked before anything is stored, so that the IdP hears a 400 naming the
 * attribute rather than a 502 from a half-made account. Synapse measures with Python's len() on a str, which counts
 * code points, not UTF-16 units: so does `codePoints` here.
 *
 * - displayName: 256. synapse/handlers/profile.py, MAX_DISPLAYNAME_LEN; set_displayname
 *   refuses a longer one (400), measured before it strips. On creation the admin API
 *   (PUT /_synapse/admin/v2/users) passes the displayname to register_user
 *   (synapse/handlers/register.py) without that check, so the limit bites on the next change.
 * - avatar_url: 1,000. synapse/handlers/profile.py, MAX_AVATAR_URL_LEN, in set_avatar_url.
 * - password: 512. synapse/rest/admin/users.py, UserRestServletV2.on_PUT: a password that is
 *   not a str or is longer is 400 "Invalid password"; nothing else is required of it there.
 *   The shared-secret registration in the same file (UserRegisterServlet) also refuses one
 *   holding NUL. synapse/handlers/auth.py (hash) NFKC-normalises it, encodes it to UTF-8 and
 *   hashes its first 72 bytes with bcrypt.
 * - user ID: 255. synapse/api/constants.py, MAX_USERID_LENGTH, compared with the whole
 *   "@localpart:domain" by check_username in synapse/handlers/register.py.
 * - email: 500. synapse/util/threepids.py, MAX_EMAIL_ADDRESS_LENGTH, applied by validate_email
 *   on the client API. The admin API only canonicalises an email (canonicalise_email, same
 *   file: exactly one "@", local part case-folded, domain lower-cased) and checks msisdns not
 *   at all (add_threepid in synapse/handlers/auth.py). A (medium, address) pair belongs to one
 *   account: UNIQUE (medium, address) on user_threepids
 *   (synapse/storage/schema/main/full_schemas/72/full.sql.sqlite).
 * - external_id: no limit; TEXT NOT NULL, UNIQUE (auth_provider, external_id) in the same
 *   schema file.
 * - NUL (U+0000): PostgreSQL text cannot hold it. synapse/_scripts/synapse_port_db.py drops
 *   rows holding one, synapse/storage/databases/main/search.py replaces it before inserting,
 *   synapse/util/stringutils.py has non_null_str_or_none for it.
 * - Lone surrogates: synapse/util/json.py decodes requests with Python's json, refusing only
 *   NaN and Infinity, so "\ud83d" arrives as a str no UTF-8 encoder can write (the password
 *   hash and the database both encode to UTF-8).
 * - Integers: synapse/api/constants.py, CANONICALJSON_MAX_INT = 2^53 - 1 (the SCIM input layer
 *   holds integer attributes to it).
 */
export const HOMESERVER_LIMITS = {
  displayName: 256,
  avatarUrl: 1000,
  password: 512,
  userId: 255,
  email: 500,
} as const;

/**
 * An http(s) photo is fetched by the bridge and uploaded; Synapse sees only the mxc URI. RFC
 * 9110 §4.1 asks that URIs of 8,000 octets work; a longer one is no photo link.
 */
const MAX_PHOTO_URL = 8000;

/** Length as Synapse measures it: Python's len() of a str, in code points. */
function codePoints(text: string): number {
  let length = 0;
  for (const _ of text) length++;
  return length;
}

const count = (n: number): string => n.toLocaleString('en');

/** The start of a value, quoted, for a message: long values are not echoed whole. */
function quoted(value: string, max = 40): string {
  const chars = [...value];
  return JSON.stringify(chars.length > max ? `${chars.slice(0, max).join('')}…` : value);
}

/** Characters no homeserver can store: NUL, and lone UTF-16 surrogates. */
function characterProblem(attribute: string, value: string): string | undefined {
  if (value.includes('\u0000')) return `${attribute} holds a NUL character (U+0000), which the homeserver cannot store`;
  if (loneSurrogateAt(value) >= 0) return `${attribute} holds a lone UTF-16 surrogate, half of a character, which the homeserver cannot encode`;
  return undefined;
}

function tooLong(attribute: string, length: number, max: number, what: string): string | undefined {
  return length > max ? `${attribute} is ${count(length)} characters long; ${what} holds at most ${count(max)}` : undefined;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function emailProblem(attribute: string, value: string): string | undefined {
  const length = codePoints(value);
  if (length > HOMESERVER_LIMITS.email) return tooLong(attribute, length, HOMESERVER_LIMITS.email, 'an email address on the homeserver');
  return characterProblem(attribute, value) ?? (EMAIL.test(value) ? undefined : `${attribute} ${quoted(value)} is not an email address`);
}

function phoneProblem(attribute: string, value: string): string | undefined {
  const digits = msisdnOf(value).length;
  if (digits < MIN_MSISDN_DIGITS) return `${attribute} ${quoted(value)} is not a phone number`;
  if (digits > MAX_MSISDN_DIGITS) {
    return `${attribute} ${quoted(value)} has ${count(digits)} digits without its extension; a phone number has at most ${MAX_MSISDN_DIGITS} (E.164)`;
  }
  return undefined;
}

function photoProblem(photo: Sourced): string | undefined {
  const { attribute, value } = photo;
  if (value.startsWith('mxc://')) {
    return tooLong(attribute, codePoints(value), HOMESERVER_LIMITS.avatarUrl, 'an avatar URL on the homeserver') ?? characterProblem(attribute, value);
  }
  if (!/^https?:\/\//i.test(value)) return `${attribute} ${quoted(value)} is neither an mxc:// nor an http(s) URL`;
  return tooLong(attribute, codePoints(value), MAX_PHOTO_URL, 'a photo URL the bridge fetches');
}

function passwordProblem(password: unknown): string | undefined {
  if (password === undefined || password === null || password === '') return undefined;
  // The password is never echoed, not even in part.
  if (typeof password !== 'string') return 'password must be a string';
  return tooLong('password', codePoints(password), HOMESERVER_LIMITS.password, 'a password on the homeserver') ?? characterProblem('password', password);
}

/**
 * Problems with the document that the homeserver would refuse; empty when it is fine. Each
 * starts with the attribute it is about (`emails[1].value ...`); values are quoted only in part,
 * the password never. `doc` may still hold the password.
 */
export function accountProblems(doc: Doc): string[] {
  const problems: (string | undefined)[] = [];
  const name = displayNameSource(doc);
  if (name) {
    const length = codePoints(name.value);
    problems.push(
      length > HOMESERVER_LIMITS.displayName
        ? `${name.attribute} would make a Matrix display name of ${count(length)} characters; the homeserver holds at most ${count(HOMESERVER_LIMITS.displayName)}`
        : characterProblem(name.attribute, name.value),
    );
  }
  for (const { entry, index } of indexedEntries(doc, 'emails')) {
    const value = str(entry['value']);
    if (value) problems.push(emailProblem(`emails[${index}].value`, value));
  }
  for (const { entry, index } of indexedEntries(doc, 'phoneNumbers')) {
    const value = str(entry['value']);
    if (value) problems.push(phoneProblem(`phoneNumbers[${index}].value`, value));
  }
  const photo = avatarSource(doc);
  if (photo) problems.push(photoProblem(photo));
  const externalId = str(doc['externalId']);
  if (externalId) problems.push(characterProblem('externalId', externalId));
  problems.push(passwordProblem(doc['password']));
  return problems.filter((p): p is string => p !== undefined);
}

/** The problem with a Matrix ID longer than the homeserver takes, if it is; the userName made it. */
export function matrixIdProblem(matrixId: string): string | undefined {
  const length = codePoints(matrixId);
  if (length <= HOMESERVER_LIMITS.userId) return undefined;
  const colon = matrixId.lastIndexOf(':');
  const shown = colon > 33 ? `${matrixId.slice(0, 32)}…${matrixId.slice(colon)}` : matrixId;
  return `userName gives the Matrix ID ${shown}, ${count(length)} characters long; the homeserver takes at most ${HOMESERVER_LIMITS.userId}, "@" and ":domain" included`;
}

export function desiredAccount(doc: Doc, matrixId: string, active: boolean): DesiredAccount {
  return {
    matrixId,
    localpart: matrixId.slice(1, matrixId.indexOf(':')),
    displayName: displayNameOf(doc),
    avatar: avatarOf(doc),
    emails: emailsOf(doc),
    msisdns: msisdnsOf(doc),
    externalId: str(doc['externalId']),
    active,
  };
}

/**
 * The Matrix IDs the bridge never touches: its own bot, matched exactly, and the operator's
 * provisioning.protectedUsers, which are regular expressions (also those starting with @).
 */
export function protectedPatterns(botUserId: string, configured: string[]): RegExp[] {
  return [new RegExp(`^${escapeRegex(botUserId)}$`), ...configured.map((pattern) => new RegExp(pattern))];
}
