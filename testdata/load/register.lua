-- wrk script of the load runs (testdata/load/run.sh): POST /v1/auth/register
-- with the bearer tokens of a file, one token per line.
--
--   wrk -t1 -c32 -d10s -s testdata/load/register.lua URL -- tokens.txt same
--   wrk -t1 -c32 -d10s -s testdata/load/register.lua URL -- tokens.txt distinct
--
-- "same" sends the file's first token every time (a static request: wrk does
-- no Lua work per request); "distinct" sends the next token of the file with
-- each request, each thread its own share, so that no token is sent twice
-- until the file runs out. A line "TOKEN PROOF" is sent as a DPoP-bound
-- token: "Authorization: DPoP TOKEN" and "DPoP: PROOF" (distinct only, as
-- a proof is good once). done() prints one line for run.sh to read.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local mode = args[2] or "distinct"
  local nthreads = #args >= 3 and tonumber(args[3]) or 1
  wrk.method = "POST"
  wrk.path = "/v1/auth/register"
  if mode == "same" then
    for line in io.lines(args[1]) do
      wrk.headers["Authorization"] = "Bearer " .. line
      break
    end
    return
  end
  local tokens = {}
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = line
  end
  ntokens = #tokens
  sent = 0
  local i = tid
  request = function()
    local t = tokens[(i % ntokens) + 1]
    i = i + nthreads
    sent = sent + 1
    local tok, proof = t:match("^(%S+) (%S+)$")
    if tok then
      return wrk.format(nil, nil, { ["Authorization"] = "DPoP " .. tok, ["DPoP"] = proof })
    end
    return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. t })
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local reused = 0
  for _, t in ipairs(threads) do
    local n, s = t:get("ntokens"), t:get("sent")
    if n and s and s * #threads > n then
      reused = 1
    end
  end
  io.write(string.format(
    "RESULT requests=%d duration_us=%d non2xx=%d socket_errors=%d p50_us=%d p99_us=%d tokens_reused=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), reused))
end
