import { expect } from 'chai';
import { normalizeUserInput, validateUser } from '../../src/scim/patch/apply.ts';
import { normalizeValue } from '../../src/scim/patch/values.ts';
import { attribute } from '../../src/scim/schema/types.ts';
import { scimError, CORE, ENT, MATRIX } from '../support/scim.ts';

/** The ScimError a body is refused with: 400 invalidValue, or the test fails. */
function refused(body: unknown): string {
  const error = scimError(() => normalizeUserInput(body));
  expect(error.status).to.equal(400);
  expect(error.scimType).to.equal('invalidValue');
  return error.detail;
}

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

  it('refuses a number, boolean or object where a string belongs, naming the attribute', () => {
    expect(refused({ userName: 5 })).to.equal('userName must be a string, not a number');
    expect(refused({ userName: 'a', displayName: true })).to.equal('displayName must be a string, not a boolean');
    expect(refused({ userName: 'a', password: 12345678 })).to.equal('password must be a string, not a number');
    expect(refused({ userName: 'a', name: { givenName: 7 } })).to.match(/^name\.givenName must be a string/);
    expect(refused({ userName: 'a', emails: [{ value: 42 }] })).to.match(/^emails\[0\]\.value must be a string/);
    expect(refused({ userName: 'a', [ENT]: { employeeNumber: 42 } })).to.match(new RegExp(`^${ENT}:employeeNumber must be a string`));
    expect(refused({ userName: 'a', title: { text: 'x' } })).to.match(/^title must be a single string/);
  });

  it('still coerces "True" and "False" for boolean attributes, and ignores nulls and empty strings', () => {
    const doc = normalizeUserInput({ userName: 'a', active: 'True', displayName: null, title: '', emails: [{ value: 'a@x.org', primary: 'false' }] });
    expect(doc).to.deep.equal({ schemas: [CORE], userName: 'a', active: true, emails: [{ value: 'a@x.org', primary: false }] });
  });

  it('refuses a lone UTF-16 surrogate in any attribute it keeps, at any depth, naming it', () => {
    expect(refused({ userName: 'a', displayName: 'Ali\ud83dce' })).to.match(/^displayName holds a lone UTF-16 surrogate \(\\uD83D at index 3\)/);
    expect(refused({ userName: 'a', password: 'pass\udc00word' })).to.match(/^password holds a lone UTF-16 surrogate/);
    expect(refused({ userName: 'a\ud800' })).to.match(/^userName holds/);
    expect(refused({ userName: 'a', name: { familyName: '\ud800' } })).to.match(/^name\.familyName holds/);
    expect(refused({ userName: 'a', emails: [{ value: 'a@x.org', display: 'x\udbff' }] })).to.match(/^emails\[0\]\.display holds/);
    expect(refused({ userName: 'a', [ENT]: { manager: { value: '\ud800' } } })).to.match(new RegExp(`^${ENT}:manager\\.value holds`));
    expect(refused({ userName: 'a', [MATRIX]: { displayName: 'x\udfff' } })).to.match(new RegExp(`^${MATRIX}:displayName holds`));
  });

  it('takes whole surrogate pairs (emoji) as they are', () => {
    expect(normalizeUserInput({ userName: 'a', displayName: 'Alice 😀' })['displayName']).to.equal('Alice 😀');
  });

  it('does not look into attributes it drops: a lone surrogate in an unknown one is ignored with it', () => {
    // Rule 10 of idp-compat.md: what the bridge neither stores nor passes on cannot fail the request.
    const doc = normalizeUserInput({ userName: 'a', favouriteColour: 'blue\ud800', 'urn:example:custom:2.0:User': { thing: '\udc00' }, meta: { x: '\ud800' } });
    expect(doc).to.deep.equal({ schemas: [CORE], userName: 'a' });
  });

  it('refuses an entry of emails, phoneNumbers or photos whose value is blank or missing, naming it', () => {
    expect(refused({ userName: 'a', emails: [{ value: 'a@x.org' }, { value: '   ', type: 'home' }] })).to.equal(
      'emails[1].value is blank: each entry of emails needs one',
    );
    expect(refused({ userName: 'a', emails: [{ type: 'work', primary: true }] })).to.equal('emails[0].value is missing or empty: each entry of emails needs one');
    expect(refused({ userName: 'a', emails: [{ value: '', type: 'work' }] })).to.match(/^emails\[0\]\.value is missing or empty/);
    expect(refused({ userName: 'a', phoneNumbers: [{ value: null, type: 'mobile' }] })).to.match(/^phoneNumbers\[0\]\.value/);
    expect(refused({ userName: 'a', photos: [{ value: ' ', type: 'photo' }] })).to.match(/^photos\[0\]\.value is blank/);
  });

  it('drops an entry that says nothing at all, as it drops nulls', () => {
    const doc = normalizeUserInput({ userName: 'a', emails: [null, {}, { value: '' }, { value: null }, { value: 'a@x.org' }], phoneNumbers: [{ value: '' }] });
    expect(doc).to.deep.equal({ schemas: [CORE], userName: 'a', emails: [{ value: 'a@x.org' }] });
  });

  it('holds integer attributes to the range a JSON number holds exactly', () => {
    const counter = attribute('counter', 'integer', 'A count.');
    expect(normalizeValue(counter, 2 ** 53 - 1, 'counter')).to.equal(2 ** 53 - 1);
    expect(normalizeValue(counter, '42', 'counter')).to.equal(42);
    expect(scimError(() => normalizeValue(counter, 2 ** 53, 'counter')).detail).to.match(/^counter must be an integer between/);
    expect(scimError(() => normalizeValue(counter, 1.5, 'counter')).scimType).to.equal('invalidValue');
  });
});
