import { Counter, Histogram, Registry } from 'prom-client';
import { ExpositionError, parseExposition, parseSampleValue } from './exposition';

const failure = (text: string): string => {
  try {
    parseExposition(text);
  } catch (e) {
    expect(e).toBeInstanceOf(ExpositionError);
    return (e as Error).message;
  }
  throw new Error('expected a parse error');
};

describe('parseExposition', () => {
  it('reads HELP and TYPE, ignores other comments and blank lines', () => {
    const { samples, families } = parseExposition(
      [
        '# A plain comment',
        '#',
        '# HELP up_total Whether it is up.\\nSecond line with \\\\ backslash.',
        '# TYPE up_total counter',
        '',
        '   ',
        'up_total 1',
        '# TYPE orphan gauge',
        '# HELP',
        '# EOF',
      ].join('\n'),
    );
    expect(samples).toEqual([{ name: 'up_total', labels: [], value: 1 }]);
    expect(families.get('up_total')).toEqual({ type: 'counter', help: 'Whether it is up.\nSecond line with \\ backslash.' });
    expect(families.get('orphan')).toEqual({ type: 'gauge' });
  });

  it('unescapes label values and keeps commas, braces, equals signs and # inside them', () => {
    const { samples } = parseExposition(
      'm{a="x\\\\y",b="say \\"hi\\"",c="line1\\nline2",d="{},=# ",e="",f="caf\u00e9 \u{1F600}",g="keep \\t as is"} 2\n',
    );
    expect(samples[0].labels).toEqual([
      ['a', 'x\\y'],
      ['b', 'say "hi"'],
      ['c', 'line1\nline2'],
      ['d', '{},=# '],
      ['e', ''],
      ['f', 'caf\u00e9 \u{1F600}'],
      ['g', 'keep \\t as is'],
    ]);
  });

  it('takes blanks and tabs between tokens, a trailing comma, an empty label set and CRLF line ends', () => {
    const { samples } = parseExposition('  m1 { a = "1" , b="2", }\t3\t 1700000000000  \r\nm2{} 4\r\nm3 {a="1"} 5\r\n');
    expect(samples).toEqual([
      {
        name: 'm1',
        labels: [
          ['a', '1'],
          ['b', '2'],
        ],
        value: 3,
        timestampMs: 1_700_000_000_000,
      },
      { name: 'm2', labels: [], value: 4 },
      { name: 'm3', labels: [['a', '1']], value: 5 },
    ]);
  });

  it('reads NaN, infinities, exponents and negative timestamps', () => {
    const values = parseExposition('a NaN\nb +Inf\nc -Inf\nd Inf\ne 1.5e3\nf -.5\ng 7 -1000\n').samples;
    expect(values.map((s) => s.value)).toEqual([NaN, Infinity, -Infinity, Infinity, 1500, -0.5, 7]);
    expect(values[6].timestampMs).toBe(-1000);
  });

  it('reads a whole histogram and summary family as separate samples', () => {
    const { samples, families } = parseExposition(
      [
        '# TYPE rpc_seconds histogram',
        'rpc_seconds_bucket{le="0.1"} 1',
        'rpc_seconds_bucket{le="+Inf"} 3',
        'rpc_seconds_sum 2.5',
        'rpc_seconds_count 3',
        '# TYPE size summary',
        'size{quantile="0.99"} NaN',
        'size_sum 0',
        'size_count 0',
      ].join('\n'),
    );
    expect(families.get('rpc_seconds')!.type).toBe('histogram');
    expect(families.get('size')!.type).toBe('summary');
    expect(samples.map((s) => s.name)).toEqual([
      'rpc_seconds_bucket',
      'rpc_seconds_bucket',
      'rpc_seconds_sum',
      'rpc_seconds_count',
      'size',
      'size_sum',
      'size_count',
    ]);
    expect(samples[1].labels).toEqual([['le', '+Inf']]);
  });

  it('reads what prom-client serves, with the values and labels of its registry', async () => {
    const registry = new Registry();
    const c = new Counter({ name: 'odd_total', help: 'Help with \\ and\nnewline.', labelNames: ['v'], registers: [registry] });
    c.labels('q"uo\\te\nnl').inc(2);
    const h = new Histogram({ name: 'lat_seconds', help: 'h', buckets: [0.005, 1], registers: [registry] });
    h.observe(0.003);
    const { samples, families } = parseExposition(await registry.metrics());
    expect(families.get('odd_total')).toEqual({ type: 'counter', help: 'Help with \\ and\nnewline.' });
    expect(samples).toEqual([
      { name: 'odd_total', labels: [['v', 'q"uo\\te\nnl']], value: 2 },
      { name: 'lat_seconds_bucket', labels: [['le', '0.005']], value: 1 },
      { name: 'lat_seconds_bucket', labels: [['le', '1']], value: 1 },
      { name: 'lat_seconds_bucket', labels: [['le', '+Inf']], value: 1 },
      { name: 'lat_seconds_sum', labels: [], value: 0.003 },
      { name: 'lat_seconds_count', labels: [], value: 1 },
    ]);
  });

  it.each([
    ['m{a="1} 2', /label value is not closed/],
    ['m{a="1"', /expected ',' or '}'/],
    ['m{a="1" b="2"} 1', /expected ',' or '}'/],
    ['m{a=1} 1', /expected '"'/],
    ['m{a="1",a="2"} 1', /label a appears twice/],
    ['m{1a="1"} 1', /expected a label name/],
    ['m', /metric m has no value/],
    ['m{a="1"}', /metric m has no value/],
    ['m one', /invalid value "one"/],
    ['m 0x1A', /invalid value "0x1A"/],
    ['m 1 12.5', /invalid timestamp "12.5"/],
    ['m 1 2 3', /unexpected text after the timestamp/],
    ['my-metric 1', /invalid character "-" in metric name my/],
    ['9m 1', /expected a metric name/],
    ['# TYPE m histogramm', /unknown metric type "histogramm"/],
    ['m{a="\\', /lone backslash/],
  ])('refuses %j', (text, message) => {
    expect(failure(`ok 1\n${text}\n`)).toMatch(message);
    expect(failure(`ok 1\n${text}\n`)).toMatch(/^line 2: /);
  });
});

describe('parseSampleValue', () => {
  it.each([
    ['1', 1],
    ['-1', -1],
    ['+1', 1],
    ['1.', 1],
    ['.5', 0.5],
    ['1e-3', 0.001],
    ['1E+3', 1000],
    ['NaN', NaN],
    ['nan', NaN],
    ['+Inf', Infinity],
    ['-inf', -Infinity],
    ['Infinity', Infinity],
  ])('%s is %d', (text, value) => expect(parseSampleValue(text)).toEqual(value));

  it.each(['', '.', 'e3', '1e', '0x10', '1_000', 'Infinit', '--1', '1,5'])('refuses %j', (text) =>
    expect(parseSampleValue(text)).toBeNull(),
  );
});
