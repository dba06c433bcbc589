-- Fault injection for haproxy (loaded by faultproxy-start.sh's haproxy.cfg): every request is
-- delayed, then gets at most one fault, drawn at random:
--   drop      the connection is closed before the request reaches the server (no answer);
--   slowdown  haproxy answers 503 SlowDown with an S3 error body itself;
--   dropresp  the server handles the request, then the connection is closed before its answer
--             reaches the client (a PUT may then be done twice).
-- The draw goes into txn.fault, which haproxy.cfg's rules act on. GET /.faultproxy/stats
-- answers the counts as JSON (not delayed, never faulted).

local counts = {requests = 0, drop = 0, slowdown = 0, dropresp = 0, delayed_ms = 0}

math.randomseed(os.time() + math.floor(core.now().usec))

-- http-request lua.faultproxy DELAY_MS DROP_PCT SLOWDOWN_PCT DROPRESP_PCT
core.register_action("faultproxy", {"http-req"}, function(txn, delay, drop, slowdown, dropresp)
    local ms = tonumber(delay) or 0
    if ms > 0 then
        core.msleep(ms)
    end
    local p_drop, p_slow, p_resp = tonumber(drop) or 0, tonumber(slowdown) or 0, tonumber(dropresp) or 0
    local r = math.random() * 100
    local fault = "none"
    if r < p_drop then
        fault = "drop"
    elseif r < p_drop + p_slow then
        fault = "slowdown"
    elseif r < p_drop + p_slow + p_resp then
        fault = "dropresp"
    end
    counts.requests = counts.requests + 1
    counts.delayed_ms = counts.delayed_ms + ms
    if fault ~= "none" then
        counts[fault] = counts[fault] + 1
    end
    txn:set_var("txn.fault", fault)
end, 4)

-- http-response lua.faultproxy_dropresp: ends the transaction without a reply (the client's
-- connection is closed).
core.register_action("faultproxy_dropresp", {"http-res"}, function(txn)
    txn:done()
end)

core.register_service("faultproxy_stats", "http", function(applet)
    local body = string.format(
        '{"requests": %d, "dropped_requests": %d, "slowdown_503": %d, "dropped_responses": %d, "delayed_ms": %d}\n',
        counts.requests, counts.drop, counts.slowdown, counts.dropresp, counts.delayed_ms)
    applet:set_status(200)
    applet:add_header("content-type", "application/json")
    applet:add_header("content-length", tostring(#body))
    applet:start_response()
    applet:send(body)
end)
