-- wrk script: one DPoP-bound token with a fresh proof on every request (proofs are single
-- use), so every request pays for the proof's verification. Proofs come from a file, one per
-- line, as printed by `warden dpop-proof --count N`.
--
--   wrk -t1 -c32 -d10s -s bench/dpop_proofs.lua URL -- TOKEN PROOFS_FILE
--
-- Use -t1: each wrk thread has its own Lua state and would hand out the same proofs. done()
-- reports how many proofs were used and whether the list wrapped (replays, refused with 401).

proofs, n, i, wrapped, auth = {}, 0, 0, 0, nil

function init(args)
  auth = "DPoP " .. (args[1] or error("usage: -- TOKEN PROOFS_FILE"))
  local file = args[2] or error("usage: -- TOKEN PROOFS_FILE")
  for line in io.lines(file) do
    if #line > 0 then
      n = n + 1
      proofs[n] = line
    end
  end
  if n == 0 then error("no proofs in " .. file) end
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return wrk.format(nil, nil, { ["Authorization"] = auth, ["DPoP"] = proofs[i] })
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local used = t:get("wrapped") * t:get("n") + t:get("i")
    io.write(string.format("dpop_proofs: %d proofs loaded, %d handed out, wrapped %d times\n",
      t:get("n"), used, t:get("wrapped")))
  end
end
