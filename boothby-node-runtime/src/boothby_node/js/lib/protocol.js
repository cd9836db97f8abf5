'use strict';

// The worker protocol: worker.avpr with its `types` list filled with the
// Invocation and WorkerResult schemas, in that order, because WorkerResult
// refers to the Pair record that Invocation defines.

const fs = require('node:fs');
const path = require('node:path');
const avro = require('avsc');

const INVOCATION_FILE = 'invocation.avsc';
const WORKER_RESULT_FILE = 'worker-result.avsc';
const PROTOCOL_FILE = 'worker.avpr';

function readJson(filePath) {
  let text;
  try {
    text = fs.readFileSync(filePath, 'utf8');
  } catch (error) {
    throw new Error(`cannot read schema file ${filePath}: ${error.message}`, { cause: error });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`schema file ${filePath} is not valid JSON: ${error.message}`, { cause: error });
  }
}

/**
 * Reads the three schema files from `schemasDir` and returns the protocol
 * declaration. Its hash, which the handshake compares, is the MD5 of
 * JSON.stringify() of this object, so a client that builds the same object
 * in the same key order gets a BOTH match.
 */
function readProtocol(schemasDir) {
  const protocol = readJson(path.join(schemasDir, PROTOCOL_FILE));
  protocol.types = [
    readJson(path.join(schemasDir, INVOCATION_FILE)),
    readJson(path.join(schemasDir, WORKER_RESULT_FILE)),
  ];
  return protocol;
}

/** Builds the avsc Service of the worker protocol from the schema files in `schemasDir`. */
function loadService(schemasDir) {
  const protocol = readProtocol(schemasDir);
  try {
    return avro.Service.forProtocol(protocol);
  } catch (error) {
    throw new Error(`the worker protocol in ${schemasDir} is invalid: ${error.message}`, { cause: error });
  }
}

module.exports = { loadService, readProtocol };
