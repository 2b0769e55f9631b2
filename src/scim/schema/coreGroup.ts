/**
 * The core Group schema (RFC 7643 §4.2, characteristics as in §8.7.1), as data. Each group is a
 * Matrix room; its members are users the bridge provisioned.
 */
import { attribute, complex, str, type SchemaDef } from './types.ts';
import { CORE_GROUP_SCHEMA } from './urns.ts';

const immutable = { mutability: 'immutable' } as const;

const members = complex(
  'members',
  'The members of the group; each becomes a member of its Matrix room.',
  [
    // An immutable value identifies the entry: members are added and removed, never edited, and
    // the PATCH engine de-duplicates them on it. Ids compare exactly, like `id`.
    str('value', 'The id of the member, a SCIM User.', { ...immutable, caseExact: true, required: true }),
    attribute('$ref', 'reference', "The URI of the member's resource.", { ...immutable, referenceTypes: ['User', 'Group'] }),
    // Not in RFC 7643's Group schema (§8.7.1); served on request only, so that members
    // come back exactly as the client wrote them.
    str('display', "The member's display name; filled in by the server (ask for members.display).", {
      mutability: 'readOnly',
      returned: 'request',
    }),
    str('type', 'The kind of resource the member is.', { ...immutable, canonicalValues: ['User', 'Group'] }),
  ],
  { multiValued: true },
);

export const CORE_GROUP: SchemaDef = {
  id: CORE_GROUP_SCHEMA,
  name: 'Group',
  description: 'A group of users; the bridge keeps a Matrix room with exactly its members',
  attributes: [
    str('displayName', 'The name of the group; unique on this server (compared without regard to case), and the name of its room.', {
      required: true,
      uniqueness: 'server',
    }),
    members,
  ],
};
