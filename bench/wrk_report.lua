-- wrk script of bench/run.py: sends the configured request and, at the end, prints one line
-- "BENCH_RESULT {json}" with the request count, the errors and the latency percentiles.
--
-- Environment:
--   BENCH_BODY_FILE     a file whose bytes are sent as a POST body (unset: GET without a body)
--   BENCH_CONTENT_TYPE  the Content-Type of that body (default application/octet-stream)
--
-- wrk counts a response as a status error when its status is 400 or higher. bench/run.py also
-- checks each contender's responses for 200 and the expected body before it measures.

local body_file = os.getenv("BENCH_BODY_FILE")
if body_file ~= nil and body_file ~= "" then
  local handle = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = handle:read("*a")
  handle:close()
  wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/octet-stream"
end

function done(summary, latency, requests)
  local percentiles = {}
  for _, percent in ipairs({50, 90, 99, 99.9}) do
    table.insert(percentiles, string.format('"p%s": %d', tostring(percent), latency:percentile(percent)))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %d, "max": %d, "mean": %.1f, "stdev": %.1f, %s}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(percentiles, ", ")))
end
