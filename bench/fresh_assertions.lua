-- wrk script: a client_credentials request with a different client assertion (private_key_jwt)
-- every time, since each assertion's `jti` is single-use. Assertions come from a file, one
-- per line, as bench/issuance.sh makes them.
--
--   wrk -t1 -c16 -d10s -s bench/fresh_assertions.lua URL -- ASSERTIONS_FILE
--
-- Use -t1: each wrk thread has its own Lua state and would walk the same list from the
-- start. done() reports how many assertions were handed out and whether the list wrapped
-- around (after which requests reuse a `jti` and are refused).

assertions, n, i, wrapped = {}, 0, 0, 0

function init(args)
  local file = args[1] or error("usage: -- ASSERTIONS_FILE")
  for line in io.lines(file) do
    if #line > 0 then
      n = n + 1
      assertions[n] = "grant_type=client_credentials&scope=api%3Aread"
        .. "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
        .. "&client_assertion=" .. line
    end
  end
  if n == 0 then error("no assertions in " .. file) end
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return wrk.format("POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" },
    assertions[i])
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local used = t:get("wrapped") * t:get("n") + t:get("i")
    io.write(string.format("fresh_assertions: %d assertions loaded, %d handed out, wrapped %d times\n",
      t:get("n"), used, t:get("wrapped")))
  end
end
