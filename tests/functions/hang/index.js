// Never completes, unless ?fast=1.
exports.handler = (event) => {
  if ((event.queryStringParameters || {}).fast === "1") {
    return Promise.resolve({ statusCode: 200, body: "fast" });
  }
  return new Promise(() => {});
};
