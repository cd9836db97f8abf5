// The benchmark's function: it returns a short text and logs nothing, so that the platform is what is measured.
exports.handler = async () => ({
  statusCode: 200,
  headers: { "content-type": "text/plain" },
  body: "Hello, world!\n",
});
