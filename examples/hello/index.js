// A first Boothby function: greets the caller and writes one log line.
exports.handler = async (event, context) => {
  const name = (event.queryStringParameters && event.queryStringParameters.name) || "world";
  console.log(`greeting ${name} (request ${context.awsRequestId})`);
  return {
    statusCode: 200,
    headers: { "content-type": "text/plain; charset=utf-8" },
    body: `Hello, ${name}!\n`,
  };
};
