// Conformance scenario "crash": the worker process exits with code 3 in the middle of the invocation.
exports.handler = async () => {
  process.exit(3);
};
