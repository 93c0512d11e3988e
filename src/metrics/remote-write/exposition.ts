/**
 * A parser for the Prometheus text exposition format 0.0.4, as a main container's
 * /metrics serves it. Follows what Prometheus's own scraper accepts: blanks and tabs
 * between tokens, `# HELP` / `# TYPE` lines (other comments ignored), label values with
 * `\\`, `\"` and `\n` escapes, a trailing comma in a label set, `NaN`, `+Inf`, `-Inf`,
 * optional millisecond timestamps, CRLF line ends. A line it cannot read fails the whole
 * exposition (as a Prometheus scrape fails), with the line number in the message.
 */

export type FamilyType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface ExpositionSample {
  name: string;
  /** In the order of the exposition; names unique. */
  labels: Array<[name: string, value: string]>;
  value: number;
  /** Milliseconds since the epoch, when the line carries one. */
  timestampMs?: number;
}

export interface ExpositionFamily {
  type: FamilyType;
  help?: string;
}

export interface Exposition {
  samples: ExpositionSample[];
  /** By family name, from the HELP and TYPE lines. */
  families: Map<string, ExpositionFamily>;
}

export class ExpositionError extends Error {
  constructor(
    readonly line: number,
    reason: string,
  ) {
    super(`line ${line}: ${reason}`);
  }
}

const FAMILY_TYPES = new Set<string>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const METRIC_NAME_START = /[a-zA-Z_:]/;
const METRIC_NAME_CHAR = /[a-zA-Z0-9_:]/;
const LABEL_NAME_START = /[a-zA-Z_]/;
const LABEL_NAME_CHAR = /[a-zA-Z0-9_]/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const SPECIAL = /^[+-]?(inf|infinity|nan)$/i;
const INTEGER = /^[+-]?\d+$/;

/** A float as Go's strconv.ParseFloat reads the exposition's values (decimal, Inf, NaN). */
export function parseSampleValue(token: string): number | null {
  if (DECIMAL.test(token)) return Number(token);
  if (SPECIAL.test(token)) {
    if (/nan/i.test(token)) return NaN;
    return token.startsWith('-') ? -Infinity : Infinity;
  }
  return null;
}

class LineScanner {
  pos = 0;
  constructor(
    readonly text: string,
    readonly lineNo: number,
  ) {}

  get atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string {
    return this.text[this.pos];
  }

  skipBlanks(): void {
    while (this.pos < this.text.length && (this.text[this.pos] === ' ' || this.text[this.pos] === '\t')) this.pos++;
  }

  fail(reason: string): never {
    throw new ExpositionError(this.lineNo, reason);
  }

  name(start: RegExp, rest: RegExp, what: string): string {
    const from = this.pos;
    if (this.atEnd || !start.test(this.peek())) this.fail(`expected a ${what} at column ${this.pos + 1}`);
    this.pos++;
    while (!this.atEnd && rest.test(this.peek())) this.pos++;
    return this.text.slice(from, this.pos);
  }

  /** A run of characters up to the next blank or the end of the line. */
  token(): string {
    const from = this.pos;
    while (!this.atEnd && this.peek() !== ' ' && this.peek() !== '\t') this.pos++;
    return this.text.slice(from, this.pos);
  }

  quoted(): string {
    if (this.peek() !== '"') this.fail(`expected '"' to open a label value at column ${this.pos + 1}`);
    this.pos++;
    let out = '';
    let from = this.pos;
    for (;;) {
      if (this.atEnd) this.fail("label value is not closed with '\"'");
      const c = this.text[this.pos];
      if (c === '"') {
        out += this.text.slice(from, this.pos);
        this.pos++;
        return out;
      }
      if (c === '\\') {
        out += this.text.slice(from, this.pos);
        const next = this.text[this.pos + 1];
        if (next === undefined) this.fail('label value ends in a lone backslash');
        // Prometheus keeps an unknown escape as it stands; so do we.
        out += next === 'n' ? '\n' : next === '\\' ? '\\' : next === '"' ? '"' : `\\${next}`;
        this.pos += 2;
        from = this.pos;
        continue;
      }
      this.pos++;
    }
  }
}

function unescapeHelp(s: string): string {
  return s.replace(/\\(\\|n)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));
}

function parseComment(sc: LineScanner, families: Map<string, ExpositionFamily>): void {
  sc.pos++; // '#'
  sc.skipBlanks();
  const keyword = sc.token();
  if (keyword !== 'HELP' && keyword !== 'TYPE') return;
  sc.skipBlanks();
  if (sc.atEnd) return;
  const name = sc.name(METRIC_NAME_START, METRIC_NAME_CHAR, 'metric name');
  if (!sc.atEnd && sc.peek() !== ' ' && sc.peek() !== '\t') sc.fail(`invalid character in metric name ${JSON.stringify(name + sc.peek())}`);
  sc.skipBlanks();
  const family = families.get(name) ?? { type: 'untyped' as FamilyType };
  if (keyword === 'HELP') {
    family.help ??= unescapeHelp(sc.text.slice(sc.pos));
  } else {
    const type = sc.token();
    if (!FAMILY_TYPES.has(type)) sc.fail(`unknown metric type ${JSON.stringify(type)}`);
    sc.skipBlanks();
    if (!sc.atEnd) sc.fail('unexpected text after the metric type');
    family.type = type as FamilyType;
  }
  families.set(name, family);
}

function parseSample(sc: LineScanner): ExpositionSample {
  const name = sc.name(METRIC_NAME_START, METRIC_NAME_CHAR, 'metric name');
  if (!sc.atEnd && !' \t{'.includes(sc.peek())) sc.fail(`invalid character ${JSON.stringify(sc.peek())} in metric name ${name}`);
  sc.skipBlanks();
  const labels: Array<[string, string]> = [];
  if (sc.peek() === '{') {
    sc.pos++;
    const seen = new Set<string>();
    for (;;) {
      sc.skipBlanks();
      if (sc.peek() === '}') break;
      const label = sc.name(LABEL_NAME_START, LABEL_NAME_CHAR, 'label name');
      sc.skipBlanks();
      if (sc.peek() !== '=') sc.fail(`expected '=' after label name ${label}`);
      sc.pos++;
      sc.skipBlanks();
      const value = sc.quoted();
      if (seen.has(label)) sc.fail(`label ${label} appears twice`);
      seen.add(label);
      labels.push([label, value]);
      sc.skipBlanks();
      if (sc.peek() === ',') {
        sc.pos++;
        continue;
      }
      if (sc.peek() !== '}') sc.fail(`expected ',' or '}' after the value of label ${label}`);
      break;
    }
    sc.pos++; // '}'
    sc.skipBlanks();
  }
  if (sc.atEnd) sc.fail(`metric ${name} has no value`);
  const valueToken = sc.token();
  const value = parseSampleValue(valueToken);
  if (value === null) sc.fail(`invalid value ${JSON.stringify(valueToken)} for metric ${name}`);
  sc.skipBlanks();
  let timestampMs: number | undefined;
  if (!sc.atEnd) {
    const ts = sc.token();
    if (!INTEGER.test(ts) || !Number.isSafeInteger(Number(ts))) sc.fail(`invalid timestamp ${JSON.stringify(ts)} for metric ${name}`);
    timestampMs = Number(ts);
    sc.skipBlanks();
    if (!sc.atEnd) sc.fail(`unexpected text after the timestamp of metric ${name}`);
  }
  return timestampMs === undefined ? { name, labels, value } : { name, labels, value, timestampMs };
}

export function parseExposition(text: string): Exposition {
  const samples: ExpositionSample[] = [];
  const families = new Map<string, ExpositionFamily>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const sc = new LineScanner(line, i + 1);
    sc.skipBlanks();
    if (sc.atEnd) continue;
    if (sc.peek() === '#') parseComment(sc, families);
    else samples.push(parseSample(sc));
  }
  return { samples, families };
}
