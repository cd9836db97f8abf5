// Returns what the function saw of the request as JSON; `?raw=1` echoes the body bytes instead.
exports.handler = async (event) => {
  const query = event.queryStringParameters || {};
  if (query.raw === "1") {
    return {
      statusCode: 200,
      headers: { "content-type": "application/octet-stream" },
      body: event.body === undefined ? "" : (event.isBase64Encoded ? event.body : Buffer.from(event.body, "utf8").toString("base64")),
      isBase64Encoded: true,
    };
  }
  return {
    method: event.requestContext.http.method,
    rawPath: event.rawPath,
    path: event.requestContext.http.path,
    rawQueryString: event.rawQueryString,
    queryStringParameters: event.queryStringParameters || null,
    multiValueQueryStringParameters: event.multiValueQueryStringParameters || null,
    headers: event.headers,
    multiValueHeaders: event.multiValueHeaders || null,
    cookies: event.cookies || null,
    hasBody: Object.prototype.hasOwnProperty.call(event, "body"),
    body: event.body === undefined ? null : event.body,
    isBase64Encoded: event.isBase64Encoded,
  };
};
