-- wrk script: POST the document in ORDER_FILE (a new document number per request in place of __N__),
-- each connection waiting INTERVAL_MS after each answer before its next request: connections / (INTERVAL_MS +
-- latency) is the offered rate (wrk -c 28 with INTERVAL_MS=50 offers about 500 requests/s).
local f = io.open(os.getenv("ORDER_FILE")); local body = f:read("*a"); f:close()
local key = os.getenv("API_KEY") or "k"
local interval = tonumber(os.getenv("INTERVAL_MS") or "50")
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
local stamp = tostring(os.time())
function delay() return interval end
request = function()
  n = n + 1
  local b = string.gsub(body, "__N__", "L" .. stamp .. tostring(tid) .. string.format("%07d", n))
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["X-API-Key"] = key}, b)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.1f p99_ms=%.1f non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
