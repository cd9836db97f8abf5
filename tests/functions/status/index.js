// Responds with the status code given in ?code=, two Set-Cookie lines and a repeated header.
exports.handler = async (event) => {
  const code = Number((event.queryStringParameters || {}).code || 200);
  return {
    statusCode: code,
    headers: { "x-status": String(code), "content-type": "text/plain" },
    multiValueHeaders: { "x-multi": ["one", "two"] },
    cookies: ["a=1; Path=/", "b=2; Path=/; HttpOnly"],
    body: code === 204 ? "" : `status ${code}`,
  };
};
