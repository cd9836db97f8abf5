'use strict';

// Mapping of an Invocation record (invocation.avsc) to the event of an AWS
// API Gateway HTTP API, payload format version 2.0.

const { isUtf8 } = require('node:buffer');

// Media types whose bodies are passed as text. API Gateway HTTP APIs decide
// by content type alone, but a body declared as text that is not valid UTF-8
// would be corrupted by decoding, so such a body is sent as base64 as well.
const TEXT_MEDIA_TYPES = new Set([
  'application/json',
  'application/javascript',
  'application/xml',
  'application/x-www-form-urlencoded',
]);

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Defines `key` as an own enumerable property. Plain assignment would treat a
 * header or parameter named "__proto__" as a prototype change.
 */
function defineEntry(object, key, value) {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Adds a value to a name → comma-joined values object. */
function joinValue(object, name, value) {
  if (Object.hasOwn(object, name)) {
    object[name] = `${object[name]},${value}`;
  } else {
    defineEntry(object, name, value);
  }
}

/** Adds a value to a name → array of values object. */
function appendValue(object, name, value) {
  if (Object.hasOwn(object, name)) {
    object[name].push(value);
  } else {
    defineEntry(object, name, [value]);
  }
}

/** Returns true when a body with this Content-Type header value is text. */
function isTextContentType(contentType) {
  if (typeof contentType !== 'string') {
    return false;
  }
  const mediaType = contentType.split(';')[0].trim().toLowerCase();
  return (
    mediaType.startsWith('text/') ||
    TEXT_MEDIA_TYPES.has(mediaType) ||
    mediaType.endsWith('+json') ||
    mediaType.endsWith('+xml')
  );
}

/**
 * Returns the event's `body` and `isBase64Encoded` fields. A null body has no
 * `body` key. An empty body is "". A body is a UTF-8 string when its content
 * type is text (see isTextContentType) and its bytes are valid UTF-8. Any
 * other body, including one without a content type, is base64.
 */
function encodeBody(body, contentType) {
  if (body === null || body === undefined) {
    return { isBase64Encoded: false };
  }
  if (body.length === 0) {
    return { body: '', isBase64Encoded: false };
  }
  if (isTextContentType(contentType) && isUtf8(body)) {
    return { body: body.toString('utf8'), isBase64Encoded: false };
  }
  return { body: body.toString('base64'), isBase64Encoded: true };
}

/** Formats a time as API Gateway's requestContext.time, e.g. "04/Dec/2026:20:39:22 +0000". */
function formatRequestTime(epochMs) {
  const date = new Date(epochMs);
  const pad = (number) => String(number).padStart(2, '0');
  const day = pad(date.getUTCDate());
  const month = MONTHS[date.getUTCMonth()];
  const clock = `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  return `${day}/${month}/${date.getUTCFullYear()}:${clock} +0000`;
}

/** Returns the first label of a Host header value, without any port: "api" for "api.example.com:8080". */
function domainPrefixOf(host) {
  if (host.startsWith('[')) {
    // An IPv6 literal such as "[::1]:8080" has no labels to split.
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const hostname = host.split(':')[0];
  return hostname.split('.')[0];
}

/**
 * Builds the API Gateway HTTP API (payload format 2.0) event for an
 * invocation. Beyond the AWS fields, `multiValueHeaders` and
 * `multiValueQueryStringParameters` list every value of each name in order,
 * which the comma-joined `headers` and `queryStringParameters` cannot.
 */
function buildEvent(invocation) {
  const headers = {};
  const multiValueHeaders = {};
  const cookies = [];
  for (const pair of invocation.headers) {
    const name = pair.name.toLowerCase();
    appendValue(multiValueHeaders, name, pair.value);
    if (name === 'cookie') {
      // API Gateway moves Cookie headers out of `headers` into `cookies`.
      for (const cookie of pair.value.split(';')) {
        const trimmed = cookie.trim();
        if (trimmed !== '') {
          cookies.push(trimmed);
        }
      }
    } else {
      joinValue(headers, name, pair.value);
    }
  }

  const queryStringParameters = {};
  const multiValueQueryStringParameters = {};
  for (const pair of invocation.query) {
    joinValue(queryStringParameters, pair.name, pair.value);
    appendValue(multiValueQueryStringParameters, pair.name, pair.value);
  }

  const host = Object.hasOwn(multiValueHeaders, 'host') ? multiValueHeaders.host[0] : 'localhost';
  const userAgent = Object.hasOwn(headers, 'user-agent') ? headers['user-agent'] : '';
  const contentType = Object.hasOwn(multiValueHeaders, 'content-type')
    ? multiValueHeaders['content-type'][0]
    : undefined;

  const event = {
    version: '2.0',
    routeKey: '$default',
    rawPath: invocation.raw_path,
    rawQueryString: invocation.query_string,
  };
  if (cookies.length > 0) {
    event.cookies = cookies;
  }
  event.headers = headers;
  event.multiValueHeaders = multiValueHeaders;
  if (invocation.query.length > 0) {
    event.queryStringParameters = queryStringParameters;
    event.multiValueQueryStringParameters = multiValueQueryStringParameters;
  }
  event.requestContext = {
    accountId: 'boothby',
    apiId: 'boothby',
    domainName: host,
    domainPrefix: domainPrefixOf(host),
    http: {
      method: invocation.method,
      path: invocation.raw_path,
      protocol: invocation.protocol,
      sourceIp: invocation.source_ip,
      userAgent,
    },
    requestId: invocation.id,
    routeKey: '$default',
    stage: '$default',
    time: formatRequestTime(invocation.received_ms),
    timeEpoch: invocation.received_ms,
  };
  if (invocation.path !== '/') {
    event.pathParameters = { proxy: invocation.path.replace(/^\//, '') };
  }
  Object.assign(event, encodeBody(invocation.body, contentType));
  return event;
}

module.exports = { buildEvent, encodeBody, isTextContentType, formatRequestTime, domainPrefixOf };
