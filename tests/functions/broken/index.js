// A function that cannot load: the syntax error is on purpose.
exports.handler = async () => {
  return { statusCode: 200, body: "never"
};
