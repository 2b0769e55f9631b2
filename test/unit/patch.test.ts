import { expect } from 'chai';
import { applyPatch } from '../../src/scim/patch/apply.ts';
import { ScimError } from '../../src/scim/errors.ts';
import { scimError, CORE, ENT, MATRIX } from '../support/scim.ts';

const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

const base = () => ({
  schemas: [CORE],
  userName: 'bjensen',
  active: true,
  name: { givenName: 'Barbara', familyName: 'Jensen' },
  emails: [
    { value: 'b@work.example', type: 'work', primary: true },
    { value: 'b@home.example', type: 'home' },
  ],
});

const patch = (doc: Record<string, unknown>, ...Operations: unknown[]) => applyPatch(doc, { schemas: [PATCH], Operations });


describe('PATCH envelope', () => {
  it('accepts a body without schemas', () => {
    expect(applyPatch(base(), { Operations: [{ op: 'replace', path: 'title', value: 'x' }] })['title']).to.equal('x');
  });

  it('rejects a wrong schemas URN, a missing Operations array, and a non-object operation as invalidSyntax', () => {
    for (const body of [
      { schemas: ['urn:example:wrong'], Operations: [] },
      { schemas: [PATCH] },
      { schemas: [PATCH], Operations: ['x'] },
      'nope',
    ]) {
      expect(scimError(() => applyPatch(base(), body)).scimType).to.equal('invalidSyntax');
    }
  });

  it('takes op names in any case and rejects unknown ones', () => {
    const doc = patch(base(), { op: 'Replace', path: 'title', value: 'a' }, { op: 'ADD', path: 'nickName', value: 'b' });
    expect(doc).to.include({ title: 'a', nickName: 'b' });
    expect(scimError(() => patch(base(), { op: 'delete', path: 'title' })).scimType).to.equal('invalidSyntax');
  });
});

describe('PATCH with a path', () => {
  it('replaces, adds and removes simple attributes', () => {
    let doc = patch(base(), { op: 'add', path: 'title', value: 'Guide' });
    expect(doc['title']).to.equal('Guide');
    doc = patch(doc, { op: 'remove', path: 'title' });
    expect(doc).to.not.have.property('title');
  });

  it('coerces "False" for active (Entra)', () => {
    expect(patch(base(), { op: 'Replace', path: 'active', value: 'False' })['active']).to.equal(false);
    expect(patch(base(), { op: 'Replace', path: 'ACTIVE', value: 'true' })['active']).to.equal(true);
  });

  it('sets and removes one sub-attribute of a complex attribute', () => {
    let doc = patch(base(), { op: 'Replace', path: 'name.familyName', value: 'Smith' });
    expect(doc['name']).to.deep.equal({ givenName: 'Barbara', familyName: 'Smith' });
    doc = patch(doc, { op: 'remove', path: 'name.givenName' });
    expect(doc['name']).to.deep.equal({ familyName: 'Smith' });
  });

  it('merges a complex value into the existing one', () => {
    expect(patch(base(), { op: 'replace', path: 'name', value: { middleName: 'J' } })['name']).to.deep.equal({
      givenName: 'Barbara',
      familyName: 'Jensen',
      middleName: 'J',
    });
  });

  it("updates the entry a filter selects (Entra's emails[type eq \"work\"].value)", () => {
    const doc = patch(base(), { op: 'Replace', path: 'emails[type eq "work"].value', value: 'x@y' });
    expect(doc['emails']).to.deep.equal([
      { value: 'x@y', type: 'work', primary: true },
      { value: 'b@home.example', type: 'home' },
    ]);
  });

  it('creates the entry when the filter matches nothing', () => {
    const doc = patch({ userName: 'u' }, { op: 'Add', path: 'phoneNumbers[type eq "mobile"].value', value: '+1 555' });
    expect(doc['phoneNumbers']).to.deep.equal([{ type: 'mobile', value: '+1 555' }]);
    const doc2 = patch({ userName: 'u' }, { op: 'replace', path: 'addresses[type eq "work"]', value: { locality: 'Paris' } });
    expect(doc2['addresses']).to.deep.equal([{ type: 'work', locality: 'Paris' }]);
  });

  it('cannot create an entry from a filter that describes none', () => {
    const error = scimError(() => patch({ userName: 'u' }, { op: 'replace', path: 'emails[value co "x"].type', value: 'work' }));
    expect(error.scimType).to.equal('noTarget');
  });

  it('removes the entries a filter selects, and nothing when it matches none', () => {
    expect(patch(base(), { op: 'remove', path: 'emails[type eq "WORK"]' })['emails']).to.deep.equal([{ value: 'b@home.example', type: 'home' }]);
    expect(patch(base(), { op: 'remove', path: 'emails[type eq "other"]' })['emails']).to.deep.equal(base().emails);
  });

  it('removes the whole attribute when the last entry goes', () => {
    const doc = patch(base(), { op: 'remove', path: 'emails[type eq "work" or type eq "home"]' });
    expect(doc).to.not.have.property('emails');
  });

  it('removes by value, matching entries on value only', () => {
    const doc = patch(base(), { op: 'Remove', path: 'emails', value: [{ value: 'B@HOME.example', $ref: null }] });
    expect(doc['emails']).to.deep.equal([{ value: 'b@work.example', type: 'work', primary: true }]);
  });

  it('appends to a multi-valued attribute without duplicating identical entries', () => {
    const doc = patch(base(), { op: 'add', path: 'emails', value: [{ value: 'b@home.example', type: 'home' }, { value: 'n@x', type: 'other' }] });
    expect(doc['emails']).to.have.length(3);
  });

  it('clears other primaries when one entry becomes primary', () => {
    const added = patch(base(), { op: 'add', path: 'emails', value: [{ value: 'n@x', type: 'other', primary: 'True' }] });
    expect((added['emails'] as { primary?: boolean }[]).map((e) => e.primary)).to.deep.equal([false, undefined, true]);
    const filtered = patch(base(), { op: 'replace', path: 'emails[type eq "home"].primary', value: true });
    expect((filtered['emails'] as { primary?: boolean }[]).map((e) => e.primary)).to.deep.equal([false, true]);
  });

  it('replaces a whole multi-valued attribute without a filter, also with []', () => {
    expect(patch(base(), { op: 'replace', path: 'emails', value: [{ value: 'only@x' }] })['emails']).to.deep.equal([{ value: 'only@x' }]);
    expect(patch(base(), { op: 'replace', path: 'emails', value: [] })).to.not.have.property('emails');
  });

  it('sets extension attributes by URN path, and manager from a bare string', () => {
    const doc = patch(
      base(),
      { op: 'Add', path: `${ENT}:employeeNumber`, value: '701984' },
      { op: 'Replace', path: `${ENT}:manager`, value: 'mgr-1' },
    );
    expect(doc[ENT]).to.deep.equal({ employeeNumber: '701984', manager: { value: 'mgr-1' } });
    expect(doc['schemas']).to.deep.equal([CORE, ENT]);
    const removed = patch(doc, { op: 'remove', path: `${ENT}:manager` }, { op: 'remove', path: `${ENT}:employeeNumber` });
    expect(removed).to.not.have.property(ENT);
    expect(removed['schemas']).to.deep.equal([CORE]);
  });

  it('replaces a whole extension given by its URN path', () => {
    const doc = patch(base(), { op: 'replace', path: ENT, value: { department: 'R&D' } });
    expect(doc[ENT]).to.deep.equal({ department: 'R&D' });
    expect(patch(doc, { op: 'remove', path: ENT })).to.not.have.property(ENT);
  });

  it('treats replace with null as removal', () => {
    expect(patch({ ...base(), title: 'x' }, { op: 'replace', path: 'title', value: null })).to.not.have.property('title');
  });
});

describe('PATCH without a path', () => {
  it("applies Okta's replace {active: false}", () => {
    expect(patch(base(), { op: 'replace', value: { active: false } })['active']).to.equal(false);
  });

  it('accepts dotted and URN keys in one value (Entra aadOptscim062020)', () => {
    const doc = patch(base(), {
      op: 'Replace',
      value: {
        'name.givenName': 'Babs',
        [`${ENT}:department`]: 'Tours',
        [`${CORE}:displayName`]: 'Babs J',
        active: 'False',
        'emails[type eq "work"].value': 'new@work',
      },
    });
    expect(doc['name']).to.deep.equal({ givenName: 'Babs', familyName: 'Jensen' });
    expect(doc[ENT]).to.deep.equal({ department: 'Tours' });
    expect(doc).to.include({ displayName: 'Babs J', active: false });
    expect((doc['emails'] as { value: string }[])[0]?.value).to.equal('new@work');
  });

  it('accepts a whole-extension key whose value is an object', () => {
    const doc = patch(base(), { op: 'add', value: { [ENT]: { costCenter: '4130', manager: { value: 'm' } } } });
    expect(doc[ENT]).to.deep.equal({ costCenter: '4130', manager: { value: 'm' } });
  });

  it('ignores id, schemas and meta inside the value', () => {
    const doc = patch(base(), { op: 'replace', value: { id: 'other', schemas: ['x'], meta: { version: '1' }, title: 't' } });
    expect(doc).to.not.have.property('id');
    expect(doc).to.not.have.property('meta');
    expect(doc['title']).to.equal('t');
  });

  it('rejects remove without a path as noTarget', () => {
    expect(scimError(() => patch(base(), { op: 'remove' })).scimType).to.equal('noTarget');
  });

  it('rejects a non-object value as invalidValue', () => {
    expect(scimError(() => patch(base(), { op: 'replace', value: 'x' })).scimType).to.equal('invalidValue');
  });
});

describe('PATCH without a path, lenient like POST and PUT', () => {
  it('ignores unknown keys and read-only attributes that clients echo back', () => {
    const doc = patch(base(), {
      op: 'replace',
      value: { favouriteColour: 'x', groups: [{ value: 'g' }], [MATRIX]: { matrixId: '@x:y' }, title: 'Boss' },
    });
    expect(doc['title']).to.equal('Boss');
    expect(doc).to.not.have.property('favouriteColour');
    expect(doc).to.not.have.property('groups');
    expect(doc).to.not.have.property(MATRIX);
  });
});

describe('PATCH errors', () => {
  const cases: [string, unknown, string, RegExp][] = [
    ['an unknown attribute path', { op: 'replace', path: 'favouriteColour', value: 'x' }, 'invalidPath', /favouriteColour/],
    ['a read-only attribute (groups)', { op: 'add', path: 'groups', value: [{ value: 'g' }] }, 'mutability', /groups/],
    ['a read-only attribute (id)', { op: 'replace', path: 'id', value: 'x' }, 'mutability', /id/],
    ['a read-only attribute (meta.created)', { op: 'replace', path: 'meta.created', value: '2020-01-01T00:00:00Z' }, 'mutability', /meta/],
    ['the read-only matrixId', { op: 'replace', path: `${MATRIX}:matrixId`, value: '@x:y' }, 'mutability', /matrixId/],
    ['a non-boolean for active', { op: 'replace', path: 'active', value: 'maybe' }, 'invalidValue', /active/],
    ['a string where a complex value is needed', { op: 'replace', path: 'name', value: 'Bob' }, 'invalidValue', /name/],
    ['an object where a string is needed', { op: 'replace', path: 'title', value: { a: 1 } }, 'invalidValue', /title/],
    ['removing userName', { op: 'remove', path: 'userName' }, 'invalidValue', /userName is required/],
    ['a filter on a single-valued attribute', { op: 'replace', path: 'name[givenName eq "x"].familyName', value: 'y' }, 'invalidPath', /name/],
  ];
  for (const [what, operation, scimType, detail] of cases) {
    it(`rejects ${what} with ${scimType}`, () => {
      const error = scimError(() => patch(base(), operation));
      expect(error.status).to.equal(400);
      expect(error.scimType).to.equal(scimType);
      expect(error.detail).to.match(detail);
    });
  }

  it('leaves the input untouched when a later operation fails', () => {
    const doc = base();
    const before = structuredClone(doc);
    expect(() =>
      patch(doc, { op: 'replace', path: 'title', value: 'x' }, { op: 'remove', path: 'emails[type eq "work"]' }, { op: 'replace', path: 'nope', value: 1 }),
    ).to.throw(ScimError);
    expect(doc).to.deep.equal(before);
  });

  it('never mutates the input on success', () => {
    const doc = base();
    const before = structuredClone(doc);
    const after = patch(doc, { op: 'replace', path: 'emails[type eq "work"].value', value: 'x@y' }, { op: 'replace', path: 'name.givenName', value: 'B' });
    expect(doc).to.deep.equal(before);
    expect(after).to.not.deep.equal(before);
  });
});
