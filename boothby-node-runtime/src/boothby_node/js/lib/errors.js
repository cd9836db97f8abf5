'use strict';

// Serialisation of anything a handler throws, rejects with or passes to its
// callback as an error, into the FunctionError record of worker-result.avsc.

const util = require('node:util');
const { limitText } = require('./text');

const MAX_MESSAGE_BYTES = 64 * 1024;
const MAX_TRACE_LINES = 200;
const MAX_CAUSE_DEPTH = 5;

const INSPECT_OPTIONS = {
  depth: 4,
  // Skip user-defined inspect methods and getters, which could throw, and
  // inspect the target of a Proxy instead of calling its traps.
  customInspect: false,
  getters: false,
  showProxy: false,
  breakLength: Infinity,
  maxArrayLength: 50,
  maxStringLength: 10000,
};

/**
 * An error raised by the worker itself rather than by the function's code.
 * Its `name` is a Lambda-style type such as "Runtime.HandlerNotFound".
 */
class RuntimeError extends Error {
  constructor(type, message, options) {
    super(message, options);
    this.name = type;
  }
}

/** Calls `read` and returns its value, or `fallback` when it throws. */
function readSafely(read, fallback) {
  try {
    return read();
  } catch {
    return fallback;
  }
}

/** Returns util.inspect(value) without ever throwing. */
function inspectSafely(value) {
  try {
    return util.inspect(value, INSPECT_OPTIONS);
  } catch (inspectError) {
    const reason = readSafely(() => String(inspectError.message), 'unknown reason');
    return `[value could not be inspected: ${reason}]`;
  }
}

function isErrorObject(value) {
  if (util.types.isNativeError(value)) {
    return true;
  }
  // instanceof can call a Proxy's getPrototypeOf trap, which may throw.
  return readSafely(() => value instanceof Error, false);
}

function errorType(error) {
  const name = readSafely(() => error.name, undefined);
  const constructorName = readSafely(() => error.constructor.name, undefined);

  // A subclass that does not set `name` inherits "Error"; its class name
  // says more.
  if (name === 'Error' && typeof constructorName === 'string' && constructorName !== '') {
    return constructorName;
  }
  if (typeof name === 'string' && name !== '') {
    return name;
  }
  if (typeof constructorName === 'string' && constructorName !== '') {
    return constructorName;
  }
  return 'Error';
}

function errorMessage(error) {
  const message = readSafely(() => error.message, undefined);
  if (message === undefined) {
    return '';
  }
  if (typeof message === 'string') {
    return message;
  }
  return inspectSafely(message);
}

function stackLines(error) {
  const stack = readSafely(() => error.stack, undefined);
  if (typeof stack !== 'string' || stack === '') {
    return [];
  }
  return stack.split('\n');
}

/**
 * Builds the trace of an error: its stack lines, then those of each
 * `cause` that is itself an error, each introduced by "Caused by:".
 */
function errorTrace(error) {
  // A RuntimeError's own stack points into the worker, so only its cause
  // is useful to the function's author.
  const lines = error instanceof RuntimeError ? [] : stackLines(error);
  let cause = readSafely(() => error.cause, undefined);

  for (let depth = 0; depth < MAX_CAUSE_DEPTH && isErrorObject(cause); depth += 1) {
    const causeLines = stackLines(cause);
    if (causeLines.length > 0) {
      lines.push(`Caused by: ${causeLines[0]}`, ...causeLines.slice(1));
    }
    cause = readSafely(() => cause.cause, undefined);
  }
  return lines;
}

function describeValue(value) {
  if (isErrorObject(value)) {
    return { type: errorType(value), message: errorMessage(value), trace: errorTrace(value) };
  }

  if (value === null) {
    return { type: 'null', message: 'null', trace: [] };
  }
  switch (typeof value) {
    case 'string':
      return { type: 'string', message: value, trace: [] };
    case 'undefined':
    case 'number':
    case 'bigint':
    case 'boolean':
      return { type: typeof value, message: String(value), trace: [] };
    case 'symbol':
      return { type: 'symbol', message: inspectSafely(value), trace: [] };
    case 'function':
      return { type: 'function', message: inspectSafely(value), trace: [] };
    default:
      return { type: 'object', message: inspectSafely(value), trace: [] };
  }
}

/**
 * Converts any thrown or rejected value into a FunctionError record
 * {type, message, trace}. Error objects give their name, message and stack
 * lines. Other values give their `typeof` ("null" for null) as the type and a
 * readable form as the message. Never throws.
 */
function describeError(value) {
  let described;
  try {
    described = describeValue(value);
  } catch {
    described = { type: 'unknown', message: '[the error value could not be read]', trace: [] };
  }

  return {
    type: limitText(described.type, MAX_MESSAGE_BYTES),
    message: limitText(described.message, MAX_MESSAGE_BYTES),
    trace: described.trace.slice(0, MAX_TRACE_LINES).map((line) => limitText(line, MAX_MESSAGE_BYTES)),
  };
}

/** Returns "<type>: <message>" for an error, the form used on one line. */
function formatError(value) {
  const { type, message } = describeError(value);
  return `${type}: ${message}`;
}

module.exports = { RuntimeError, describeError, formatError, inspectSafely };
