// The benchmark's trivial function: returns a short text, so that a request measures the platform.
exports.handler = async () => ({
  statusCode: 200,
  headers: { 'content-type': 'text/plain; charset=utf-8' },
  body: 'Hello, world!\n',
});
