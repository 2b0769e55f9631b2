import { expect } from 'chai';
import { normalizeUserInput, validateUser } from '../../src/scim/patch/apply.ts';
import { scimError, CORE, ENT, MATRIX } from '../support/scim.ts';



describe('POST/PUT body normalisation', () => {
  it('canonicalises attribute and sub-attribute names regardless of case', () => {
    const doc = normalizeUserInput({ USERNAME: 'Alice', Name: { GIVENNAME: 'Alice' }, Emails: [{ VALUE: 'a@x', Type: 'work' }] });
    expect(doc).to.deep.equal({ schemas: [CORE], userName: 'Alice', name: { givenName: 'Alice' }, emails: [{ value: 'a@x', type: 'work' }] });
  });

  it('keeps userName with its original case', () => {
    expect(normalizeUserInput({ userName: 'Alice.Smith@Example.com' })['userName']).to.equal('Alice.Smith@Example.com');
  });

  it('reads extension objects under URN keys in any case and lists them in schemas', () => {
    const doc = normalizeUserInput({ userName: 'a', [ENT.toUpperCase()]: { Department: 'Sales', manager: 'm-1' } });
    expect(doc[ENT]).to.deep.equal({ department: 'Sales', manager: { value: 'm-1' } });
    expect(doc['schemas']).to.deep.equal([CORE, ENT]);
  });

  it('accepts flat URN-qualified and dotted keys', () => {
    const doc = normalizeUserInput({ userName: 'a', [`${ENT}:costCenter`]: '41', 'name.familyName': 'F', name: { givenName: 'G' } });
    expect(doc[ENT]).to.deep.equal({ costCenter: '41' });
    expect(doc['name']).to.deep.equal({ familyName: 'F', givenName: 'G' });
  });

  it("reads OneLogin's urn:scim:schemas:core:2.0 as core", () => {
    const doc = normalizeUserInput({ schemas: ['urn:scim:schemas:core:2.0'], 'urn:scim:schemas:core:2.0': { userName: 'o', displayName: 'O' } });
    expect(doc).to.deep.equal({ schemas: [CORE], userName: 'o', displayName: 'O' });
  });

  it('coerces string booleans', () => {
    const doc = normalizeUserInput({ userName: 'a', active: 'FALSE', emails: [{ value: 'a@x', primary: 'True' }] });
    expect(doc['active']).to.equal(false);
    expect(doc['emails']).to.deep.equal([{ value: 'a@x', primary: true }]);
  });

  it('drops unknown attributes and schemas, nulls, empty values and read-only fields', () => {
    const doc = normalizeUserInput({
      userName: 'a',
      id: 'x',
      meta: { created: 'y' },
      groups: [{ value: 'g' }],
      roles: [],
      title: '',
      nickName: null,
      favouriteColour: 'blue',
      'urn:example:custom:2.0:User': { thing: 1 },
      [MATRIX]: { matrixId: '@a:x' },
      [ENT]: { manager: { value: 'm', displayName: 'Server fills this' }, division: null },
      emails: [{ value: 'a@x', $ref: null, nope: 1 }, null],
    });
    expect(doc).to.deep.equal({ schemas: [CORE, ENT], userName: 'a', [ENT]: { manager: { value: 'm' } }, emails: [{ value: 'a@x' }] });
  });

  it('keeps the password for the caller to take out', () => {
    expect(normalizeUserInput({ userName: 'a', password: 's3cret' })['password']).to.equal('s3cret');
  });

  it('deduplicates entries and keeps one primary', () => {
    const doc = normalizeUserInput({
      userName: 'a',
      emails: [
        { value: 'a@x', primary: true },
        { value: 'a@x', primary: true },
        { value: 'b@x', primary: true },
      ],
    });
    expect(doc['emails']).to.deep.equal([
      { value: 'a@x', primary: true },
      { value: 'b@x', primary: false },
    ]);
  });

  it('rejects a value of the wrong type, naming the attribute path', () => {
    expect(scimError(() => normalizeUserInput({ userName: 'a', name: 'Bob' })).detail).to.match(/^name /);
    expect(scimError(() => normalizeUserInput({ userName: 'a', emails: ['a@x'] })).detail).to.match(/emails\[0\]/);
    expect(scimError(() => normalizeUserInput({ userName: 'a', active: 'yes' })).detail).to.match(/active/);
    expect(scimError(() => normalizeUserInput({ userName: 'a', [ENT]: { department: { a: 1 } } })).detail).to.match(/department/);
    expect(scimError(() => normalizeUserInput({ userName: 'a', [ENT]: 'x' })).scimType).to.equal('invalidValue');
  });

  it('requires a non-empty userName', () => {
    for (const body of [{}, { userName: '' }, { userName: '   ' }, { userName: true }, { userName: null }]) {
      const error = scimError(() => normalizeUserInput(body));
      expect(error.status).to.equal(400);
      expect(error.scimType).to.equal('invalidValue');
    }
    expect(scimError(() => normalizeUserInput({})).detail).to.equal('userName is required');
  });

  it('rejects a body that is not an object as invalidSyntax', () => {
    expect(scimError(() => normalizeUserInput([])).scimType).to.equal('invalidSyntax');
  });

  it('validateUser accepts a user with userName and rejects one without', () => {
    expect(() => validateUser({ userName: 'a' })).to.not.throw();
    expect(scimError(() => validateUser({ displayName: 'a' })).scimType).to.equal('invalidValue');
  });
});
