// The benchmark's floor for a Node.js Lambda function: a Runtime API
// client that echoes each event, with nothing but Node's own http module
// (what a hello-world function costs before any framework or SDK).
'use strict';
const http = require('http');
const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(':');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function request(method, path, body, done) {
  const req = http.request({ host, port, method, path, agent }, (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => done(res, Buffer.concat(chunks)));
  });
  if (body) req.setHeader('content-type', 'application/json');
  req.end(body);
}
function loop() {
  request('GET', '/2018-06-01/runtime/invocation/next', null, (res, event) => {
    const id = res.headers['lambda-runtime-aws-request-id'];
    request('POST', `/2018-06-01/runtime/invocation/${id}/response`, event, () => loop());
  });
}
loop();
