'use strict';

// The benchmark's limit: Lambda handlers served by Node's own http module, with no platform in
// between. Each request becomes a minimal API Gateway HTTP API (payload 2.0) event, the handler
// is awaited in this process, and its result is written back.
//
// Usage: node bare_node_server.js HOST PORT /PREFIX=FILE[#EXPORT] ...
//   for example: node bare_node_server.js 127.0.0.1 8000 /trivial=functions/trivial/index.js
// A request goes to the handler whose prefix is the first segment of its path.

const http = require('node:http');
const path = require('node:path');
const { randomUUID } = require('node:crypto');

const TEXT_MEDIA_TYPES = new Set(['application/json', 'application/xml', 'application/x-www-form-urlencoded']);

function parseArguments(argv) {
  if (argv.length < 3) {
    throw new Error('usage: node bare_node_server.js HOST PORT /PREFIX=FILE[#EXPORT] ...');
  }
  const [host, port, ...routeArguments] = argv;
  const routes = new Map();
  for (const argument of routeArguments) {
    const separator = argument.indexOf('=');
    if (!argument.startsWith('/') || separator < 0) {
      throw new Error(`invalid route ${JSON.stringify(argument)}: expected /PREFIX=FILE[#EXPORT]`);
    }
    const [file, exportName = 'handler'] = argument.slice(separator + 1).split('#');
    const handler = require(path.resolve(file))[exportName];
    if (typeof handler !== 'function') {
      throw new Error(`${file} has no exported function ${JSON.stringify(exportName)}`);
    }
    routes.set(argument.slice(0, separator), handler);
  }
  return { host, port: Number(port), routes };
}

function isText(contentType) {
  const mediaType = (contentType || '').split(';')[0].trim().toLowerCase();
  return mediaType.startsWith('text/') || TEXT_MEDIA_TYPES.has(mediaType) || mediaType.endsWith('+json');
}

function buildEvent(request, url, body) {
  const event = {
    version: '2.0',
    routeKey: '$default',
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers: request.headers,
    requestContext: {
      http: {
        method: request.method,
        path: url.pathname,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp: request.socket.remoteAddress,
        userAgent: request.headers['user-agent'] || '',
      },
      requestId: randomUUID(),
      timeEpoch: Date.now(),
    },
    isBase64Encoded: false,
  };
  if (url.search) {
    event.queryStringParameters = Object.fromEntries(url.searchParams);
  }
  if (body.length > 0) {
    const text = isText(request.headers['content-type']);
    event.body = body.toString(text ? 'utf8' : 'base64');
    event.isBase64Encoded = !text;
  }
  return event;
}

function writeResult(response, result) {
  if (result === null || typeof result !== 'object' || !('statusCode' in result)) {
    const text = typeof result === 'string' ? result : JSON.stringify(result === undefined ? null : result);
    const body = Buffer.from(text, 'utf8');
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    response.end(body);
    return;
  }
  const text = result.body === undefined ? '' : String(result.body);
  const body = Buffer.from(text, result.isBase64Encoded ? 'base64' : 'utf8');
  response.writeHead(result.statusCode, { ...result.headers, 'content-length': body.length });
  response.end(body);
}

async function handle(routes, request, response) {
  const url = new URL(request.url, 'http://localhost');
  const handler = routes.get(`/${url.pathname.split('/')[1]}`);
  if (handler === undefined) {
    response.writeHead(404, { 'content-type': 'text/plain' });
    response.end(`no handler for ${url.pathname}\n`);
    return;
  }
  const chunks = [];
  for await (const chunk of request) {
    chunks.push(chunk);
  }
  const event = buildEvent(request, url, Buffer.concat(chunks));
  const context = { awsRequestId: event.requestContext.requestId, functionName: 'bench' };
  try {
    writeResult(response, await handler(event, context));
  } catch (error) {
    response.writeHead(500, { 'content-type': 'text/plain' });
    response.end(`handler failed: ${error && error.message}\n`);
  }
}

function main() {
  const { host, port, routes } = parseArguments(process.argv.slice(2));
  const server = http.createServer((request, response) => {
    handle(routes, request, response).catch((error) => {
      console.error(`request failed: ${error.stack || error}`);
      response.destroy();
    });
  });
  server.keepAliveTimeout = 75_000;
  server.listen(port, host, () => console.log(`listening on http://${host}:${port}/ for ${[...routes.keys()].join(', ')}`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

main();
