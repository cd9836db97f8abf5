'use strict';

// The worker's settings, read from the environment the deflector sets.

const path = require('node:path');
const { RuntimeError } = require('./errors');

function configError(message) {
  return new RuntimeError('Runtime.InvalidConfiguration', message);
}

function requireSetting(env, name) {
  const value = env[name];
  if (value === undefined || value === '') {
    throw configError(`environment variable ${name} is missing or empty`);
  }
  return value;
}

function readInteger(env, name, defaultValue, minimum) {
  const text = env[name];
  if (text === undefined || text === '') {
    return defaultValue;
  }
  if (!/^\d+$/.test(text) || Number(text) < minimum || !Number.isSafeInteger(Number(text))) {
    throw configError(`environment variable ${name} must be an integer of at least ${minimum}, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** Returns the readiness fd from BOOTHBY_READY_FD (default 3), or null when the value is invalid. */
function readReadyFd(env) {
  try {
    return readInteger(env, 'BOOTHBY_READY_FD', 3, 0);
  } catch {
    return null;
  }
}

/** Reads and checks the BOOTHBY_* variables. Throws Runtime.InvalidConfiguration on a bad value. */
function readConfig(env) {
  const functionDir = requireSetting(env, 'BOOTHBY_FUNCTION_DIR');
  if (!path.isAbsolute(functionDir)) {
    throw configError(`BOOTHBY_FUNCTION_DIR must be an absolute path, got ${JSON.stringify(functionDir)}`);
  }

  const exitOnDisconnect = env.BOOTHBY_EXIT_ON_DISCONNECT ?? '1';
  if (exitOnDisconnect !== '0' && exitOnDisconnect !== '1') {
    throw configError(`BOOTHBY_EXIT_ON_DISCONNECT must be 0 or 1, got ${JSON.stringify(exitOnDisconnect)}`);
  }

  return {
    socketPath: requireSetting(env, 'BOOTHBY_SOCKET'),
    schemasDir: requireSetting(env, 'BOOTHBY_SCHEMAS'),
    functionDir,
    handlerSpec: requireSetting(env, 'BOOTHBY_HANDLER'),
    functionName: requireSetting(env, 'BOOTHBY_FUNCTION_NAME'),
    functionVersion: env.BOOTHBY_FUNCTION_VERSION || '$LATEST',
    memoryMb: readInteger(env, 'BOOTHBY_MEMORY_MB', 128, 1),
    concurrency: readInteger(env, 'BOOTHBY_CONCURRENCY', 1, 1),
    readyFd: readInteger(env, 'BOOTHBY_READY_FD', 3, 0),
    exitOnDisconnect: exitOnDisconnect === '1',
  };
}

module.exports = { readConfig, readReadyFd };
