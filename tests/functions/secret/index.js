// A function that owns a private file, which other functions must not read.
exports.handler = async () => ({ statusCode: 200, body: String(process.pid) });
