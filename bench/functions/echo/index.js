// The benchmark's echo function: returns the request body unchanged, with the request's content type.
exports.handler = async (event) => ({
  statusCode: 200,
  headers: { 'content-type': event.headers['content-type'] || 'application/octet-stream' },
  body: event.body === undefined ? '' : event.body,
  isBase64Encoded: event.isBase64Encoded === true,
});
