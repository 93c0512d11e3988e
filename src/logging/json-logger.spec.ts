import { JsonLogger, redactHeaders } from './json-logger';

function capture(level: 'debug' | 'info' | 'warn' | 'error', format: 'json' | 'pretty' = 'json') {
  const lines: string[] = [];
  return { logger: new JsonLogger({ level, format }, (l) => lines.push(l)), lines };
}

describe('JsonLogger', () => {
  it('writes one JSON line per event with time, level, msg, context and fields', () => {
    const { logger, lines } = capture('info');
    logger.warn({ msg: 'relay to downstream failed', outcome: 'timeout' }, 'Relay');
    expect(lines).toHaveLength(1);
    expect(lines[0].endsWith('\n')).toBe(true);
    const entry = JSON.parse(lines[0]);
    expect(entry).toEqual({
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
      level: 'warn',
      context: 'Relay',
      msg: 'relay to downstream failed',
      outcome: 'timeout',
    });
  });

  it('drops events below LOG_LEVEL', () => {
    const { logger, lines } = capture('warn');
    logger.log('hello');
    logger.debug('detail');
    logger.error('bad');
    expect(lines.map((l) => JSON.parse(l).level)).toEqual(['error']);
  });

  it("turns Nest's start-up chatter into debug lines", () => {
    const { logger, lines } = capture('info');
    logger.log('AppModule dependencies initialized', 'InstanceLoader');
    logger.log('pod-sidecar ready', 'Bootstrap');
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['pod-sidecar ready']);
  });

  it('keeps the stack of an error Nest reports as (message, stack, context)', () => {
    const { logger, lines } = capture('info');
    logger.error('boom', 'Error: boom\n    at x', 'ExceptionHandler');
    expect(JSON.parse(lines[0])).toMatchObject({ msg: 'boom', stack: 'Error: boom\n    at x', context: 'ExceptionHandler' });
  });

  it('writes a readable line with LOG_FORMAT=pretty', () => {
    const { logger, lines } = capture('info', 'pretty');
    logger.log({ msg: 'ready', port: 8080 }, 'Bootstrap');
    expect(lines[0]).toMatch(/^\S+Z INFO {2}\[Bootstrap\] ready \{"port":8080\}\n$/);
  });
});

describe('redactHeaders', () => {
  it('hides credentials and signatures, keeps the rest', () => {
    expect(
      redactHeaders({
        authorization: 'Bearer abc',
        'proxy-authorization': 'Basic x',
        cookie: 'session=1',
        'x-hub-signature-256': 'sha256=deadbeef',
        'x-hub-signature': 'sha1=beef',
        'x-gitlab-token': 'glt',
        'x-custom-token': 't',
        'x-github-event': 'push',
        'content-type': 'application/json',
      }),
    ).toEqual({
      authorization: '[redacted]',
      'proxy-authorization': '[redacted]',
      cookie: '[redacted]',
      'x-hub-signature-256': '[redacted]',
      'x-hub-signature': '[redacted]',
      'x-gitlab-token': '[redacted]',
      'x-custom-token': '[redacted]',
      'x-github-event': 'push',
      'content-type': 'application/json',
    });
  });
});
