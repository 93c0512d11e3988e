import { createParser, methodName, ParseError, REQUEST, RESPONSE } from './llhttp';

interface Seen {
  method?: string;
  url?: string;
  status?: number;
  headers: string[];
  body: Buffer[];
  keepAlive?: boolean;
  complete: boolean;
}

function parse(type: number, wire: string | Buffer[], skipBody = false): { messages: Seen[]; result: number | ParseError } {
  const messages: Seen[] = [];
  let cur: Seen | null = null;
  const parser = createParser(type, {
    headersComplete: (_maj, _min, headers, method, url, status, _msg, _up, keepAlive) => {
      cur = { method: methodName(method), url, status, headers: headers ?? [], body: [], keepAlive, complete: false };
      messages.push(cur);
      return skipBody ? 1 : 0;
    },
    body: (chunk) => cur!.body.push(Buffer.from(chunk)),
    messageComplete: () => (cur!.complete = true),
  });
  let result: number | ParseError = 0;
  for (const piece of typeof wire === 'string' ? [Buffer.from(wire, 'latin1')] : wire) {
    result = parser.execute(piece);
    if (typeof result !== 'number') break;
  }
  parser.close();
  return { messages, result };
}

describe("Node's llhttp parser, as the relay uses it", () => {
  it('gives method, url, raw headers in order with their case, and a chunked body decoded', () => {
    const { messages } = parse(REQUEST, 'POST /hook?x=1 HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n');
    expect(messages).toHaveLength(1);
    const m = messages[0];
    expect([m.method, m.url, m.keepAlive, m.complete]).toEqual(['POST', '/hook?x=1', true, true]);
    expect(m.headers).toEqual(['Host', 'a', 'X-Dup', '1', 'x-dup', '2', 'Transfer-Encoding', 'chunked']);
    expect(Buffer.concat(m.body).toString()).toBe('abcde');
  });

  it('drops the trailers of a chunked message: they become neither headers nor URL of the next message on the connection', () => {
    const { messages } = parse(REQUEST, 'POST /first HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: evil\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(messages.map((m) => [m.url, m.headers])).toEqual([['/first', ['Host', 'a', 'Transfer-Encoding', 'chunked']], ['/second', ['Host', 'a']]]);
    const responses = parse(RESPONSE, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nSet-Cookie: session=attacker\r\n\r\nHTTP/1.1 204 No Content\r\nX-Own: 1\r\n\r\n');
    expect(responses.messages.map((m) => [m.status, m.headers])).toEqual([[200, ['Transfer-Encoding', 'chunked']], [204, ['X-Own', '1']]]);
  });

  it('joins a header list longer than llhttp hands over at once, across reads', () => {
    const names = Array.from({ length: 80 }, (_, i) => `X-H${i}: v${i}\r\n`).join('');
    const wire = Buffer.from(`GET / HTTP/1.1\r\n${names}\r\n`);
    const { messages } = parse(REQUEST, [wire.subarray(0, 500), wire.subarray(500)]);
    expect(messages[0].headers).toHaveLength(160);
    expect(messages[0].headers.slice(-2)).toEqual(['X-H79', 'v79']);
    expect(messages[0].url).toBe('/');
  });

  it('keeps header bytes above 0x7F as Latin-1 characters, one per byte', () => {
    const { messages } = parse(REQUEST, [Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nX-Name: caf'), Buffer.from([0xe9]), Buffer.from('\r\n\r\n')])]);
    expect(Buffer.from(messages[0].headers[1], 'latin1')).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9]));
  });

  it('parses pipelined requests from one read, says when the caller wants the connection closed, and reads nothing after that', () => {
    const { messages, result } = parse(REQUEST, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /c HTTP/1.1\r\n\r\n');
    expect(messages.map((m) => [m.url, m.keepAlive])).toEqual([['/a', true], ['/b', false]]);
    expect(typeof result).not.toBe('number');
    expect(parse(REQUEST, 'GET /old HTTP/1.0\r\n\r\n').messages[0].keepAlive).toBe(false);
    expect(parse(REQUEST, 'GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n').messages[0].keepAlive).toBe(true);
  });

  it('rejects a request that could smuggle a second one (Content-Length with Transfer-Encoding) with a coded error', () => {
    const { result } = parse(REQUEST, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    expect(typeof result).not.toBe('number');
    expect((result as ParseError).code).toMatch(/^HPE_/);
  });

  it('skips the body of a response when told the request was HEAD', () => {
    const { messages } = parse(RESPONSE, 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n', true);
    expect(messages.map((m) => [m.status, m.complete, m.body.length])).toEqual([[200, true, 0], [204, true, 0]]);
  });
});
