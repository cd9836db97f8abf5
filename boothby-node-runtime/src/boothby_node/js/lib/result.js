'use strict';

// Mapping of a handler's completion to the WorkerResult record
// (worker-result.avsc) that the deflector turns into the HTTP response.

const { RuntimeError, describeError, inspectSafely } = require('./errors');
const { wellFormed } = require('./text');

// RFC 9110 token characters, the only ones allowed in a header name.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// CR, LF and NUL would let a header value start a new header or end the head.
const FORBIDDEN_HEADER_VALUE_CHARACTERS = /[\r\n\0]/;
// Standard or URL-safe base64 alphabet, with optional padding.
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function invalidResult(message, cause) {
  return new RuntimeError('Runtime.InvalidResult', message, cause === undefined ? undefined : { cause });
}

function isPlainObjectLike(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Returns true when the handler's value is a response object with a numeric statusCode. */
function isResponseObject(value) {
  return isPlainObjectLike(value) && typeof value.statusCode === 'number';
}

function addHeader(headers, name, value) {
  if (value === undefined || value === null) {
    return;
  }
  if (!HEADER_NAME.test(name)) {
    throw invalidResult(`header name ${JSON.stringify(name)} is not a valid HTTP header name`);
  }
  const text = String(value);
  if (FORBIDDEN_HEADER_VALUE_CHARACTERS.test(text)) {
    throw invalidResult(`header ${name} has a value containing CR, LF or NUL: ${JSON.stringify(text)}`);
  }
  headers.push({ name, value: wellFormed(text) });
}

function addHeaderValues(headers, name, value) {
  if (Array.isArray(value)) {
    for (const item of value) {
      addHeader(headers, name, item);
    }
  } else {
    addHeader(headers, name, value);
  }
}

/**
 * Collects the response headers. A name present in `multiValueHeaders`
 * (compared case-insensitively) takes its values from there only, as API
 * Gateway does when both objects set the same header. Each `cookies` entry
 * becomes its own set-cookie header.
 */
function collectHeaders(response) {
  const { headers = {}, multiValueHeaders = {}, cookies = [] } = response;
  for (const [field, value] of [['headers', headers], ['multiValueHeaders', multiValueHeaders]]) {
    if (value !== null && !isPlainObjectLike(value)) {
      throw invalidResult(`${field} must be an object, got ${inspectSafely(value)}`);
    }
  }
  if (cookies !== null && !Array.isArray(cookies)) {
    throw invalidResult(`cookies must be an array of strings, got ${inspectSafely(cookies)}`);
  }

  const pairs = [];
  const multiValueNames = new Set(Object.keys(multiValueHeaders || {}).map((name) => name.toLowerCase()));
  for (const [name, value] of Object.entries(headers || {})) {
    if (!multiValueNames.has(name.toLowerCase())) {
      addHeaderValues(pairs, name, value);
    }
  }
  for (const [name, value] of Object.entries(multiValueHeaders || {})) {
    addHeaderValues(pairs, name, value);
  }
  for (const cookie of cookies || []) {
    addHeader(pairs, 'set-cookie', cookie);
  }
  return pairs;
}

function decodeBase64(text) {
  const compact = text.replace(/\s+/g, '');
  if (!BASE64.test(compact) || compact.replace(/=+$/, '').length % 4 === 1) {
    throw invalidResult('body is marked isBase64Encoded but is not valid base64');
  }
  return Buffer.from(compact, 'base64');
}

function encodeResponseBody(response) {
  const { body, isBase64Encoded } = response;
  if (body === undefined || body === null) {
    return null;
  }
  if (Buffer.isBuffer(body)) {
    return body;
  }
  if (body instanceof Uint8Array || body instanceof ArrayBuffer) {
    return Buffer.from(body);
  }
  if (typeof body === 'string') {
    return isBase64Encoded ? decodeBase64(body) : Buffer.from(body, 'utf8');
  }
  throw invalidResult(`body must be a string or a Buffer, got ${typeof body}: ${inspectSafely(body)}`);
}

function resultFromResponse(response) {
  const status = response.statusCode;
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw invalidResult(`statusCode must be an integer from 100 to 599, got ${status}`);
  }
  return { status, headers: collectHeaders(response), body: encodeResponseBody(response) };
}

function resultFromJson(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw invalidResult(`the handler's result could not be serialised as JSON: ${describeError(error).message}`, error);
  }
  // JSON.stringify returns undefined for undefined, functions and symbols.
  if (text === undefined) {
    text = 'null';
  }
  return {
    status: 200,
    headers: [{ name: 'content-type', value: 'application/json' }],
    body: Buffer.from(text, 'utf8'),
  };
}

/**
 * Maps a handler's successful value to {status, headers, body}. An object
 * with a numeric statusCode is a response. Any other value becomes a 200
 * response whose body is the value as JSON. Throws a RuntimeError of type
 * Runtime.InvalidResult when the value cannot be mapped.
 */
function resultFromValue(value) {
  let response;
  try {
    response = isResponseObject(value);
  } catch (error) {
    // A getter or Proxy trap on the result threw.
    throw invalidResult(`the handler's result could not be read: ${describeError(error).message}`, error);
  }
  if (!response) {
    return resultFromJson(value);
  }
  try {
    return resultFromResponse(value);
  } catch (error) {
    if (error instanceof RuntimeError) {
      throw error;
    }
    throw invalidResult(`the handler's response could not be read: ${describeError(error).message}`, error);
  }
}

/** Builds the WorkerResult fields for a successful completion with `value`. */
function successResult(value) {
  try {
    return { ...resultFromValue(value), error: null };
  } catch (error) {
    return errorResult(error);
  }
}

/** Builds the WorkerResult fields for a failed completion: status 500 and the described error. */
function errorResult(error) {
  return { status: 500, headers: [], body: null, error: describeError(error) };
}

module.exports = { resultFromValue, successResult, errorResult, isResponseObject };
