import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Context } from 'koa';
import { StartupError, checkLocally } from '../../src/app.ts';
import { parseConfig, rereadTokenFiles } from '../../src/config/load.ts';
import { generateRegistration } from '../../src/config/registration.ts';
import { bearerAuth, type ScimState } from '../../src/scim/http.ts';

const OLD = 'old-token-of-enough-length';
const NEW = 'new-token-of-enough-length';

describe('SCIM token rotation', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'msb-tokens-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function configWith(files: Record<string, string>) {
    for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, `${name}.token`), content);
    return parseConfig(
      {
        homeserver: { url: 'http://127.0.0.1:8008', domain: 'example.org' },
        appservice: { registration: 'registration.yaml', port: 9000 },
        scim: {
          port: 8080,
          tokens: [
            ...Object.keys(files).map((name) => ({ name, token: { file: `${name}.token` } })),
            { name: 'inline', token: 'an-inline-token-of-length' },
          ],
        },
      },
      dir,
    );
  }

  it('reads the token files again: changed tokens are swapped, inline ones stay', () => {
    const config = configWith({ entra: OLD, okta: 'okta-token-of-enough-length' });
    writeFileSync(path.join(dir, 'entra.token'), `${NEW}\n`);
    const result = rereadTokenFiles(config.scim.tokens, config.scim.tokenFiles);
    expect(result.reloaded).to.deep.equal(['entra', 'okta']);
    expect(result.changed).to.deep.equal(['entra']);
    expect(result.kept).to.deep.equal([]);
    expect(result.tokens.map((t) => [t.name, t.token])).to.deep.equal([
      ['entra', NEW],
      ['okta', 'okta-token-of-enough-length'],
      ['inline', 'an-inline-token-of-length'],
    ]);
  });

  it('keeps the old token when its file is gone, empty or too short, saying why without the value', () => {
    const config = configWith({ gone: OLD, empty: OLD, short: OLD });
    rmSync(path.join(dir, 'gone.token'));
    writeFileSync(path.join(dir, 'empty.token'), '\n');
    writeFileSync(path.join(dir, 'short.token'), 'tiny-secret');
    const result = rereadTokenFiles(config.scim.tokens, config.scim.tokenFiles);
    expect(result.reloaded).to.deep.equal([]);
    expect(result.tokens.map((t) => t.token)).to.deep.equal([OLD, OLD, OLD, 'an-inline-token-of-length']);
    expect(result.kept.map((k) => k.name)).to.deep.equal(['gone', 'empty', 'short']);
    expect(result.kept[0]?.reason).to.match(/cannot read the file .*gone\.token/);
    expect(result.kept[1]?.reason).to.match(/empty/);
    expect(result.kept[2]?.reason).to.match(/shorter than 16/).and.not.include('tiny-secret');
  });

  it('authenticates against the token list as it is at each request', async () => {
    const tokens = [{ name: 'entra', token: OLD }];
    const auth = bearerAuth(tokens);
    const attempt = async (token: string): Promise<string> => {
      const state: Partial<ScimState> = {};
      const ctx = { get: () => `Bearer ${token}`, state } as unknown as Context;
      try {
        await auth(ctx, async () => {});
        return state.source ?? 'none';
      } catch (error) {
        return String((error as { status?: number }).status);
      }
    };
    expect(await attempt(OLD)).to.equal('entra');
    tokens.splice(0, tokens.length, { name: 'entra', token: NEW });
    expect(await attempt(NEW)).to.equal('entra');
    expect(await attempt(OLD)).to.equal('401');
  });
});

describe('Start-up checks made before any network call', () => {
  const config = (appservice: Record<string, unknown>) =>
    parseConfig(
      {
        homeserver: { url: 'http://127.0.0.1:8008', domain: 'example.org' },
        appservice: { registration: 'registration.yaml', port: 9000, ...appservice },
        scim: { port: 8080, tokens: [{ name: 'entra', token: OLD }] },
      },
      '/srv',
    );
  const registration = (url: string) => generateRegistration({ url, domain: 'example.org' });
  const mistake = (run: () => void): string => {
    try {
      run();
    } catch (error) {
      expect(error).to.be.instanceOf(StartupError);
      return (error as Error).message;
    }
    return '';
  };

  it('accepts a registration whose url names appservice.port on a bound address', () => {
    expect(mistake(() => checkLocally(config({}), registration('http://127.0.0.1:9000')))).to.equal('');
    expect(mistake(() => checkLocally(config({ bindAddress: '0.0.0.0' }), registration('http://localhost:9000')))).to.equal('');
  });

  it('names appservice.port when the registration url has another port', () => {
    const message = mistake(() => checkLocally(config({}), registration('http://127.0.0.1:9001')));
    expect(message).to.match(/port 9001 but appservice\.port is 9000/).and.match(/set appservice\.port: 9001/);
  });

  it('names appservice.bindAddress when the url goes to the loopback the listener is not bound to', () => {
    const message = mistake(() => checkLocally(config({ bindAddress: '10.1.2.3' }), registration('http://127.0.0.1:9000')));
    expect(message).to.match(/appservice\.bindAddress is 10\.1\.2\.3/);
  });

  it('leaves a url on another host alone (a proxy may forward it)', () => {
    expect(mistake(() => checkLocally(config({}), registration('https://bridge.example.org')))).to.equal('');
  });

  it('refuses placeholder tokens and a registration without a url', () => {
    const reg = { ...registration('http://127.0.0.1:9000'), hs_token: 'CHANGE_ME_hs', url: null };
    const message = mistake(() => checkLocally(config({}), reg));
    expect(message).to.match(/hs_token is the sample's placeholder/).and.match(/url \(null\) is not a URL/);
  });
});
