/**
 * Node's own HTTP/1.1 parser (llhttp, in C++), as `node:http` uses it, without the
 * IncomingMessage/ServerResponse streams around it. It is what keeps the relay strict on
 * the wire (request smuggling, header limits, chunked framing) at a fraction of the cost.
 *
 * `_http_common` is an internal module: the project pins Node's major version, and
 * `llhttp.spec.ts` fails on a Node whose parser does not behave as used here.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const common = require('_http_common') as { HTTPParser: ParserClass; methods: string[] };

export interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes consumed, or the parse error (`code` is llhttp's, e.g. HPE_INVALID_METHOD). */
  execute(data: Buffer): number | ParseError;
  finish(): number | ParseError | undefined;
  close(): void;
  [callback: number]: unknown;
}

export interface ParseError extends Error {
  code: string;
  bytesParsed: number;
}

interface ParserClass {
  new (): Parser;
  REQUEST: number;
  RESPONSE: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
}

export type OnHeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  rawHeaders: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  statusCode: number | undefined,
  statusMessage: string | undefined,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number | void;

export interface ParserCallbacks {
  /** Return 1 from it to tell the parser that this message has no body (a response to HEAD). */
  headersComplete: OnHeadersComplete;
  body(chunk: Buffer): void;
  messageComplete(): void;
}

/** Node's default, as `--max-http-header-size`: 16 KiB of request line and headers. */
export const MAX_HEADER_BYTES = 16 * 1024;

const { HTTPParser } = common;
export const REQUEST = HTTPParser.REQUEST;
export const RESPONSE = HTTPParser.RESPONSE;

/** The method name for the parser's method number. */
export function methodName(n: number | undefined): string {
  return (n !== undefined && common.methods[n]) || 'GET';
}

/**
 * A parser for one connection. Header lists longer than llhttp hands over at once arrive
 * in parts before `headersComplete`; they are joined here so that callers see one list.
 */
export function createParser(type: number, callbacks: ParserCallbacks): Parser {
  const parser = new HTTPParser();
  parser.initialize(type, {}, MAX_HEADER_BYTES, 0);
  let pendingHeaders: string[] = [];
  let pendingUrl = '';
  parser[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
    for (let i = 0; i < headers.length; i++) pendingHeaders.push(headers[i]);
    pendingUrl += url;
  };
  parser[HTTPParser.kOnHeadersComplete] = ((vMajor, vMinor, headers, method, url, status, message, upgrade, keepAlive) => {
    if (headers === undefined) {
      headers = pendingHeaders;
      pendingHeaders = [];
    }
    if (url === undefined || url === '') {
      url = pendingUrl;
      pendingUrl = '';
    }
    return callbacks.headersComplete(vMajor, vMinor, headers, method, url, status, message, upgrade, keepAlive);
  }) satisfies OnHeadersComplete;
  parser[HTTPParser.kOnBody] = callbacks.body;
  // Trailers of a chunked message come through kOnHeaders after its body: they are not
  // forwarded, and must not become headers (or the URL) of the next message on the connection.
  parser[HTTPParser.kOnMessageComplete] = () => {
    pendingHeaders = [];
    pendingUrl = '';
    return callbacks.messageComplete();
  };
  return parser;
}
