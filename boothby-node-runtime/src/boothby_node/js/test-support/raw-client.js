'use strict';

// A minimal Avro RPC client that writes the stateful (Netty-style) framing
// by hand and sends the handshake together with the first call, as the
// Python deflector does, instead of avsc's separate handshake ping.

const net = require('node:net');
const avro = require('avsc');

// Handshake records from the Avro specification.
const MD5 = { type: 'fixed', name: 'MD5', size: 16 };
const HANDSHAKE_REQUEST = avro.Type.forSchema({
  type: 'record',
  name: 'HandshakeRequest',
  namespace: 'org.apache.avro.ipc',
  fields: [
    { name: 'clientHash', type: MD5 },
    { name: 'clientProtocol', type: ['null', 'string'] },
    { name: 'serverHash', type: 'MD5' },
    { name: 'meta', type: ['null', { type: 'map', values: 'bytes' }] },
  ],
});
const HANDSHAKE_RESPONSE = avro.Type.forSchema({
  type: 'record',
  name: 'HandshakeResponse',
  namespace: 'org.apache.avro.ipc',
  fields: [
    { name: 'match', type: { type: 'enum', name: 'HandshakeMatch', symbols: ['BOTH', 'CLIENT', 'NONE'] } },
    { name: 'serverProtocol', type: ['null', 'string'] },
    { name: 'serverHash', type: ['null', MD5] },
    { name: 'meta', type: ['null', { type: 'map', values: 'bytes' }] },
  ],
});
const METADATA = avro.Type.forSchema({ type: 'map', values: 'bytes' });
const STRING = avro.Type.forSchema('string');
const BOOLEAN = avro.Type.forSchema('boolean');

function encodeFrame(id, payload) {
  const head = Buffer.alloc(12);
  head.writeInt32BE(id, 0);
  head.writeInt32BE(1, 4);
  head.writeInt32BE(payload.length, 8);
  return Buffer.concat([head, payload]);
}

/**
 * One connection. `handshake` is {clientHash, clientProtocol, serverHash}
 * and goes in front of the first call only. `service` decodes the replies.
 */
class RawClient {
  constructor(socketPath, service, handshake) {
    this.service = service;
    this.handshake = handshake;
    this.pending = new Map();
    this.buffered = Buffer.alloc(0);
    this.socket = net.connect(socketPath);
    this.socket.on('data', (chunk) => this.onData(chunk));
    this.socket.on('error', (error) => this.failAll(error));
    this.socket.on('close', () => this.failAll(new Error('connection closed')));
  }

  /** Sends an invoke call with message id `id`, resolving with {handshake, error, result}. */
  invoke(id, invocation) {
    const parts = [];
    const withHandshake = this.handshake !== null;
    if (withHandshake) {
      parts.push(HANDSHAKE_REQUEST.toBuffer({ meta: null, ...this.handshake }));
      this.handshake = null;
    }
    const requestType = this.service.message('invoke').requestType;
    parts.push(METADATA.toBuffer({}), STRING.toBuffer('invoke'), requestType.toBuffer({ invocation }));

    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, withHandshake });
      this.socket.write(encodeFrame(id, Buffer.concat(parts)));
    });
  }

  onData(chunk) {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    for (;;) {
      const message = this.readMessage();
      if (!message) {
        return;
      }
      this.onMessage(message.id, message.payload);
    }
  }

  readMessage() {
    if (this.buffered.length < 8) {
      return null;
    }
    const id = this.buffered.readInt32BE(0);
    const frameCount = this.buffered.readInt32BE(4);
    let offset = 8;
    const frames = [];
    for (let index = 0; index < frameCount; index += 1) {
      if (this.buffered.length < offset + 4) {
        return null;
      }
      const length = this.buffered.readInt32BE(offset);
      if (this.buffered.length < offset + 4 + length) {
        return null;
      }
      frames.push(this.buffered.subarray(offset + 4, offset + 4 + length));
      offset += 4 + length;
    }
    this.buffered = this.buffered.subarray(offset);
    return { id, payload: Buffer.concat(frames) };
  }

  onMessage(id, payload) {
    const call = this.pending.get(id);
    if (!call) {
      return;
    }
    this.pending.delete(id);
    try {
      let offset = 0;
      let handshake = null;
      if (call.withHandshake) {
        const decoded = HANDSHAKE_RESPONSE.decode(payload, offset);
        handshake = decoded.value;
        offset = decoded.offset;
      }
      if (offset >= payload.length) {
        call.resolve({ handshake, error: null, result: null });
        return;
      }
      offset = METADATA.decode(payload, offset).offset;
      const isError = BOOLEAN.decode(payload, offset);
      offset = isError.offset;
      const message = this.service.message('invoke');
      const body = (isError.value ? message.errorType : message.responseType).decode(payload, offset).value;
      call.resolve({
        handshake,
        error: isError.value ? body : null,
        result: isError.value ? null : body,
      });
    } catch (error) {
      call.reject(error);
    }
  }

  failAll(error) {
    for (const call of this.pending.values()) {
      call.reject(error);
    }
    this.pending.clear();
  }

  close() {
    this.socket.destroy();
  }
}

module.exports = { RawClient };
