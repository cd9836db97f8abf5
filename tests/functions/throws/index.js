// Always fails, the way a buggy handler does.
exports.handler = async () => {
  throw new TypeError("something broke in the handler");
};
