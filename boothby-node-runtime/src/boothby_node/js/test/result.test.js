'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { before, after, test } = require('node:test');
const { startWorker, pairsOf } = require('../test-support/worker-harness');

// The handler evaluates the request body as a JavaScript expression and
// returns or throws the value, so each test picks the handler's outcome.
const HANDLER = `
  exports.handler = async (event) => {
    const outcome = new Function('return (' + event.body + ');')();
    if (outcome.throws) throw outcome.value;
    return outcome.value;
  };
`;

let worker;

before(async () => {
  worker = await startWorker({ files: { 'index.js': HANDLER } });
  assert.equal(worker.ready.status, 'ready', worker.ready.error);
});

after(() => worker.stop());

function invokeReturning(expression) {
  return worker.invoke({
    method: 'POST',
    headers: [{ name: 'content-type', value: 'application/javascript' }],
    body: Buffer.from(`{ value: ${expression} }`),
  });
}

function invokeThrowing(expression) {
  return worker.invoke({
    method: 'POST',
    headers: [{ name: 'content-type', value: 'application/javascript' }],
    body: Buffer.from(`{ throws: true, value: ${expression} }`),
  });
}

for (const status of [201, 204, 404, 418]) {
  test(`result statusCode ${status}`, async () => {
    const result = await invokeReturning(`{ statusCode: ${status} }`);

    assert.equal(result.status, status);
    assert.deepEqual(pairsOf(result.headers), []);
    assert.equal(result.body, null);
    assert.equal(result.error, null);
  });
}

test('result headers and cookies', async () => {
  const result = await invokeReturning(`{
    statusCode: 200,
    headers: { 'Content-Type': 'text/plain', 'X-Count': 3, 'X-List': ['a', 'b'], 'X-Skipped': null },
    cookies: ['a=1; Path=/', 'b=2; HttpOnly'],
    body: 'hello',
  }`);

  assert.equal(result.status, 200);
  assert.deepEqual(pairsOf(result.headers), [
    ['Content-Type', 'text/plain'],
    ['X-Count', '3'],
    ['X-List', 'a'],
    ['X-List', 'b'],
    ['set-cookie', 'a=1; Path=/'],
    ['set-cookie', 'b=2; HttpOnly'],
  ]);
  assert.equal(result.body.toString(), 'hello');
});

test('result multiValueHeaders override headers', async () => {
  const result = await invokeReturning(`{
    statusCode: 200,
    headers: { 'x-a': 'from headers', 'x-b': 'kept' },
    multiValueHeaders: { 'X-A': ['one', 'two'] },
  }`);

  assert.deepEqual(pairsOf(result.headers), [
    ['x-b', 'kept'],
    ['X-A', 'one'],
    ['X-A', 'two'],
  ]);
});

test('result base64 body round trip', async () => {
  const bytes = crypto.randomBytes(4096);
  const result = await invokeReturning(`{
    statusCode: 200,
    headers: { 'content-type': 'application/octet-stream' },
    isBase64Encoded: true,
    body: '${bytes.toString('base64')}',
  }`);

  assert.equal(result.status, 200);
  assert.ok(result.body.equals(bytes));
});

test('result Buffer body as is', async () => {
  const result = await invokeReturning(`{ statusCode: 200, body: Buffer.from([0, 255, 1]) }`);

  assert.deepEqual([...result.body], [0, 255, 1]);
});

test('result text body UTF-8', async () => {
  const result = await invokeReturning(`{ statusCode: 200, body: 'Zoë 😀' }`);

  assert.equal(result.body.toString('utf8'), 'Zoë 😀');
});

const JSON_RESULTS = [
  ['object', '{ a: 1, list: [1, 2] }', '{"a":1,"list":[1,2]}'],
  ['array', '[1, "two"]', '[1,"two"]'],
  ['number', '42', '42'],
  ['string', '"plain text"', '"plain text"'],
  ['boolean', 'false', 'false'],
  ['null', 'null', 'null'],
  ['statusCode string', '{ statusCode: "200" }', '{"statusCode":"200"}'],
];

for (const [name, expression, expectedBody] of JSON_RESULTS) {
  test(`result without statusCode: ${name}`, async () => {
    const result = await invokeReturning(expression);

    assert.equal(result.status, 200);
    assert.deepEqual(pairsOf(result.headers), [['content-type', 'application/json']]);
    assert.equal(result.body.toString(), expectedBody);
    assert.equal(result.error, null);
  });
}

const INVALID_RESULTS = [
  ['circular value', '(() => { const o = {}; o.self = o; return o; })()', /could not be serialised as JSON: Converting circular structure/],
  ['BigInt value', '10n', /could not be serialised as JSON: Do not know how to serialize a BigInt/],
  ['statusCode out of range', '{ statusCode: 1000 }', /statusCode must be an integer from 100 to 599, got 1000/],
  ['fractional statusCode', '{ statusCode: 200.5 }', /statusCode must be an integer from 100 to 599/],
  ['header with newline', '{ statusCode: 200, headers: { "x-a": "1\\r\\nx-b: 2" } }', /header x-a has a value containing CR, LF or NUL/],
  ['bad header name', '{ statusCode: 200, headers: { "bad name": "1" } }', /header name "bad name" is not a valid HTTP header name/],
  ['object body', '{ statusCode: 200, body: { a: 1 } }', /body must be a string or a Buffer, got object/],
  ['invalid base64 body', '{ statusCode: 200, isBase64Encoded: true, body: "not base64!" }', /not valid base64/],
  ['cookies not array', '{ statusCode: 200, cookies: "a=1" }', /cookies must be an array/],
  ['throwing getter', '{ get statusCode() { throw new Error("getter failed"); } }', /result could not be read: getter failed/],
];

for (const [name, expression, expectedMessage] of INVALID_RESULTS) {
  test(`invalid result: ${name}`, async () => {
    const result = await invokeReturning(expression);

    assert.equal(result.status, 500);
    assert.equal(result.body, null);
    assert.deepEqual(pairsOf(result.headers), []);
    assert.equal(result.error.type, 'Runtime.InvalidResult');
    assert.match(result.error.message, expectedMessage);
  });
}

const THROWN_VALUES = [
  ['Error', 'new Error("plain failure")', 'Error', 'plain failure'],
  ['TypeError', 'new TypeError("wrong type")', 'TypeError', 'wrong type'],
  ['subclass without name', '(() => { class PaymentError extends Error {} return new PaymentError("declined"); })()', 'PaymentError', 'declined'],
  ['custom name', 'Object.assign(new Error("x"), { name: "ValidationError" })', 'ValidationError', 'x'],
  ['string', '"just a string"', 'string', 'just a string'],
  ['number', '42', 'number', '42'],
  ['null', 'null', 'null', 'null'],
  ['undefined', 'undefined', 'undefined', 'undefined'],
  ['boolean', 'false', 'boolean', 'false'],
  ['plain object', '{ code: "E1", detail: "bad" }', 'object', "{ code: 'E1', detail: 'bad' }"],
  ['circular object', '(() => { const o = { name: "loop" }; o.self = o; return o; })()', 'object', "<ref *1> { name: 'loop', self: [Circular *1] }"],
  ['object with throwing toString', '{ toString() { throw new Error("no"); } }', 'object', '{ toString: [Function: toString] }'],
  ['throwing message getter', 'Object.defineProperty(new Error("hidden"), "message", { get() { throw new Error("no"); } })', 'Error', ''],
  ['symbol', 'Symbol("s")', 'symbol', 'Symbol(s)'],
  ['lone surrogate message', 'new Error("bad \\uD800 text")', 'Error', 'bad \uFFFD text'],
];

for (const [name, expression, expectedType, expectedMessage] of THROWN_VALUES) {
  test(`thrown ${name} described`, async () => {
    const result = await invokeThrowing(expression);

    assert.equal(result.status, 500);
    assert.equal(result.body, null);
    assert.deepEqual(pairsOf(result.headers), []);
    assert.equal(result.error.type, expectedType);
    assert.equal(result.error.message, expectedMessage);
    assert.ok(Array.isArray(result.error.trace));
  });
}

test('thrown Error trace has stack', async () => {
  const result = await invokeThrowing('new RangeError("too far")');

  assert.equal(result.error.trace[0], 'RangeError: too far');
  assert.ok(result.error.trace.slice(1).every((line) => line.startsWith('    at ')));
  assert.ok(result.error.trace.length > 1);
});

test('thrown Error with cause', async () => {
  const result = await invokeThrowing('new Error("outer", { cause: new TypeError("inner") })');

  assert.equal(result.error.message, 'outer');
  assert.ok(result.error.trace.includes('Caused by: TypeError: inner'));
});

test('rejected promise described', async () => {
  const result = await invokeReturning('Promise.reject(new SyntaxError("rejected"))');

  assert.equal(result.status, 500);
  assert.equal(result.error.type, 'SyntaxError');
  assert.equal(result.error.message, 'rejected');
});

test('worker serves after error results', async () => {
  const result = await invokeReturning('{ statusCode: 200, body: "still here" }');

  assert.equal(result.body.toString(), 'still here');
});
