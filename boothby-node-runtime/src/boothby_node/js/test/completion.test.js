'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { startWorker, pairsOf, waitUntil } = require('../test-support/worker-harness');

async function startFunction(t, source, env) {
  const worker = await startWorker({ files: { 'index.js': source }, env });
  t.after(() => worker.stop());
  assert.equal(worker.ready.status, 'ready', worker.ready.error);
  return worker;
}

function jsonBody(result) {
  return JSON.parse(result.body.toString('utf8'));
}

test('async handler result', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async (event) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return { statusCode: 201, body: 'created ' + event.rawPath };
    };
  `);

  const result = await worker.invoke({ raw_path: '/items', path: '/items' });
  assert.equal(result.status, 201);
  assert.equal(result.body.toString(), 'created /items');
  assert.equal(result.error, null);
  assert.deepEqual(result.logs, []);
  assert.equal(result.logs_dropped, 0);
});

test('callback handler result', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = (event, context, callback) => {
      setTimeout(() => callback(null, { statusCode: 202, body: 'later' }), 5);
    };
  `);

  const result = await worker.invoke();
  assert.equal(result.status, 202);
  assert.equal(result.body.toString(), 'later');
});

test('callback handler error', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = (event, context, callback) => {
      setImmediate(() => callback(new TypeError('bad input')));
    };
  `);

  const result = await worker.invoke();
  assert.equal(result.status, 500);
  assert.equal(result.error.type, 'TypeError');
  assert.equal(result.error.message, 'bad input');
});

test('sync handler return value', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = (event) => ({ statusCode: 200, body: event.requestContext.http.method });
  `);

  const result = await worker.invoke({ method: 'PATCH' });
  assert.equal(result.status, 200);
  assert.equal(result.body.toString(), 'PATCH');
});

test('sync handler undefined gives null', async (t) => {
  const worker = await startFunction(t, 'exports.handler = () => {};\n');

  const result = await worker.invoke();
  assert.equal(result.status, 200);
  assert.deepEqual(pairsOf(result.headers), [['content-type', 'application/json']]);
  assert.equal(result.body.toString(), 'null');
});

test('async handler undefined gives null', async (t) => {
  const worker = await startFunction(t, 'exports.handler = async () => {};\n');

  const result = await worker.invoke();
  assert.equal(result.status, 200);
  assert.equal(result.body.toString(), 'null');
});

test('callback called by short handler', async (t) => {
  // A handler declared with two parameters can still reach the callback.
  const worker = await startFunction(t, `
    exports.handler = function () { arguments[2](null, 'from callback'); };
  `);

  const result = await worker.invoke();
  assert.equal(result.status, 200);
  assert.equal(jsonBody(result), 'from callback');
});

test('double completion first wins', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = (event, context, callback) => {
      callback(null, { statusCode: 200, body: 'first' });
      callback(null, { statusCode: 500, body: 'second' });
      callback(new Error('third'));
    };
  `);

  const invocationId = 'double-completion-1';
  const result = await worker.invoke({ id: invocationId });
  assert.equal(result.status, 200);
  assert.equal(result.body.toString(), 'first');
  const warnings = result.logs.filter((record) => record.level === 'warn');
  assert.equal(warnings.length, 2);
  assert.match(warnings[0].message, /request double-completion-1 already completed; ignoring a later completion by callback with a value/);
  assert.match(warnings[1].message, /ignoring a later completion by callback with error Error: third/);
});

test('late completion warns on stderr', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async (event, context, callback) => {
      setTimeout(() => callback(null, 'too late'), 20);
      return 'on time';
    };
  `);

  const result = await worker.invoke({ id: 'late-completion-1' });
  assert.equal(jsonBody(result), 'on time');
  await waitForStderr(worker, /late-completion-1\tWARN\tboothby-worker: request late-completion-1 already completed/);
});

test('promise and callback race', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async (event, context, callback) => {
      callback(null, 'callback first');
      await new Promise((resolve) => setTimeout(resolve, 5));
      return 'promise second';
    };
  `);

  const result = await worker.invoke();
  assert.equal(jsonBody(result), 'callback first');
});

test('thrown exception after callback ignored', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = (event, context, callback) => {
      callback(null, 'done');
      throw new Error('after the callback');
    };
  `);

  const result = await worker.invoke();
  assert.equal(result.status, 200);
  assert.equal(jsonBody(result), 'done');
  assert.match(result.logs[0].message, /ignoring a later completion by thrown exception with error Error: after the callback/);
});

test('context legacy methods', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = (event, context) => {
      const mode = event.queryStringParameters.mode;
      if (mode === 'succeed') context.succeed({ statusCode: 200, body: 'succeeded' });
      if (mode === 'fail') context.fail(new Error('failed'));
      if (mode === 'done-ok') context.done(null, { statusCode: 200, body: 'done' });
      if (mode === 'done-error') context.done('done with error');
      return new Promise(() => {});
    };
  `);

  const cases = [
    ['succeed', 200, 'succeeded', null],
    ['fail', 500, null, 'failed'],
    ['done-ok', 200, 'done', null],
    ['done-error', 500, null, 'done with error'],
  ];
  for (const [mode, status, body, errorMessage] of cases) {
    const result = await worker.invoke({ query: [{ name: 'mode', value: mode }], query_string: `mode=${mode}` });
    assert.equal(result.status, status, mode);
    assert.equal(result.body === null ? null : result.body.toString(), body, mode);
    assert.equal(result.error === null ? null : result.error.message, errorMessage, mode);
  }
});

test('context fields', async (t) => {
  const worker = await startFunction(
    t,
    `
    exports.handler = async (event, context) => ({
      awsRequestId: context.awsRequestId,
      functionName: context.functionName,
      functionVersion: context.functionVersion,
      invokedFunctionArn: context.invokedFunctionArn,
      memoryLimitInMB: context.memoryLimitInMB,
      logGroupName: context.logGroupName,
      logStreamName: context.logStreamName,
      callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
      remaining: context.getRemainingTimeInMillis(),
      pid: process.pid,
    });
  `,
    { BOOTHBY_FUNCTION_VERSION: '7', BOOTHBY_MEMORY_MB: '256' },
  );

  const deadline = Date.now() + 5000;
  const context = jsonBody(await worker.invoke({ id: 'context-1', deadline_ms: deadline }));
  assert.equal(context.awsRequestId, 'context-1');
  assert.equal(context.functionName, 'test-fn');
  assert.equal(context.functionVersion, '7');
  assert.equal(context.invokedFunctionArn, 'arn:boothby:lambda:local:function:test-fn');
  assert.equal(context.memoryLimitInMB, '256');
  assert.equal(context.logGroupName, '/boothby/test-fn');
  assert.match(context.logStreamName, new RegExp(`^\\d{4}/\\d{2}/\\d{2}/\\[7\\]${context.pid}$`));
  assert.equal(context.callbackWaitsForEmptyEventLoop, true);
  assert.ok(context.remaining > 0, `remaining ${context.remaining}`);
  assert.ok(context.remaining <= 5000, `remaining ${context.remaining}`);
});

test('remaining time not negative', async (t) => {
  const worker = await startFunction(t, 'exports.handler = async (event, context) => context.getRemainingTimeInMillis();\n');

  const result = await worker.invoke({ deadline_ms: Date.now() - 1000 });
  assert.equal(jsonBody(result), 0);
});

test('context defaults', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async (event, context) => [context.functionVersion, context.memoryLimitInMB];
  `);

  assert.deepEqual(jsonBody(await worker.invoke()), ['$LATEST', '128']);
});

async function waitForStderr(worker, pattern) {
  await waitUntil(() => pattern.test(worker.stderr()), `stderr matches ${pattern}`);
}
