-- legacy_drain.lua: drains the queues legacy_fill.lua filled, one job per
-- /sink as the shipped compute node polls (no max_batch_size), round-robin
-- over the same <servers> node keys. legacy.py stops wrk (SIGINT) once
-- /metrics shows the queues empty; polls of an empty queue are plain
-- heartbeats.
--
-- Arguments after "--" or in the global bench_args: <servers>.

local function server_key(i)
	local k = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KTWem" ..
	    string.format("%05d", i)
	return k .. string.rep("Q", 604 - #k)
end

local counter = 0

function setup(thread)
	thread:set("id", counter)
	counter = counter + 1
end

reqs = {}
next_req = 1

function init(args)
	if #args == 0 and bench_args then
		args = bench_args
	end
	local servers = tonumber(args[1] or "32")
	local hdr = { ["Content-Type"] = "application/json" }
	for i = 0, servers - 1 do
		reqs[#reqs + 1] = wrk.format("POST", "/sink", hdr,
		    '{"server_public_key":"' .. server_key(i) .. '"}')
	end
	next_req = ((id or 0) * 7) % #reqs + 1
end

function request()
	local r = reqs[next_req]
	next_req = next_req % #reqs + 1
	return r
end
