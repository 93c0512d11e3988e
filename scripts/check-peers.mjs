// The peers of a sidecar under test, for scripts/runtime-check.sh and scripts/image-check.sh:
//   node check-peers.mjs PORT RELAY_PORT RECORD_FILE
// listens on 127.0.0.1:PORT. /channel/* stands in for the smee server and client
// together: it accepts a health-check event and delivers it to the relay port. Any
// other path is the downstream: it records each request (method, url, headers, the
// body's sha256 and length) as a JSON line in RECORD_FILE and answers {"received":true}.
import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import http from 'node:http';

const [port, relayPort, record] = process.argv.slice(2).map((v, i) => (i < 2 ? Number(v) : v));
http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url.startsWith('/channel/')) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('Accepted');
        const headers = { 'content-type': req.headers['content-type'] ?? 'application/json', 'content-length': body.length };
        for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-')) headers[k] = v;
        const delivery = http.request({ host: '127.0.0.1', port: relayPort, method: 'POST', path: '/', headers }, (r) => {
          r.resume();
          console.log(`channel: delivered ${headers['x-health-check-id'] ?? 'an event'} to the relay, ${r.statusCode}`);
        });
        delivery.on('error', (e) => console.log(`channel: delivery to the relay failed: ${e.message}`));
        delivery.end(body);
        return;
      }
      const sha256 = createHash('sha256').update(body).digest('hex');
      appendFileSync(
        record,
        JSON.stringify({ method: req.method, url: req.url, headers: req.headers, sha256, length: body.length }) + '\n',
      );
      console.log(`downstream: ${req.method} ${req.url} ${body.length} bytes`);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}');
    });
  })
  .listen(port, '127.0.0.1', () => console.log(`peers listening on ${port}`));
