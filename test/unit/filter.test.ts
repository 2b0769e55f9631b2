import { expect } from 'chai';
import { matchesFilter, parseFilter, parsePatchPath } from '../../src/scim/filter/parse.ts';
import type { Filter } from '../../src/scim/filter/ast.ts';
import { resolveAttribute, schemaDocuments } from '../../src/scim/schema/attributes.ts';
import { scimError, CORE, ENT } from '../support/scim.ts';



const eq = (attr: string, value: string | number | boolean | null): Filter => ({ kind: 'compare', op: 'eq', path: { attr }, value });

const doc = {
  userName: 'BJensen',
  externalId: 'Ext-1',
  displayName: 'Babs Jensen',
  active: true,
  title: 'Tour Guide',
  name: { givenName: 'Barbara', familyName: 'Jensen' },
  emails: [
    { value: 'bjensen@example.com', type: 'work', primary: true },
    { value: 'babs@home.example', type: 'home' },
  ],
  meta: { lastModified: '2024-05-01T10:00:00Z' },
  [ENT]: { employeeNumber: '701984', manager: { value: 'Mgr-26118' } },
};
const matches = (text: string): boolean => matchesFilter(doc, parseFilter(text));

describe('attribute resolution', () => {
  it('resolves core, sub-attribute and URN-qualified paths ignoring case', () => {
    expect(resolveAttribute('USERNAME')).to.include({ attr: 'userName' });
    expect(resolveAttribute('name.GIVENNAME')).to.include({ attr: 'name', sub: 'givenName' });
    expect(resolveAttribute(`${CORE}:userName`)).to.not.have.property('schema');
    expect(resolveAttribute(`${ENT.toLowerCase()}:EMPLOYEENUMBER`)).to.include({ schema: ENT, attr: 'employeeNumber' });
    expect(resolveAttribute(`${ENT}:manager.value`)).to.include({ schema: ENT, attr: 'manager', sub: 'value' });
    expect(resolveAttribute('urn:scim:schemas:core:2.0:displayName')).to.include({ attr: 'displayName' });
  });

  it('returns undefined for unknown attributes, sub-attributes and schemas', () => {
    expect(resolveAttribute('nope')).to.equal(undefined);
    expect(resolveAttribute('name.nope')).to.equal(undefined);
    expect(resolveAttribute('userName.x')).to.equal(undefined);
    expect(resolveAttribute('urn:example:Foo:bar')).to.equal(undefined);
    expect(resolveAttribute('a.b.c')).to.equal(undefined);
  });

  it('renders the three User schemas and the Group schema for /Schemas with meta', () => {
    const docs = schemaDocuments('https://x/scim/v2');
    expect(docs.map((d) => d['id'])).to.deep.equal([
      CORE,
      ENT,
      'urn:matrix:params:scim:schemas:extension:matrix:2.0:User',
      'urn:ietf:params:scim:schemas:core:2.0:Group',
    ]);
    expect(docs[0]?.['meta']).to.deep.equal({ resourceType: 'Schema', location: `https://x/scim/v2/Schemas/${CORE}` });
    const attrs = docs[0]?.['attributes'] as Record<string, unknown>[];
    expect(attrs.find((a) => a['name'] === 'userName')).to.include({ required: true, caseExact: false, uniqueness: 'server' });
    expect(attrs.find((a) => a['name'] === 'password')).to.include({ mutability: 'writeOnly', returned: 'never' });
    expect(attrs.find((a) => a['name'] === 'groups')).to.include({ mutability: 'readOnly', multiValued: true });
  });
});

describe('filter parsing', () => {
  it('parses every comparison operator, in any case', () => {
    for (const op of ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le']) {
      expect(parseFilter(`title ${op.toUpperCase()} "x"`)).to.deep.equal({ kind: 'compare', op, path: { attr: 'title' }, value: 'x' });
    }
  });

  it('parses pr', () => {
    expect(parseFilter('title pr')).to.deep.equal({ kind: 'present', path: { attr: 'title' } });
  });

  it('canonicalises attribute names', () => {
    expect(parseFilter('USERNAME eq "a"')).to.deep.equal(eq('userName', 'a'));
    expect(parseFilter('Name.FamilyName eq "a"')).to.deep.equal({ kind: 'compare', op: 'eq', path: { attr: 'name', sub: 'familyName' }, value: 'a' });
  });

  it('gives and precedence over or', () => {
    expect(parseFilter('title eq "a" or title eq "b" and title eq "c"')).to.deep.equal({
      kind: 'logical',
      op: 'or',
      left: { kind: 'compare', op: 'eq', path: { attr: 'title' }, value: 'a' },
      right: { kind: 'logical', op: 'and', left: eq('title', 'b'), right: eq('title', 'c') },
    });
  });

  it('lets parentheses override precedence and binds not tightest', () => {
    const f = parseFilter('(title eq "a" or title eq "b") and not (active eq true)');
    expect(f).to.deep.equal({
      kind: 'logical',
      op: 'and',
      left: { kind: 'logical', op: 'or', left: eq('title', 'a'), right: eq('title', 'b') },
      right: { kind: 'not', filter: eq('active', true) },
    });
  });

  it('parses value paths with sub-attribute conditions', () => {
    expect(parseFilter('emails[type eq "work" and value co "@x"]')).to.deep.equal({
      kind: 'valuePath',
      path: { attr: 'emails' },
      filter: { kind: 'logical', op: 'and', left: eq('type', 'work'), right: { kind: 'compare', op: 'co', path: { attr: 'value' }, value: '@x' } },
    });
  });

  it("folds Entra's emails[type eq \"work\"].value eq \"x\" into one value path", () => {
    expect(parseFilter('emails[type eq "work"].value eq "x"')).to.deep.equal({
      kind: 'valuePath',
      path: { attr: 'emails' },
      filter: { kind: 'logical', op: 'and', left: eq('type', 'work'), right: eq('value', 'x') },
    });
  });

  it('takes unquoted values as strings (externalId eq jyoung)', () => {
    expect(parseFilter('externalId eq jyoung')).to.deep.equal(eq('externalId', 'jyoung'));
    expect(parseFilter(`${ENT}:employeeNumber eq 00123`)).to.deep.include({ value: '00123' });
  });

  it('reads JSON strings with escapes, numbers, booleans and null', () => {
    expect(parseFilter('displayName eq "a \\"b\\" \\u00e9"')).to.deep.include({ value: 'a "b" é' });
    expect(parseFilter('active eq TRUE')).to.deep.include({ value: true });
    expect(parseFilter('title eq null')).to.deep.include({ value: null });
    expect(parseFilter('title eq 12')).to.deep.include({ value: '12' });
  });

  it('coerces "True"/"False" for boolean attributes', () => {
    expect(parseFilter('active eq "False"')).to.deep.equal(eq('active', false));
    expect(parseFilter('emails[primary eq "TRUE"]')).to.deep.include({ filter: eq('primary', true) });
  });

  it('parses URN-qualified paths into schema and attribute', () => {
    expect(parseFilter(`${ENT}:manager.value eq "m"`)).to.deep.equal({
      kind: 'compare',
      op: 'eq',
      path: { schema: ENT, attr: 'manager', sub: 'value' },
      value: 'm',
    });
    expect(parseFilter(`${CORE}:userName eq "u"`)).to.deep.equal(eq('userName', 'u'));
  });

  const invalid: [string, RegExp][] = [
    ['', /empty/],
    ['nope eq "x"', /unknown attribute 'nope' at position 0/],
    ['emails[nope eq "x"]', /no sub-attribute 'nope'/],
    ['userName eq "x" trailing', /unexpected 'trailing' at position 16/],
    ['userName eq', /expected a value/],
    ['userName', /expected an operator/],
    ['userName like "x"', /unknown operator 'like'/],
    ['userName eq "x', /unterminated string/],
    ['userName eq "\\q"', /invalid escape/],
    ['(userName eq "x"', /missing '\)'/],
    ['emails[type eq "work"', /missing '\]'/],
    ['not userName eq "x"', /expected '\(' after 'not'/],
    ['userName eq "x" and', /unexpected end/],
    ['active eq "maybe"', /boolean/],
    ['active gt true', /cannot compare boolean/],
    ['name eq "x"', /complex/],
    ['title[value eq "x"]', /not a complex attribute/],
    ['emails[type eq "a" and emails[value eq "z"]]', /cannot be nested/],
    ['meta.lastModified gt "yesterday"', /date-time/],
    ['title co null', /null/],
  ];
  for (const [text, detail] of invalid) {
    it(`rejects ${JSON.stringify(text)} as invalidFilter`, () => {
      const error = scimError(() => parseFilter(text));
      expect(error.status).to.equal(400);
      expect(error.scimType).to.equal('invalidFilter');
      expect(error.detail).to.match(detail);
    });
  }
});

describe('PATCH path parsing', () => {
  it('parses plain, dotted, filtered and URN paths', () => {
    expect(parsePatchPath('name.familyName')).to.deep.equal({ path: { attr: 'name', sub: 'familyName' } });
    expect(parsePatchPath('emails[type eq "work"].value')).to.deep.equal({ path: { attr: 'emails' }, filter: eq('type', 'work'), sub: 'value' });
    expect(parsePatchPath('EMAILS[value eq "x"]')).to.deep.equal({ path: { attr: 'emails' }, filter: eq('value', 'x') });
    expect(parsePatchPath(`${ENT}:manager`)).to.deep.equal({ path: { schema: ENT, attr: 'manager' } });
    expect(parsePatchPath(`${ENT}:employeeNumber`)).to.deep.equal({ path: { schema: ENT, attr: 'employeeNumber' } });
  });

  for (const bad of ['members[value eq "x"]', 'nope', 'emails[type eq "work"].nope', 'name.familyName extra', 'emails[type eq', '']) {
    it(`rejects ${JSON.stringify(bad)} as invalidPath`, () => {
      expect(scimError(() => parsePatchPath(bad)).scimType).to.equal('invalidPath');
    });
  }
});

describe('in-memory filter matching', () => {
  it('compares userName and displayName without case, externalId with case', () => {
    expect(matches('userName eq "bjensen"')).to.equal(true);
    expect(matches('displayName sw "BABS"')).to.equal(true);
    expect(matches('externalId eq "ext-1"')).to.equal(false);
    expect(matches('externalId eq "Ext-1"')).to.equal(true);
  });

  it('applies every operator', () => {
    expect(matches('title co "our"')).to.equal(true);
    expect(matches('title ew "guide"')).to.equal(true);
    expect(matches('title ne "x"')).to.equal(true);
    expect(matches('title ne "tour guide"')).to.equal(false);
    expect(matches('title gt "A"')).to.equal(true);
    expect(matches('title lt "A"')).to.equal(false);
    expect(matches('title ge "tour guide"') && matches('title le "tour guide"')).to.equal(true);
    expect(matches('nickName pr')).to.equal(false);
    expect(matches('nickName ne "x"')).to.equal(true);
    expect(matches('nickName eq null')).to.equal(true);
  });

  it('compares dates in time order and booleans as booleans', () => {
    expect(matches('meta.lastModified gt "2024-05-01T09:00:00+00:00"')).to.equal(true);
    expect(matches('meta.lastModified lt "2024-05-01T09:00:00Z"')).to.equal(false);
    expect(matches('active eq "True"')).to.equal(true);
  });

  it('correlates value path conditions to one entry', () => {
    expect(matches('emails[type eq "work" and value co "home"]')).to.equal(false);
    expect(matches('emails[type eq "home" and value co "HOME"]')).to.equal(true);
    expect(matches('emails[type eq "work"].value eq "BJENSEN@example.com"')).to.equal(true);
    expect(matches('emails[type eq "home"].value eq "bjensen@example.com"')).to.equal(false);
  });

  it('matches multi-valued attributes by any entry, and by value without a sub-attribute', () => {
    expect(matches('emails.type eq "home"')).to.equal(true);
    expect(matches('emails co "babs@"')).to.equal(true);
    expect(matches('emails pr')).to.equal(true);
    expect(matches('phoneNumbers pr')).to.equal(false);
  });

  it('evaluates logic and extension attributes', () => {
    expect(matches(`not (active eq false) and ${ENT}:employeeNumber eq 701984`)).to.equal(true);
    expect(matches(`${ENT}:manager.value eq "mgr-26118"`)).to.equal(true);
    expect(matches('title eq "x" or name.givenName sw "bar"')).to.equal(true);
    expect(matches('title eq "x" or (name.givenName sw "bar" and active eq false)')).to.equal(false);
  });
});
