// A fast local `_bulk` endpoint for the throughput bench: counts the documents of each request
// and answers every item 201, doing as little work as an HTTP server can. Prints its URL.
import http from 'node:http';
import type net from 'node:net';

let docs = 0;
const item = '{"create":{"status":201,"result":"created"}}';
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url?.startsWith('/_bulk')) {
    let lines = 0;
    req.on('data', (c: Buffer) => {
      for (let i = c.indexOf(10); i !== -1; i = c.indexOf(10, i + 1)) lines++;
    });
    req.on('end', () => {
      const n = lines >> 1;
      docs += n;
      res.writeHead(200, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' });
      res.end(`{"took":1,"errors":false,"items":[${new Array(n).fill(item).join(',')}]}`);
    });
    return;
  }
  if (req.url === '/_count') {
    res.writeHead(200, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' });
    res.end(JSON.stringify({ count: docs }));
    return;
  }
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' });
  res.end('{"version":{"number":"8.17.0"},"tagline":"You Know, for Search"}');
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}\n`));
