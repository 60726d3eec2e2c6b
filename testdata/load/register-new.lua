-- wrk script for the "new participants" load run (README, Performance):
-- each request registers with the next token of a file of pre-minted tokens,
-- one distinct subject per token.
--   wrk -t2 -c32 -d5s -s testdata/load/register-new.lua URL -- tokens.txt 2
local count = 0

function setup(thread)
  thread:set("tid", count)
  count = count + 1
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = line
  end
  stride = tonumber(args[2]) or 1
  i = tid
end

function request()
  local t = tokens[(i % #tokens) + 1]
  i = i + stride
  return wrk.format("POST", "/v1/auth/register", { ["Authorization"] = "Bearer " .. t })
end
