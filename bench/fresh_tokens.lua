-- wrk script: a different bearer token on every request, so every request pays for a full
-- token verification (no cache hit). Tokens come from a file, one per line, as printed by
-- `warden token --count N`.
--
--   wrk -t1 -c32 -d10s -s bench/fresh_tokens.lua URL -- TOKENS_FILE
--
-- Use -t1: each wrk thread has its own Lua state and would walk the same list from the
-- start. done() reports how many tokens were handed out and whether the list wrapped
-- around (after which requests would be cache hits again).

tokens, n, i, wrapped = {}, 0, 0, 0

function init(args)
  local file = args[1] or error("usage: -- TOKENS_FILE")
  for line in io.lines(file) do
    if #line > 0 then
      n = n + 1
      tokens[n] = "Bearer " .. line
    end
  end
  if n == 0 then error("no tokens in " .. file) end
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return wrk.format(nil, nil, { ["Authorization"] = tokens[i] })
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local used = t:get("wrapped") * t:get("n") + t:get("i")
    io.write(string.format("fresh_tokens: %d tokens loaded, %d handed out, wrapped %d times\n",
      t:get("n"), used, t:get("wrapped")))
  end
end
