import { expect } from 'chai';
import { applyPatch } from '../../src/scim/patch/apply.ts';
import { GROUP_RESOURCE } from '../../src/scim/schema/attributes.ts';
import { scimError } from '../support/scim.ts';

const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

const base = () => ({
  schemas: [GROUP],
  displayName: 'Engineering',
  externalId: 'eng-1',
  members: [{ value: 'u-1' }, { value: 'u-2' }, { value: 'u-3' }],
});

const patch = (doc: Record<string, unknown>, ...Operations: unknown[]) => applyPatch(doc, { schemas: [PATCH], Operations }, GROUP_RESOURCE);
const ids = (doc: Record<string, unknown>) => ((doc['members'] as { value: string }[] | undefined) ?? []).map((m) => m.value);

describe('group PATCH: adding members', () => {
  it("appends Entra's {value, $ref: null} entries, dropping the null $ref", () => {
    // Entra's exact request (idp-compat.md, Entra, Groups).
    const doc = applyPatch(
      base(),
      { schemas: [PATCH], Operations: [{ op: 'Add', path: 'members', value: [{ value: 'u-4', $ref: null }] }] },
      GROUP_RESOURCE,
    );
    expect(doc['members']).to.deep.equal([{ value: 'u-1' }, { value: 'u-2' }, { value: 'u-3' }, { value: 'u-4' }]);
  });

  it('appends {value} entries and de-duplicates on value, whatever else the entry holds', () => {
    const doc = patch(base(), { op: 'add', path: 'members', value: [{ value: 'u-2', type: 'User' }, { value: 'u-5' }, { value: 'u-5', display: 'x' }] });
    expect(ids(doc)).to.deep.equal(['u-1', 'u-2', 'u-3', 'u-5']);
  });

  it('compares member ids case-sensitively', () => {
    expect(ids(patch(base(), { op: 'add', path: 'members', value: [{ value: 'U-1' }] }))).to.deep.equal(['u-1', 'u-2', 'u-3', 'U-1']);
  });

  it('adds to a group without members, and with a path-less add', () => {
    const { members: _m, ...empty } = base();
    expect(ids(patch(empty, { op: 'add', path: 'members', value: [{ value: 'u-9' }] }))).to.deep.equal(['u-9']);
    expect(ids(patch(empty, { op: 'add', value: { members: [{ value: 'u-8' }] } }))).to.deep.equal(['u-8']);
  });

  it('keeps $ref and type, but never the read-only display (the server fills it)', () => {
    const doc = patch(base(), { op: 'add', path: 'members', value: [{ value: 'u-4', $ref: 'https://x/Users/u-4', type: 'User', display: 'Dana' }] });
    expect((doc['members'] as unknown[])[3]).to.deep.equal({ value: 'u-4', $ref: 'https://x/Users/u-4', type: 'User' });
  });

  for (const bad of [{}, { value: '' }, { value: null }, { display: 'No Id' }, { $ref: null }]) {
    it(`refuses the member entry ${JSON.stringify(bad)} with 400 invalidValue naming it`, () => {
      const error = scimError(() => patch(base(), { op: 'add', path: 'members', value: [{ value: 'u-4' }, bad] }));
      expect(error.status).to.equal(400);
      expect(error.scimType).to.equal('invalidValue');
      expect(error.detail).to.contain('members[1]').and.contain('value');
    });
  }

  it('refuses a member value that is not a string', () => {
    expect(scimError(() => patch(base(), { op: 'add', path: 'members', value: [{ value: { id: 'u-4' } }] })).scimType).to.equal('invalidValue');
  });
});

describe('group PATCH: removing members', () => {
  it('removes by a value filter', () => {
    expect(ids(patch(base(), { op: 'remove', path: 'members[value eq "u-2"]' }))).to.deep.equal(['u-1', 'u-3']);
  });

  it("removes by Okta's filter with or", () => {
    // Okta's exact request shape (idp-compat.md, Okta, Group push).
    const doc = applyPatch(
      base(),
      { schemas: [PATCH], Operations: [{ op: 'remove', path: 'members[value eq "u-1" or value eq "u-3"]' }] },
      GROUP_RESOURCE,
    );
    expect(ids(doc)).to.deep.equal(['u-2']);
  });

  it('a value filter compares ids exactly and matching nothing changes nothing', () => {
    expect(ids(patch(base(), { op: 'remove', path: 'members[value eq "U-2"]' }))).to.deep.equal(['u-1', 'u-2', 'u-3']);
  });

  it("removes by Entra's value list, matching on value only", () => {
    // Entra's exact request (idp-compat.md, Entra, Groups).
    const doc = applyPatch(
      base(),
      { schemas: [PATCH], Operations: [{ op: 'Remove', path: 'members', value: [{ value: 'u-2' }] }] },
      GROUP_RESOURCE,
    );
    expect(ids(doc)).to.deep.equal(['u-1', 'u-3']);
    const stored = { ...base(), members: [{ value: 'u-1', type: 'User' }, { value: 'u-2', $ref: 'https://x/Users/u-2', type: 'User' }] };
    const withRef = patch(stored, { op: 'Remove', path: 'members', value: [{ value: 'u-2', $ref: null, display: 'other', type: 'Group' }] });
    expect(ids(withRef)).to.deep.equal(['u-1']);
  });

  it('refuses a remove-by-value entry without a value, naming it', () => {
    const error = scimError(() => patch(base(), { op: 'remove', path: 'members', value: [{ value: 'u-1' }, { $ref: null }] }));
    expect(error.scimType).to.equal('invalidValue');
    expect(error.detail).to.contain('members[1]');
  });

  it('removes every member with remove members and no value', () => {
    expect(patch(base(), { op: 'Remove', path: 'members' })).to.not.have.property('members');
  });

  it('removes nothing with an empty value list', () => {
    expect(ids(patch(base(), { op: 'remove', path: 'members', value: [] }))).to.deep.equal(['u-1', 'u-2', 'u-3']);
  });
});

describe('group PATCH: replacing members', () => {
  it('clears with replace members []', () => {
    expect(patch(base(), { op: 'replace', path: 'members', value: [] })).to.not.have.property('members');
    expect(patch(base(), { op: 'Replace', value: { members: [] } })).to.not.have.property('members');
  });

  it('sets exactly the list given, de-duplicated', () => {
    const doc = patch(base(), { op: 'replace', path: 'members', value: [{ value: 'u-3' }, { value: 'u-7' }, { value: 'u-7' }] });
    expect(doc['members']).to.deep.equal([{ value: 'u-3' }, { value: 'u-7' }]);
  });

  it('refuses a replacement entry without a value', () => {
    expect(scimError(() => patch(base(), { op: 'replace', path: 'members', value: [{ display: 'x' }] })).scimType).to.equal('invalidValue');
  });
});

describe('group PATCH: renaming and the envelope', () => {
  it("renames with Okta's path-less replace, ignoring id, schemas and meta in the value", () => {
    // Okta's exact request shape (idp-compat.md, Okta, Group push).
    const doc = applyPatch(
      base(),
      {
        schemas: [PATCH],
        Operations: [
          {
            op: 'replace',
            value: { id: 'okta-sends-the-id', displayName: 'Platform', schemas: [GROUP], meta: { resourceType: 'Group' } },
          },
        ],
      },
      GROUP_RESOURCE,
    );
    expect(doc).to.deep.equal({ ...base(), displayName: 'Platform' });
  });

  it('renames and replaces members in one path-less replace', () => {
    const doc = patch(base(), { op: 'replace', value: { id: 'g-1', displayName: 'Platform', members: [{ value: 'u-9' }] } });
    expect(doc).to.deep.include({ displayName: 'Platform', members: [{ value: 'u-9' }] });
    expect(doc).to.not.have.property('id');
  });

  it('renames with a path and with the attribute name in any case', () => {
    expect(patch(base(), { op: 'Replace', path: 'DISPLAYNAME', value: 'Ops' })['displayName']).to.equal('Ops');
  });

  it('takes op names in any case', () => {
    const doc = patch(
      base(),
      { op: 'ADD', path: 'members', value: [{ value: 'u-4' }] },
      { op: 'REMOVE', path: 'members[value eq "u-1"]' },
      { op: 'rePlace', path: 'externalId', value: 'eng-2' },
    );
    expect(ids(doc)).to.deep.equal(['u-2', 'u-3', 'u-4']);
    expect(doc['externalId']).to.equal('eng-2');
  });

  it('writes schemas as the Group schema, and accepts core Group URN paths', () => {
    const doc = patch({ ...base(), schemas: ['junk'] }, { op: 'replace', path: `${GROUP}:displayName`, value: 'X' });
    expect(doc['schemas']).to.deep.equal([GROUP]);
    expect(doc['displayName']).to.equal('X');
  });

  it('refuses removing or emptying the displayName, which every group needs', () => {
    expect(scimError(() => patch(base(), { op: 'remove', path: 'displayName' })).scimType).to.equal('invalidValue');
    expect(scimError(() => patch(base(), { op: 'replace', path: 'displayName', value: '' })).scimType).to.equal('invalidValue');
  });

  it('refuses User attributes as paths, and a read-only member sub-attribute', () => {
    expect(scimError(() => patch(base(), { op: 'replace', path: 'userName', value: 'x' })).scimType).to.equal('invalidPath');
    expect(scimError(() => patch(base(), { op: 'replace', path: 'members[value eq "u-1"].display', value: 'x' })).scimType).to.equal('mutability');
  });

  it('ignores unknown keys in a path-less replace', () => {
    expect(patch(base(), { op: 'replace', value: { displayName: 'Y', description: 'not in the schema' } })).to.deep.equal({ ...base(), displayName: 'Y' });
  });

  it('leaves its input untouched', () => {
    const doc = base();
    patch(doc, { op: 'remove', path: 'members' }, { op: 'replace', path: 'displayName', value: 'Z' });
    expect(doc).to.deep.equal(base());
  });
});
