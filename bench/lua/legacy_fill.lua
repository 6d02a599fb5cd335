-- legacy_fill.lua: fills relay queues with /faucet jobs for the memory
-- section of bench/legacy.py (not a throughput figure).
--
-- Every job carries exactly 1024 bytes of stored fields, with the sizes
-- of real peers: client_public_key 604 (base64 of an RSA-2048 PEM),
-- cipherkey 344 (base64 of a 256-byte RSA block), iv 24, chat_history the
-- remaining 52. The jobs go round-robin to <servers> nodes whose keys
-- legacy.py registered beforehand (same key formula as mem_key() there).
-- The relay's queue_total limit is set to the wanted count, so the queue
-- ends up holding exactly that many jobs; legacy.py stops wrk (SIGINT)
-- once /metrics shows it full. Extra requests meanwhile get a cheap 429.
--
-- Arguments after "--" or in the global bench_args: <servers>.

local function server_key(i)
	local k = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KTWem" ..
	    string.format("%05d", i)
	return k .. string.rep("Q", 604 - #k)
end

local threads = {}
local counter = 0

function setup(thread)
	thread:set("id", counter)
	counter = counter + 1
	table.insert(threads, thread)
end

reqs = {}
next_req = 1

function init(args)
	if #args == 0 and bench_args then
		args = bench_args
	end
	local servers = tonumber(args[1] or "32")
	local client = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KQ2xp" ..
	    string.rep("c", 604 - 40)
	local fields = '","chat_history":"' .. string.rep("h", 52) ..
	    '","cipherkey":"' .. string.rep("k", 344) ..
	    '","iv":"' .. string.rep("v", 22) .. '==' ..
	    '","client_public_key":"' .. client .. '"}'
	local hdr = { ["Content-Type"] = "application/json" }
	for i = 0, servers - 1 do
		reqs[#reqs + 1] = wrk.format("POST", "/faucet", hdr,
		    '{"server_public_key":"' .. server_key(i) .. fields)
	end
	-- Threads start at different nodes so queues fill evenly.
	next_req = ((id or 0) * 7) % #reqs + 1
end

function request()
	local r = reqs[next_req]
	next_req = next_req % #reqs + 1
	return r
end
