// Conformance scenario "pid": responds with the id of the process running the function.
exports.handler = async () => ({ statusCode: 200, body: String(process.pid) });
