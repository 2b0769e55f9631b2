import { expect } from 'chai';
import { Logger } from 'matrix-appservice-bridge';
import { captureLogs, configureLogging, formatEntry, logger } from '../../src/log.ts';

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Runs `body` with logging configured as given and returns the lines written. */
async function linesOf(options: Parameters<typeof configureLogging>[0], body: () => void | Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const undo = captureLogs((line) => lines.push(line));
  try {
    configureLogging(options);
    await body();
    // The libraries' winston logger hands its lines on through a stream.
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    undo();
  }
  return lines;
}

describe('Log lines', () => {
  it('start with an ISO-8601 timestamp with date and zone, then level, module and message', async () => {
    const lines = await linesOf({ level: 'info' }, () => logger('Bridge').info('SCIM API listening', { port: 8080 }));
    expect(lines).to.have.length(1);
    const [time, level, module, ...rest] = lines[0]!.split(' ');
    expect(time).to.match(ISO_UTC);
    expect(Math.abs(Date.parse(time!) - Date.now())).to.be.below(60_000);
    expect([level, module, rest.join(' ')]).to.deep.equal(['INFO', '[Bridge]', 'SCIM API listening { port: 8080 }']);
  });

  it('are one JSON object each in the json format, an error with its stack', async () => {
    const lines = await linesOf({ level: 'info', format: 'json' }, () => logger('Journal').error('journal entry 3 failed', new Error('boom'), 'extra'));
    expect(lines).to.have.length(1);
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(entry['time']).to.match(ISO_UTC);
    expect(entry).to.include({ level: 'error', module: 'Journal', message: 'journal entry 3 failed' });
    expect(entry['error']).to.match(/^Error: boom\n\s+at /);
    expect(entry['data']).to.deep.equal(['extra']);
  });

  it('leave out what is below the configured level', async () => {
    const log = logger('Bridge');
    const lines = await linesOf({ level: 'warn' }, () => {
      log.debug('d');
      log.info('i');
      log.warn('w');
      log.error('e');
    });
    expect(lines.map((l) => l.split(' ').slice(1, 2)[0])).to.deep.equal(['WARN', 'ERROR']);
  });

  it('never hold a bearer token or an access_token parameter, in either format', async () => {
    for (const format of ['text', 'json'] as const) {
      const lines = await linesOf({ level: 'debug', format }, () => {
        logger('Http').info('GET /x?access_token=syt_secret123&limit=1 Authorization: Bearer syt_secret456');
        logger('Http').warn('failed', new Error('header was "Bearer syt_secret789"'));
      });
      const text = lines.join('\n');
      expect(text, format).to.not.match(/syt_secret/);
      expect(text, format).to.include('access_token=<redacted>&limit=1').and.include('Bearer <redacted>');
    }
  });

  it('leave prose about bearer tokens as it is', async () => {
    const lines = await linesOf({ level: 'info' }, () => logger('ScimHttp').info('GET /Users → 401: the bearer token is not valid'));
    expect(lines[0]).to.match(/the bearer token is not valid$/);
  });

  it("route matrix-appservice-bridge's lines through this logger, its INFO (each transaction) at debug", async () => {
    const library = new Logger('bridge');
    const atInfo = await linesOf({ level: 'info' }, () => {
      library.info('::ffff:127.0.0.1 - PUT /_matrix/app/v1/transactions/12 200');
      library.warn('something the operator should see');
    });
    expect(atInfo).to.have.length(1);
    expect(atInfo[0]).to.match(/^\S+ WARN \[lib\/bridge\] something the operator should see$/);

    const atDebug = await linesOf({ level: 'debug', format: 'json' }, () => {
      library.info('::ffff:127.0.0.1 - PUT /_matrix/app/v1/transactions/13 200');
    });
    expect(atDebug).to.have.length(1);
    expect(JSON.parse(atDebug[0]!)).to.include({ level: 'debug', module: 'lib/bridge' });
  });

  it('formats a given entry the same way every time (no local time zone involved)', () => {
    const entry = { time: new Date(Date.UTC(2026, 11, 1, 8, 17, 35, 123)), level: 'info' as const, module: 'Audit', message: 'm', data: [] };
    expect(formatEntry(entry, 'text')).to.equal('2026-12-01T08:17:35.123Z INFO [Audit] m');
    expect(JSON.parse(formatEntry(entry, 'json'))).to.deep.equal({ time: '2026-12-01T08:17:35.123Z', level: 'info', module: 'Audit', message: 'm' });
  });
});
