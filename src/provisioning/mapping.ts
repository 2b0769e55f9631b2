import { MATRIX_USER_SCHEMA } from '../scim/schema/urns.ts';
import { escapeRegex } from '../config/registration.ts';

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
    throw new Error(`userName "${userName}" gives no usable Matrix localpart`);
  }
  return out;
}

function str(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : null;
}

function entries(doc: Doc, attr: string): Doc[] {
  const value = doc[attr];
  return Array.isArray(value) ? value.filter((e): e is Doc => !!e && typeof e === 'object') : [];
}

export function displayNameOf(doc: Doc): string | null {
  const matrix = doc[MATRIX_USER_SCHEMA];
  const override = matrix && typeof matrix === 'object' ? str((matrix as Doc)['displayName']) : null;
  if (override) return override;
  const direct = str(doc['displayName']);
  if (direct) return direct;
  const name = doc['name'];
  if (name && typeof name === 'object') {
    const n = name as Doc;
    const formatted = str(n['formatted']);
    if (formatted) return formatted;
    const parts = [str(n['givenName']), str(n['familyName'])].filter((p): p is string => p !== null);
    if (parts.length > 0) return parts.join(' ');
  }
  return null;
}

/** The primary entry of a multi-valued attribute, else its first. */
function primaryFirst(list: Doc[]): Doc[] {
  const primary = list.filter((e) => e['primary'] === true);
  return [...primary, ...list.filter((e) => e['primary'] !== true)];
}

export function avatarOf(doc: Doc): AvatarSource | null {
  const photo = primaryFirst(entries(doc, 'photos'))[0];
  const value = photo ? str(photo['value']) : null;
  if (!value) return null;
  if (value.startsWith('mxc://')) return { kind: 'mxc', uri: value };
  return { kind: 'url', url: value };
}

export function emailsOf(doc: Doc): string[] {
  const out = new Set<string>();
  for (const e of primaryFirst(entries(doc, 'emails'))) {
    const value = str(e['value']);
    if (value) out.add(value.toLowerCase());
  }
  return [...out];
}

/** Phone numbers as Synapse stores msisdns: digits only, country code first. */
export function msisdnsOf(doc: Doc): string[] {
  const out = new Set<string>();
  for (const e of primaryFirst(entries(doc, 'phoneNumbers'))) {
    const value = str(e['value']);
    if (!value) continue;
    const digits = value.replace(/^tel:/i, '').replace(/[^0-9]/g, '');
    if (digits.length >= 5) out.add(digits);
  }
  return [...out];
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Problems with the document that the homeserver would refuse; empty when it is fine. */
export function accountProblems(doc: Doc): string[] {
  const problems: string[] = [];
  for (const e of entries(doc, 'emails')) {
    const value = str(e['value']);
    if (value && !EMAIL.test(value)) problems.push(`emails: "${value}" is not an email address`);
  }
  for (const e of entries(doc, 'phoneNumbers')) {
    const value = str(e['value']);
    if (value && value.replace(/^tel:/i, '').replace(/[^0-9]/g, '').length < 5) {
      problems.push(`phoneNumbers: "${value}" is not a phone number`);
    }
  }
  const avatar = avatarOf(doc);
  if (avatar?.kind === 'url' && !/^https?:\/\//i.test(avatar.url)) {
    problems.push(`photos: "${avatar.url}" is neither an mxc:// nor an http(s) URL`);
  }
  return problems;
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
