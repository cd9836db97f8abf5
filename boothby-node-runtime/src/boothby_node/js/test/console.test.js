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

test('console levels captured', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async () => {
      console.log('log %s', 'one');
      console.info('info', 2);
      console.warn('warn');
      console.error('error', { a: 1 });
      console.debug('debug');
      console.dir({ nested: { deep: true } });
      console.count('calls');
      console.assert(false, 'assertion');
      return 'ok';
    };
  `);

  const result = await worker.invoke();
  const records = result.logs.map(({ level, message }) => [level, message]);
  assert.deepEqual(records, [
    ['info', 'log one'],
    ['info', 'info 2'],
    ['warn', 'warn'],
    ['error', 'error { a: 1 }'],
    ['debug', 'debug'],
    ['info', '{ nested: { deep: true } }'],
    ['info', 'calls: 1'],
    ['warn', 'Assertion failed: assertion'],
  ]);
  assert.equal(result.logs_dropped, 0);
});

test('console.trace captured with stack', async (t) => {
  const worker = await startFunction(t, `
    function traced() { console.trace('here %d', 5); }
    exports.handler = async () => { traced(); return 'ok'; };
  `);

  const [record] = (await worker.invoke()).logs;
  assert.equal(record.level, 'error');
  const lines = record.message.split('\n');
  assert.equal(lines[0], 'Trace: here 5');
  assert.match(lines[1], /^    at traced /);
});

test('multi-line message one record', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async () => { console.log('first\\nsecond\\nthird'); return 'ok'; };
  `);

  const { logs } = await worker.invoke();
  assert.equal(logs.length, 1);
  assert.equal(logs[0].message, 'first\nsecond\nthird');
});

test('record timestamps are epoch ms', async (t) => {
  const worker = await startFunction(t, 'exports.handler = async () => { console.log("a"); console.log("b"); };\n');

  const before = Date.now();
  const { logs } = await worker.invoke();
  const after = Date.now();
  for (const record of logs) {
    assert.equal(typeof record.timestamp_ms, 'number');
    assert.ok(record.timestamp_ms >= before - 1, `${record.timestamp_ms} is before the call`);
    assert.ok(record.timestamp_ms <= after + 1, `${record.timestamp_ms} is after the reply`);
  }
  assert.ok(logs[1].timestamp_ms >= logs[0].timestamp_ms);
});

test('lone surrogate replaced in record', async (t) => {
  const worker = await startFunction(t, 'exports.handler = async () => { console.log("x\\uD83D y"); };\n');

  const { logs } = await worker.invoke();
  assert.equal(logs[0].message, 'x\uFFFD y');
});

test('format error does not throw', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async () => {
      const hostile = { [Symbol.for('nodejs.util.inspect.custom')]() { throw new Error('inspect failed'); } };
      console.log(hostile);
      console.log('%s', { toString() { throw new Error('toString failed'); } });
      return 'survived';
    };
  `);

  const result = await worker.invoke();
  assert.equal(result.status, 200);
  assert.equal(result.body.toString(), '"survived"');
  assert.equal(result.logs.length, 2);
  assert.match(result.logs[0].message, /could not be formatted: inspect failed/);
});

test('concurrent invocations keep own logs', async (t) => {
  const worker = await startFunction(
    t,
    `
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    exports.handler = async (event) => {
      const name = event.queryStringParameters.name;
      for (let step = 0; step < 5; step += 1) {
        console.log(name + ' step ' + step);
        await sleep(1 + ((step * 7 + name.length) % 4));
        setTimeout(() => console.info(name + ' timer ' + step), 0);
        await Promise.resolve().then(() => console.warn(name + ' microtask ' + step));
      }
      await sleep(10);
      return name;
    };
  `,
    { BOOTHBY_CONCURRENCY: '8' },
  );

  const client = worker.connect();
  t.after(() => client.close());
  const names = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel'];
  const started = Date.now();
  const results = await Promise.all(
    names.map((name) => client.invoke(makeInvocation({ query: [{ name: 'name', value: name }] }))),
  );
  const elapsedMs = Date.now() - started;

  for (const [index, name] of names.entries()) {
    const result = results[index];
    assert.equal(result.body.toString(), JSON.stringify(name));
    const messages = result.logs.map((record) => record.message);
    assert.equal(messages.length, 15, `${name}: ${messages.join(' | ')}`);
    assert.ok(messages.every((message) => message.startsWith(`${name} `)), `${name}: ${messages.join(' | ')}`);
  }
  // Run one after another, eight invocations would take well over 150 ms.
  assert.ok(elapsedMs < 1500, `took ${elapsedMs} ms`);
});

test('concurrency limit queues invocations', async (t) => {
  const worker = await startFunction(
    t,
    `
    let running = 0;
    exports.handler = async () => {
      running += 1;
      const seen = running;
      await new Promise((resolve) => setTimeout(resolve, 20));
      running -= 1;
      return seen;
    };
  `,
    { BOOTHBY_CONCURRENCY: '2' },
  );

  const client = worker.connect();
  t.after(() => client.close());
  const results = await Promise.all(Array.from({ length: 6 }, () => client.invoke(makeInvocation())));
  const maxRunning = Math.max(...results.map((result) => Number(result.body.toString())));
  assert.equal(maxRunning, 2);
  await waitUntil(() => /more than BOOTHBY_CONCURRENCY=2 invocations in flight/.test(worker.stderr()), 'stderr reports the queued invocations');
});

test('huge message truncated with marker', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async () => { console.log('é'.repeat(40000) + 'end'); };
  `);

  const { logs } = await worker.invoke();
  const message = logs[0].message;
  // 'é' is 2 bytes in UTF-8: 80003 bytes in all, 65536 kept.
  const marker = '... [truncated 14467 bytes]';
  assert.ok(message.endsWith(marker), message.slice(-60));
  const keptText = message.slice(0, -marker.length);
  assert.equal(Buffer.byteLength(keptText), 65536);
  assert.equal(keptText, 'é'.repeat(32768));
});

test('truncation keeps whole characters', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async () => { console.log('a' + '😀'.repeat(20000)); };
  `);

  const { logs } = await worker.invoke();
  const [keptText, cut] = logs[0].message.split('... [truncated ');
  // 1 + 4 * 16383 = 65533 bytes fit; the next 4-byte character does not.
  assert.equal(Buffer.byteLength(keptText), 65533);
  assert.equal(cut, `${80001 - 65533} bytes]`);
  assert.equal(keptText.includes('\uFFFD'), false);
});

test('record count cap', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async () => { for (let i = 0; i < 1500; i += 1) console.log('line ' + i); };
  `);

  const { logs, logs_dropped: dropped } = await worker.invoke();
  assert.equal(logs.length, 1000);
  assert.equal(logs[999].message, 'line 999');
  assert.equal(dropped, 500);
});

test('record byte cap', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async () => {
      const block = 'x'.repeat(60 * 1024);
      for (let i = 0; i < 20; i += 1) console.log(block);
      console.log('small');
    };
  `);

  const { logs, logs_dropped: dropped } = await worker.invoke();
  // 17 blocks of 60 KiB fit in 1 MiB; the 18th fills the log.
  assert.equal(logs.length, 17);
  assert.equal(dropped, 4);
  const total = logs.reduce((sum, record) => sum + Buffer.byteLength(record.message), 0);
  assert.ok(total <= 1024 * 1024);
});

test('caps reset per invocation', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async () => { for (let i = 0; i < 1200; i += 1) console.log(i); };
  `);

  for (let round = 0; round < 2; round += 1) {
    const { logs, logs_dropped: dropped } = await worker.invoke();
    assert.equal(logs.length, 1000);
    assert.equal(dropped, 200);
  }
});

test('logs after completion go to stderr', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async () => {
      setTimeout(() => console.error('after the response'), 20);
      return 'ok';
    };
  `);

  const result = await worker.invoke({ id: 'after-completion-1' });
  assert.deepEqual(result.logs, []);
  await waitUntil(
    () => /\tafter-completion-1\tERROR\tafter the response\n/.test(worker.stderr()),
    'the late log line reaches stderr',
  );
  assert.equal(worker.stdout(), '');
});

test('direct stdout writes do not break RPC', async (t) => {
  const worker = await startFunction(t, `
    exports.handler = async () => {
      process.stdout.write('raw stdout\\n');
      process.stderr.write('raw stderr\\n');
      return 'ok';
    };
  `);

  const result = await worker.invoke();
  assert.equal(result.body.toString(), '"ok"');
  await waitUntil(() => worker.stdout() === 'raw stdout\n', 'stdout has the raw line');
  await waitUntil(() => worker.stderr().includes('raw stderr\n'), 'stderr has the raw line');
});
