'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { before, after, test } = require('node:test');
const avro = require('avsc');
const { startWorker, makeInvocation, workerService, SCHEMAS_DIR } = require('../test-support/worker-harness');
const { RawClient } = require('../test-support/raw-client');
const { readProtocol } = require('../lib/protocol');

let worker;

before(async () => {
  worker = await startWorker({
    files: {
      'index.js': `
        exports.handler = async (event) => {
          const delay = Number(event.queryStringParameters?.delay ?? 0);
          await new Promise((resolve) => setTimeout(resolve, delay));
          return { statusCode: 200, body: event.requestContext.requestId };
        };
      `,
    },
    // Each test opens and closes its own connection.
    env: { BOOTHBY_CONCURRENCY: '4', BOOTHBY_EXIT_ON_DISCONNECT: '0' },
  });
  assert.equal(worker.ready.status, 'ready', worker.ready.error);
});

after(() => worker.stop());

function md5(text) {
  return crypto.createHash('md5').update(text).digest();
}

test('protocol hash is MD5 of compact JSON', () => {
  const protocol = readProtocol(SCHEMAS_DIR);

  assert.ok(workerService().hash.equals(md5(JSON.stringify(protocol))));
  assert.deepEqual(protocol.types.map((type) => type.name), ['Invocation', 'WorkerResult']);
});

test('handshake with server protocol matches BOTH', async (t) => {
  const text = JSON.stringify(readProtocol(SCHEMAS_DIR));
  const hash = md5(text);
  const client = new RawClient(worker.socketPath, workerService(), {
    clientHash: hash,
    clientProtocol: text,
    serverHash: hash,
  });
  t.after(() => client.close());

  const first = await client.invoke(1, makeInvocation({ id: 'raw-1' }));
  assert.equal(first.handshake.match, 'BOTH');
  assert.equal(first.error, null);
  assert.equal(first.result.status, 200);
  assert.equal(first.result.body.toString(), 'raw-1');

  // Later calls on the connection carry no handshake.
  const second = await client.invoke(2, makeInvocation({ id: 'raw-2' }));
  assert.equal(second.handshake, null);
  assert.equal(second.result.body.toString(), 'raw-2');
});

test('handshake with hash only matches BOTH', async (t) => {
  const hash = workerService().hash;
  const client = new RawClient(worker.socketPath, workerService(), {
    clientHash: hash,
    clientProtocol: null,
    serverHash: hash,
  });
  t.after(() => client.close());

  const reply = await client.invoke(1, makeInvocation());
  assert.equal(reply.handshake.match, 'BOTH');
  assert.equal(reply.result.status, 200);
});

test('handshake with other protocol text matches CLIENT', async (t) => {
  // The same protocol written with indentation has another hash.
  const text = JSON.stringify(readProtocol(SCHEMAS_DIR), null, 2);
  const client = new RawClient(worker.socketPath, workerService(), {
    clientHash: md5(text),
    clientProtocol: text,
    serverHash: Buffer.alloc(16),
  });
  t.after(() => client.close());

  const reply = await client.invoke(1, makeInvocation());
  assert.equal(reply.handshake.match, 'CLIENT');
  assert.ok(reply.handshake.serverHash.equals(workerService().hash));
  assert.deepEqual(JSON.parse(reply.handshake.serverProtocol), readProtocol(SCHEMAS_DIR));
  assert.equal(reply.result.status, 200);
});

test('handshake with unknown hash matches NONE', async (t) => {
  const unknown = md5('not a protocol');
  const client = new RawClient(worker.socketPath, workerService(), {
    clientHash: unknown,
    clientProtocol: null,
    serverHash: unknown,
  });
  t.after(() => client.close());

  const reply = await client.invoke(1, makeInvocation());
  assert.equal(reply.handshake.match, 'NONE');
  assert.equal(reply.result, null);
  assert.equal(reply.error, 'invalid handshake request');
});

test('calls in flight reply out of order', async (t) => {
  const hash = workerService().hash;
  const client = new RawClient(worker.socketPath, workerService(), {
    clientHash: hash,
    clientProtocol: null,
    serverHash: hash,
  });
  t.after(() => client.close());

  const order = [];
  const slow = client.invoke(7, makeInvocation({ id: 'slow', query: [{ name: 'delay', value: '60' }] }));
  const fast = client.invoke(65535, makeInvocation({ id: 'fast', query: [{ name: 'delay', value: '0' }] }));
  slow.then(() => order.push('slow'));
  fast.then(() => order.push('fast'));
  const [slowReply, fastReply] = await Promise.all([slow, fast]);

  assert.equal(slowReply.result.body.toString(), 'slow');
  assert.equal(fastReply.result.body.toString(), 'fast');
  assert.deepEqual(order, ['fast', 'slow']);
});

test('avsc client with reordered protocol', async (t) => {
  // A client whose protocol text differs (messages before types) still
  // reaches the worker through a CLIENT handshake.
  const { protocol, namespace, types, messages } = readProtocol(SCHEMAS_DIR);
  const service = avro.Service.forProtocol({ messages, types, namespace, protocol });
  assert.equal(service.hash.equals(workerService().hash), false);

  const client = worker.connect(service);
  t.after(() => client.close());
  const result = await client.invoke(makeInvocation({ id: 'reordered' }));
  assert.equal(result.body.toString(), 'reordered');
});
