// Conformance scenario "echo": responds with the request body byte for byte, or no body for none.
exports.handler = async (event) => {
  const response = { statusCode: 200, headers: { "content-type": "application/octet-stream" } };
  if (event.body === undefined) {
    return response;
  }
  const bytes = event.isBase64Encoded ? Buffer.from(event.body, "base64") : Buffer.from(event.body, "utf8");
  return { ...response, body: bytes };
};
