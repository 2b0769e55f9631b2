import { expect } from 'chai';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.ts';
import { generateRegistration, loadRegistration, writeRegistration } from '../../src/config/registration.ts';

const sample = (): Record<string, unknown> =>
  yaml.load(readFileSync(new URL('../../config/config.sample.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;

function minimal(): Record<string, unknown> {
  return {
    homeserver: { url: 'http://127.0.0.1:8008', domain: 'example.org' },
    appservice: { registration: 'registration.yaml', port: 9000 },
    scim: { port: 8080, tokens: [{ name: 'entra', token: 'a-token-of-enough-length' }] },
  };
}

describe('configuration', () => {
  it('accepts the documented sample once its token file exists', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'msb-config-'));
    writeFileSync(path.join(dir, 'entra.token'), 'sample-token-with-length\n');
    const raw = sample();
    (raw['scim'] as { tokens: { token: unknown }[] }).tokens[0]!.token = { file: 'entra.token' };
    const config = parseConfig(raw, dir);
    expect(config.scim.tokens[0]).to.deep.equal({ name: 'entra', token: 'sample-token-with-length' });
    expect(config.database.path).to.equal(path.join(dir, 'scim-bridge.db'));
  });

  it('fills in defaults for everything optional', () => {
    const config = parseConfig(minimal(), '/srv');
    expect(config.provisioning.onDisable).to.equal('lock');
    expect(config.provisioning.localpart.stripEmailDomain).to.equal(true);
    expect(config.appservice.registration).to.equal('/srv/registration.yaml');
  });

  it('names the path of an unknown key', () => {
    const raw = minimal();
    (raw['provisioning'] as unknown) = { onDisabel: 'lock' };
    expect(() => parseConfig(raw, '/srv')).to.throw(ConfigError, /provisioning/);
    expect(() => parseConfig(raw, '/srv')).to.throw(/onDisabel/);
  });

  it('names the path of a bad value', () => {
    const raw = minimal();
    (raw['provisioning'] as unknown) = { onDisable: 'explode' };
    expect(() => parseConfig(raw, '/srv')).to.throw(/provisioning\.onDisable/);
  });

  it('refuses a short SCIM token and says which one', () => {
    const raw = minimal();
    (raw['scim'] as { tokens: unknown }).tokens = [{ name: 'okta', token: 'short' }];
    expect(() => parseConfig(raw, '/srv')).to.throw(/scim\.tokens\.0\.token: must be at least 16/);
  });

  it('says which secret file cannot be read', () => {
    const raw = minimal();
    (raw['scim'] as { tokens: unknown }).tokens = [{ name: 'okta', token: { file: 'missing.token' } }];
    expect(() => parseConfig(raw, '/srv')).to.throw(/scim\.tokens\.0\.token: cannot read the file \/srv\/missing\.token/);
  });

  it('reports YAML syntax errors with the file name', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'msb-config-'));
    const file = path.join(dir, 'config.yaml');
    writeFileSync(file, 'homeserver: [unclosed\n');
    expect(() => loadConfig(file)).to.throw(ConfigError, /config\.yaml is not valid YAML/);
  });
});

describe('registration', () => {
  it('generates random tokens, a non-exclusive namespace for the server and no rate limits', () => {
    const a = generateRegistration({ url: 'http://127.0.0.1:9000', domain: 'example.org' });
    const b = generateRegistration({ url: 'http://127.0.0.1:9000', domain: 'example.org' });
    expect(a.as_token).to.not.equal(b.as_token);
    expect(a.as_token).to.not.equal(a.hs_token);
    expect(a.rate_limited).to.equal(false);
    expect(a.namespaces.users).to.deep.equal([{ exclusive: false, regex: '@.*:example\\.org' }]);
    // Synapse lets an appservice create only aliases it reserved: the admin room's.
    expect(a.namespaces.aliases).to.deep.equal([{ exclusive: false, regex: '^#scim-bridge-admin:example\\.org$' }]);
  });

  it('refuses the placeholder tokens of the sample registration', () => {
    const sampleFile = new URL('../../registration.yaml', import.meta.url).pathname;
    expect(() => loadRegistration(sampleFile)).to.throw(/placeholder as_token/);
  });

  it('loads what it generated', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'msb-reg-'));
    const file = path.join(dir, 'registration.yaml');
    const reg = generateRegistration({ url: 'http://127.0.0.1:9000', domain: 'example.org' });
    writeRegistration(file, reg);
    expect(loadRegistration(file).as_token).to.equal(reg.as_token);
  });
});

describe('config.sample.yaml', () => {
  /** Every key path of the schema, e.g. provisioning.localpart.prefix. */
  function keyPaths(schema: unknown, prefix = ''): string[] {
    let inner = schema as { def?: { type?: string; innerType?: unknown; options?: unknown[] }; shape?: Record<string, unknown> };
    while (inner.def && (inner.def.type === 'default' || inner.def.type === 'optional') && inner.def.innerType) {
      inner = inner.def.innerType as typeof inner;
    }
    // Unions are the secrets (a string or {file}), documented as one key.
    if (inner.def?.type === 'union') return [];
    if (!inner.shape) return [];
    return Object.entries(inner.shape).flatMap(([key, value]) => {
      const path = prefix ? `${prefix}.${key}` : key;
      return [path, ...keyPaths(value, path)];
    });
  }

  it('documents every key of the configuration schema', async () => {
    const { configSchema } = await import('../../src/config/schema.ts');
    const text = readFileSync(new URL('../../config/config.sample.yaml', import.meta.url), 'utf8');
    const paths = keyPaths(configSchema);
    expect(paths).to.include('provisioning.localpart.stripEmailDomain');
    const missing = paths.filter((p) => {
      const key = p.split('.').at(-1)!;
      return !new RegExp(`^\\s*(#\\s*)?-?\\s*${key}:`, 'm').test(text);
    });
    expect(missing, 'keys without an entry in config/config.sample.yaml').to.deep.equal([]);
  });
});

describe('room references in the configuration', () => {
  const withRoom = (room: string) => ({ ...minimal(), adminRoom: { room } });
  it('accepts room IDs with and without a server part (room version 12) and aliases', () => {
    for (const room of ['!abc:example.org', '!Hq3sFjk2Bq0fEwYxjtVQZFnMX0rV7y8pDwvRn1pHk_0', '#ops:example.org']) {
      expect(() => parseConfig(withRoom(room), '/srv'), room).to.not.throw();
    }
  });
  it('refuses an alias without a server and anything else', () => {
    for (const room of ['#ops', 'ops', '!has space']) {
      expect(() => parseConfig(withRoom(room), '/srv'), room).to.throw(/adminRoom\.room/);
    }
  });
});
