'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { startWorker, makeInvocation, waitUntil } = require('../test-support/worker-harness');

async function startFunction(t, source, env) {
  const worker = await startWorker({ files: { 'index.js': source }, env });
  t.after(() => worker.stop());
  assert.equal(worker.ready.status, 'ready', worker.ready.error);
  return worker;
}

test('uncaught exception fails invocation', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async () => {
      setTimeout(() => { throw new RangeError('thrown from a timer'); }, 5);
      return new Promise(() => {});
    };
  `);

  const result = await worker.invoke();
  assert.equal(result.status, 500);
  assert.equal(result.error.type, 'RangeError');
  assert.equal(result.error.message, 'thrown from a timer');

  const next = await worker.invoke();
  assert.equal(next.status, 500, 'the worker still serves');
  assert.equal(worker.child.exitCode, null);
});

test('uncaught exception in callback handler', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = (event, context, callback) => {
      setImmediate(() => { throw 'thrown string'; });
    };
  `);

  const result = await worker.invoke();
  assert.equal(result.status, 500);
  assert.deepEqual({ type: result.error.type, message: result.error.message }, { type: 'string', message: 'thrown string' });
});

test('unhandled rejection fails invocation', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = (event, context, callback) => {
      setTimeout(() => { Promise.reject(new Error('nobody caught this')); }, 5);
    };
  `);

  const result = await worker.invoke();
  assert.equal(result.status, 500);
  assert.equal(result.error.message, 'nobody caught this');
});

test('exception after completion keeps result', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async (event) => {
      setTimeout(() => { throw new Error('late failure in ' + event.requestContext.requestId); }, 10);
      setTimeout(() => { Promise.reject(new Error('late rejection')); }, 10);
      return { statusCode: 200, body: 'fine' };
    };
  `);

  const result = await worker.invoke({ id: 'late-exception-1' });
  assert.equal(result.status, 200);
  assert.equal(result.body.toString(), 'fine');
  assert.equal(result.error, null);

  await waitUntil(
    () => /late-exception-1\tWARN\tboothby-worker: uncaught exception after request late-exception-1 completed: Error: late failure in late-exception-1/.test(worker.stderr()),
    'the late exception is reported on stderr',
  );
  await waitUntil(
    () => /unhandled rejection after request late-exception-1 completed: Error: late rejection/.test(worker.stderr()),
    'the late rejection is reported on stderr',
  );
  const next = await worker.invoke();
  assert.equal(next.body.toString(), 'fine');
});

test('exception outside invocation logged', async (t) => {
  const worker = await startFunction(t, `
    setTimeout(() => { throw new Error('background job failed'); }, 5);
    exports.handler = async () => 'ok';
  `);

  await waitUntil(
    () => /\t-\tWARN\tboothby-worker: uncaught exception outside any invocation: Error: background job failed/.test(worker.stderr()),
    'the exception is reported on stderr',
  );
  const result = await worker.invoke();
  assert.equal(result.body.toString(), '"ok"');
});

test('concurrent failure stays with its invocation', async (t) => {
  const worker = await startFunction(
    t,
    `
    exports.handler = async (event) => {
      const name = event.queryStringParameters.name;
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (name === 'bad') {
        setTimeout(() => { throw new Error('only bad fails'); }, 5);
        return new Promise(() => {});
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      return name;
    };
  `,
    { BOOTHBY_CONCURRENCY: '4' },
  );

  const client = worker.connect();
  t.after(() => client.close());
  const names = ['good1', 'bad', 'good2', 'good3'];
  const results = await Promise.all(
    names.map((name) => client.invoke(makeInvocation({ query: [{ name: 'name', value: name }] }))),
  );

  assert.equal(results[1].status, 500);
  assert.equal(results[1].error.message, 'only bad fails');
  for (const index of [0, 2, 3]) {
    assert.equal(results[index].status, 200);
    assert.equal(results[index].body.toString(), JSON.stringify(names[index]));
  }
});

test('process.exit in handler ends worker', async (t) => {
  // process.exit in a handler ends the worker, so the pending call fails
  // instead of waiting forever.
  const worker = await startFunction(t, 'exports.handler = async () => { process.exit(3); };\n');

  await assert.rejects(worker.invoke());
  const { code } = await worker.exited();
  assert.equal(code, 3);
});

test('bounded burst of sequential invokes', async (t) => {
  const worker = await startFunction(t, 'exports.handler = async (event) => event.requestContext.requestId;\n');

  for (let index = 0; index < 200; index += 1) {
    const result = await worker.invoke({ id: `burst-${index}` });
    assert.equal(result.body.toString(), JSON.stringify(`burst-${index}`));
  }
});

test('unread stderr does not block', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async (event) => {
      if (event.queryStringParameters?.flood === '1') {
        // 4 MiB of log lines after completion, when they go to stderr.
        setTimeout(() => {
          const line = 'y'.repeat(1024);
          for (let i = 0; i < 4096; i += 1) console.log(line);
        }, 0);
      }
      return 'ok';
    };
  `);

  worker.child.stderr.pause();
  const flood = await worker.invoke({ query: [{ name: 'flood', value: '1' }] });
  assert.equal(flood.status, 200);
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (let index = 0; index < 5; index += 1) {
    const result = await worker.invoke({}, 2000);
    assert.equal(result.status, 200);
  }

  worker.child.stderr.resume();
  await waitUntil(
    () => /boothby-worker: dropped \d+ stderr lines because stderr was not read fast enough/.test(worker.stderr()),
    'the dropped-lines warning reaches stderr',
  );
});
