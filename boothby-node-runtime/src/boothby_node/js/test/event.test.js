'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { before, after, test } = require('node:test');
const { startWorker } = require('../test-support/worker-harness');
const { isTextContentType, formatRequestTime, domainPrefixOf } = require('../lib/event');

// One worker whose handler returns the event it receives.
let worker;

before(async () => {
  worker = await startWorker({ files: { 'index.js': 'exports.handler = async (event) => event;\n' } });
  assert.equal(worker.ready.status, 'ready', worker.ready.error);
});

after(() => worker.stop());

async function eventFor(fields) {
  const result = await worker.invoke(fields);
  assert.equal(result.status, 200, result.error && result.error.message);
  return JSON.parse(result.body.toString('utf8'));
}

test('event for GET with query and headers', async () => {
  const receivedMs = Date.UTC(2026, 11, 4, 20, 39, 22, 123);
  const event = await eventFor({
    id: 'event-1',
    received_ms: receivedMs,
    method: 'GET',
    path: '/users/42',
    raw_path: '/api/users/42',
    query_string: 'tag=a&tag=b&q=x%20y&empty=',
    query: [
      { name: 'tag', value: 'a' },
      { name: 'tag', value: 'b' },
      { name: 'q', value: 'x y' },
      { name: 'empty', value: '' },
    ],
    headers: [
      { name: 'host', value: 'api.example.com' },
      { name: 'user-agent', value: 'curl/8.0' },
      { name: 'accept', value: 'text/html' },
      { name: 'accept', value: 'application/json' },
      { name: 'cookie', value: 'session=abc; theme=dark' },
      { name: 'cookie', value: 'lang=en' },
    ],
    source_ip: '192.0.2.10',
    protocol: 'HTTP/1.1',
  });

  assert.deepEqual(event, {
    version: '2.0',
    routeKey: '$default',
    rawPath: '/api/users/42',
    rawQueryString: 'tag=a&tag=b&q=x%20y&empty=',
    cookies: ['session=abc', 'theme=dark', 'lang=en'],
    headers: {
      host: 'api.example.com',
      'user-agent': 'curl/8.0',
      accept: 'text/html,application/json',
    },
    multiValueHeaders: {
      host: ['api.example.com'],
      'user-agent': ['curl/8.0'],
      accept: ['text/html', 'application/json'],
      cookie: ['session=abc; theme=dark', 'lang=en'],
    },
    queryStringParameters: { tag: 'a,b', q: 'x y', empty: '' },
    multiValueQueryStringParameters: { tag: ['a', 'b'], q: ['x y'], empty: [''] },
    requestContext: {
      accountId: 'boothby',
      apiId: 'boothby',
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: {
        method: 'GET',
        path: '/api/users/42',
        protocol: 'HTTP/1.1',
        sourceIp: '192.0.2.10',
        userAgent: 'curl/8.0',
      },
      requestId: 'event-1',
      routeKey: '$default',
      stage: '$default',
      time: '04/Dec/2026:20:39:22 +0000',
      timeEpoch: receivedMs,
    },
    pathParameters: { proxy: 'users/42' },
    isBase64Encoded: false,
  });
});

test('event for root path without query', async () => {
  const event = await eventFor({ path: '/', raw_path: '/', headers: [] });

  assert.equal(event.rawQueryString, '');
  assert.equal('queryStringParameters' in event, false);
  assert.equal('multiValueQueryStringParameters' in event, false);
  assert.equal('pathParameters' in event, false);
  assert.equal('cookies' in event, false);
  assert.equal('body' in event, false);
  assert.equal(event.isBase64Encoded, false);
  assert.deepEqual(event.headers, {});
  assert.equal(event.requestContext.domainName, 'localhost');
  assert.equal(event.requestContext.domainPrefix, 'localhost');
  assert.equal(event.requestContext.http.userAgent, '');
});

test('event keeps __proto__ parameter', async () => {
  const event = await eventFor({
    query: [{ name: '__proto__', value: 'x' }],
    headers: [{ name: '__proto__', value: 'y' }],
  });

  assert.equal(event.queryStringParameters.__proto__, 'x');
  assert.deepEqual(event.multiValueQueryStringParameters.__proto__, ['x']);
  assert.equal(event.headers.__proto__, 'y');
});

test('event header names lower-cased', async () => {
  const event = await eventFor({ headers: [{ name: 'X-Trace', value: '1' }, { name: 'x-trace', value: '2' }] });

  assert.equal(event.headers['x-trace'], '1,2');
  assert.deepEqual(event.multiValueHeaders['x-trace'], ['1', '2']);
});

const BODY_CASES = [
  {
    name: 'JSON body as text',
    contentType: 'application/json; charset=utf-8',
    body: Buffer.from('{"name":"Zoë"}'),
    expected: { body: '{"name":"Zoë"}', isBase64Encoded: false },
  },
  {
    name: 'text/plain body as text',
    contentType: 'text/plain',
    body: Buffer.from('line 1\nline 2'),
    expected: { body: 'line 1\nline 2', isBase64Encoded: false },
  },
  {
    name: 'form body as text',
    contentType: 'application/x-www-form-urlencoded',
    body: Buffer.from('a=1&b=2'),
    expected: { body: 'a=1&b=2', isBase64Encoded: false },
  },
  {
    name: '+json body as text',
    contentType: 'application/problem+json',
    body: Buffer.from('{}'),
    expected: { body: '{}', isBase64Encoded: false },
  },
  {
    name: 'PNG body as base64',
    contentType: 'image/png',
    body: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]),
    expected: { body: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]).toString('base64'), isBase64Encoded: true },
  },
  {
    name: 'invalid UTF-8 text as base64',
    contentType: 'text/plain',
    body: Buffer.from([0x68, 0x69, 0xc3]),
    expected: { body: Buffer.from([0x68, 0x69, 0xc3]).toString('base64'), isBase64Encoded: true },
  },
  {
    name: 'missing content type as base64',
    contentType: null,
    body: Buffer.from('plain words'),
    expected: { body: Buffer.from('plain words').toString('base64'), isBase64Encoded: true },
  },
  {
    name: 'empty body as empty string',
    contentType: 'application/octet-stream',
    body: Buffer.alloc(0),
    expected: { body: '', isBase64Encoded: false },
  },
];

for (const { name, contentType, body, expected } of BODY_CASES) {
  test(`event body: ${name}`, async () => {
    const headers = contentType === null ? [] : [{ name: 'content-type', value: contentType }];
    const event = await eventFor({ method: 'POST', headers, body });

    assert.equal(event.body, expected.body);
    assert.equal(event.isBase64Encoded, expected.isBase64Encoded);
  });
}

test('event body random bytes round trip', async () => {
  const body = crypto.randomBytes(70000);
  const event = await eventFor({ method: 'PUT', headers: [{ name: 'content-type', value: 'application/octet-stream' }], body });

  assert.equal(event.isBase64Encoded, true);
  assert.ok(Buffer.from(event.body, 'base64').equals(body));
});

test('text content types', () => {
  const cases = [
    ['text/html', true],
    ['TEXT/CSV; charset=latin1', true],
    ['application/json', true],
    ['application/javascript', true],
    ['application/xml', true],
    ['application/x-www-form-urlencoded', true],
    ['application/vnd.api+json', true],
    ['image/svg+xml', true],
    ['application/octet-stream', false],
    ['multipart/form-data; boundary=x', false],
    ['application/jsonx', false],
    ['', false],
    [undefined, false],
  ];
  for (const [contentType, expected] of cases) {
    assert.equal(isTextContentType(contentType), expected, String(contentType));
  }
});

test('request time format', () => {
  assert.equal(formatRequestTime(Date.UTC(2026, 0, 5, 3, 4, 5)), '05/Jan/2026:03:04:05 +0000');
});

test('domain prefix of hosts', () => {
  assert.equal(domainPrefixOf('api.example.com'), 'api');
  assert.equal(domainPrefixOf('localhost:8080'), 'localhost');
  assert.equal(domainPrefixOf('[::1]:8080'), '[::1]');
});
