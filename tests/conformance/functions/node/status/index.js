// Conformance scenario "status": the status from ?code=, a repeated header and two cookies.
exports.handler = async (event) => {
  const code = Number((event.queryStringParameters || {}).code);
  return {
    statusCode: code,
    multiValueHeaders: { "x-multi": ["one", "two"] },
    cookies: ["a=1; Path=/", "b=2; Path=/; HttpOnly"],
    body: `status ${code}`,
  };
};
