import { expect } from 'chai';
import { accountProblems, protectedPatterns, avatarOf, displayNameOf, emailsOf, localpartFor, msisdnsOf } from '../../src/provisioning/mapping.ts';

const policy = { stripEmailDomain: true, replacement: '_', prefix: '' };

describe('userName to localpart', () => {
  it('strips the email domain and lower-cases', () => {
    expect(localpartFor('Alice.Smith@example.com', policy)).to.equal('alice.smith');
  });
  it('keeps the domain when told to, mapping @ to the replacement', () => {
    expect(localpartFor('Alice@example.com', { ...policy, stripEmailDomain: false })).to.equal('alice_example.com');
  });
  it('drops accents and replaces characters Matrix does not allow', () => {
    expect(localpartFor('José Müller', policy)).to.equal('jose_muller');
  });
  it('adds the prefix', () => {
    expect(localpartFor('bob', { ...policy, prefix: 'corp_' })).to.equal('corp_bob');
  });
  it('refuses a userName that leaves nothing usable', () => {
    expect(() => localpartFor('日本', { ...policy, replacement: '' })).to.throw(/no usable Matrix localpart/);
  });
});

describe('attribute mapping', () => {
  it('takes displayName, else name.formatted, else given and family name', () => {
    expect(displayNameOf({ displayName: 'Ali', name: { formatted: 'Alice S' } })).to.equal('Ali');
    expect(displayNameOf({ name: { formatted: 'Alice S', givenName: 'A' } })).to.equal('Alice S');
    expect(displayNameOf({ name: { givenName: 'Alice', familyName: 'Smith' } })).to.equal('Alice Smith');
    expect(displayNameOf({ userName: 'x' })).to.equal(null);
  });
  it('prefers the Matrix extension displayName, which lets an IdP give Matrix its own', () => {
    const matrix = 'urn:matrix:params:scim:schemas:extension:matrix:2.0:User';
    expect(displayNameOf({ displayName: 'Ali', [matrix]: { displayName: 'Ali (Sales)' } })).to.equal('Ali (Sales)');
  });
  it('prefers the primary photo and recognises mxc URIs', () => {
    const doc = { photos: [{ value: 'https://a/1.png' }, { value: 'mxc://hs/abc', primary: true }] };
    expect(avatarOf(doc)).to.deep.equal({ kind: 'mxc', uri: 'mxc://hs/abc' });
    expect(avatarOf({ photos: [{ value: 'https://a/1.png' }] })).to.deep.equal({ kind: 'url', url: 'https://a/1.png' });
  });
  it('lower-cases and de-duplicates emails, primary first', () => {
    expect(emailsOf({ emails: [{ value: 'B@x.org' }, { value: 'a@x.org', primary: true }, { value: 'b@X.org' }] })).to.deep.equal([
      'a@x.org',
      'b@x.org',
    ]);
  });
  it('keeps only the digits of phone numbers', () => {
    expect(msisdnsOf({ phoneNumbers: [{ value: '+49 (30) 1234-567' }, { value: 'tel:+1-555-0100' }] })).to.deep.equal([
      '49301234567',
      '15550100',
    ]);
  });
  it('names emails, phone numbers and photos the homeserver would refuse', () => {
    const problems = accountProblems({
      emails: [{ value: 'not-an-email' }],
      phoneNumbers: [{ value: 'call me' }],
      photos: [{ value: 'ftp://x/y.png' }],
    });
    expect(problems).to.have.length(3);
    expect(problems[0]).to.match(/emails: "not-an-email"/);
  });
});

describe('protected users', () => {
  const patterns = protectedPatterns('@scim-bridge:example.org', ['^@admin.*:example\\.org$', 'bot$']);
  const isProtected = (id: string) => patterns.some((p) => p.test(id));
  it('protects the bot by its exact ID', () => {
    expect(isProtected('@scim-bridge:example.org')).to.equal(true);
    expect(isProtected('@scim-bridgeXexample.org')).to.equal(false);
  });
  it('reads configured entries as regular expressions, also those starting with @', () => {
    expect(isProtected('@admin2:example.org')).to.equal(true);
    expect(isProtected('@helperbot')).to.equal(true);
    expect(isProtected('@alice:example.org')).to.equal(false);
  });
});
