// npm run bench, row (f): the stack the relay stands on, bare — a node:http server relaying
// through an undici pool (dispatch() with a handler, bodies collected as they arrived,
// responses streamed), with none of the sidecar's features. Measured in the same run as the
// sidecar, it shows what the sidecar's features and checks cost on top of that stack.
//
//   node bench-reference-relay.cjs <port> <downstream port>
'use strict';
const { createServer } = require('node:http');
const { Agent } = require('undici');

const [port, downstreamPort] = process.argv.slice(2).map(Number);
const agent = new Agent({ connections: 128, keepAliveTimeout: 4_000 });
const origin = `http://127.0.0.1:${downstreamPort}`;
createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    agent.dispatch(
      {
        origin,
        path: `/webhook${req.url}`,
        method: req.method,
        headers: req.rawHeaders.filter((_, i, h) => !/^(host|connection|content-length)$/i.test(h[i - (i % 2)])),
        body: Buffer.concat(chunks),
      },
      {
        onRequestStart() {},
        onResponseStart(_c, status, headers) {
          res.writeHead(status, headers);
        },
        onResponseData(_c, chunk) {
          res.write(chunk);
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError(_c, err) {
          res.destroy(err);
        },
      },
    );
  });
}).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
