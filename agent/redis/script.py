"""The global limiter's Lua script: GCRA on Redis's own clock, one atomic round trip per call.

One script, three modes (one SHA to load, one NOSCRIPT path):

``acquire``
    The mirror of ``LocalLimiter.acquire`` for one call: the caller's sub-limit, then the
    integration's request and token GCRA buckets (``agent.policies.gcra.gcra_reserve``, line for
    line), FIFO through the last booked start, and the upstream holds (Retry-After, exhausted
    windows) that any replica learned. It answers ``{1, wait}`` (admitted: the slot is booked
    ``wait`` seconds from now, the client sleeps once), ``{0, retry_after, reason}`` (refused, as
    a local limiter would), or ``{2, wait, '', old, new}`` (the caller's own sub-limit is booked
    ``wait`` from now; call again then for the integration's slot, so one throttled caller never
    holds the integration's capacity while it waits -- the same two steps the local one takes).
``adjust``
    Debit or refund LLM tokens once a response reported its real usage (``Permit.correct``).
``signal``
    Record what an upstream said (``UpstreamSignal``): hold every replica until Retry-After has
    passed, or count down its ``remaining`` window until the reset.

State per integration is one hash (``rq`` request TAT, ``tk`` token TAT, ``ls`` last booked
start, ``hu`` hold until, ``rr``/``rz`` requests remaining/reset at, ``tr``/``tz`` tokens), a
string per throttled caller (its TAT) and a hash per upstream route window. Times are
microseconds since the epoch from ``TIME`` (so replicas' clock skew does not matter), written with
``%.17g`` (Lua's ``tostring`` keeps 14 digits, too few for microsecond epochs); the script answers
strings because Redis truncates Lua numbers to integers. Every key gets a TTL just past the last
instant it matters, so idle limits vanish by themselves. All keys of one integration share a hash
tag, so the script also runs on Redis Cluster.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

__all__ = ["LIMITER_LUA", "LuaScript"]

LIMITER_LUA = r"""
local mode = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local NEG = -1e300
local INF = 1e300

local function num(v, default)
  if v then return tonumber(v) end
  return default
end
local function fmt(x) return string.format('%.17g', x) end

-- agent/policies/gcra.py gcra_reserve: (start, new_tat) for `cost` arriving at `at`
local function reserve(tat, at, interval, burst, cost)
  local c = cost
  if c > burst then c = burst end
  local start = tat + interval * (c - burst)
  if start < at then start = at end
  local base = tat
  if base < start then base = start end
  return start, base + interval * cost
end

local FIELDS = {'rq', 'tk', 'ls', 'hu', 'rr', 'rz', 'tr', 'tz'}
local function load(key)
  local v = redis.call('HMGET', key, unpack(FIELDS))
  return {rq = num(v[1], NEG), tk = num(v[2], NEG), ls = num(v[3], NEG), hu = num(v[4], NEG),
          rr = num(v[5], INF), rz = num(v[6], NEG), tr = num(v[7], INF), tz = num(v[8], NEG)}
end

-- agent/policies/limiter.py _Upstream.constrain / book
local function constrain(w, s, cost, tokens)
  if s < w.hu then s = w.hu end
  if s < w.rz and w.rr < cost then s = w.rz end
  if tokens > 0 and s < w.tz and w.tr < tokens then s = w.tz end
  return s
end
local function book(w, s, cost, tokens, out)
  if s < w.rz then w.rr = w.rr - cost; out[#out + 1] = 'rr'; out[#out + 1] = fmt(w.rr) end
  if tokens > 0 and s < w.tz then
    w.tr = w.tr - tokens; out[#out + 1] = 'tr'; out[#out + 1] = fmt(w.tr)
  end
end

-- keep a key just past the last instant its state matters (ms, plus a second of slack)
local function expire(key, w)
  local latest = math.max(w.rq, w.tk, w.ls, w.hu, w.rz, w.tz)
  local ms = math.ceil((latest - now) / 1000)
  if ms < 0 then ms = 0 end
  redis.call('PEXPIRE', key, ms + 1000)
end
local function save(key, w, out)
  if #out > 0 then
    redis.call('HSET', key, unpack(out))
    expire(key, w)
  end
end

if mode == 'acquire' then
  local cost, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
  local limit_at = now + tonumber(ARGV[4])
  local ri, rb = tonumber(ARGV[5]), tonumber(ARGV[6])
  local ti, tb = tonumber(ARGV[7]), tonumber(ARGV[8])
  local ci, cb = tonumber(ARGV[9]), tonumber(ARGV[10])
  local g = load(KEYS[1])
  local w = nil
  if ARGV[11] == '1' then w = load(KEYS[3]) end

  -- LocalLimiter._start: the earliest instant the integration-wide constraints admit the call
  local function start_at(at)
    local s = at
    if g.ls > s then s = g.ls end
    if ri > 0 then
      local e = reserve(g.rq, at, ri, rb, cost)
      if e > s then s = e end
    end
    if tokens > 0 and ti > 0 then
      local e = reserve(g.tk, at, ti, tb, tokens)
      if e > s then s = e end
    end
    s = constrain(g, s, cost, tokens)
    if w then s = constrain(w, s, cost, tokens) end
    return s
  end

  local cnew = nil
  if ci > 0 then
    local ctat = num(redis.call('GET', KEYS[2]), NEG)
    local cstart, cn = reserve(ctat, now, ci, cb, cost)
    if cstart > now then
      -- refuse now if even the optimistic estimate is too late; else book the caller's slot only
      local est = start_at(cstart)
      if est > limit_at then
        local why = 'limit'
        if cstart > limit_at then why = 'caller_limit' end
        return {0, fmt(est - now), why}
      end
      redis.call('SET', KEYS[2], fmt(cn), 'PX', math.ceil((cn - now) / 1000) + 1000)
      return {2, fmt(cstart - now), '', fmt(ctat), fmt(cn)}
    end
    cnew = cn
  end

  local s = start_at(now)
  if s > limit_at then
    -- second step of a throttled caller: give its slot back unless a later one was booked
    if ARGV[12] ~= '' and redis.call('GET', KEYS[2]) == ARGV[13] then
      local old = tonumber(ARGV[12])
      if old > now then
        redis.call('SET', KEYS[2], ARGV[12], 'PX', math.ceil((old - now) / 1000) + 1000)
      else
        redis.call('DEL', KEYS[2])
      end
    end
    return {0, fmt(s - now), 'limit'}
  end

  if cnew then
    redis.call('SET', KEYS[2], fmt(cnew), 'PX', math.ceil((cnew - now) / 1000) + 1000)
  end
  g.ls = s
  local out = {'ls', fmt(s)}
  if ri > 0 then
    local base = g.rq
    if base < s then base = s end
    g.rq = base + ri * cost
    out[#out + 1] = 'rq'; out[#out + 1] = fmt(g.rq)
  end
  if tokens > 0 and ti > 0 then
    local base = g.tk
    if base < s then base = s end
    g.tk = base + ti * tokens
    out[#out + 1] = 'tk'; out[#out + 1] = fmt(g.tk)
  end
  book(g, s, cost, tokens, out)
  save(KEYS[1], g, out)
  if w then
    local wout = {}
    book(w, s, cost, tokens, wout)
    save(KEYS[3], w, wout)
  end

  -- what ListIntegrations shows: requests that could start now without waiting
  local avail = INF
  if ri > 0 then
    local used = 0
    if g.rq > now then used = (g.rq - now) / ri end
    avail = math.max(0, rb - used)
  end
  if now < g.hu then avail = 0 elseif now < g.rz then avail = math.min(avail, math.max(0, g.rr)) end
  if avail >= INF then return {1, fmt(s - now), '', '-1'} end
  return {1, fmt(s - now), '', fmt(avail)}
end

if mode == 'adjust' then
  -- GcraBucket.adjust on the token bucket; the upstream token window too
  local delta, ti = tonumber(ARGV[2]), tonumber(ARGV[3])
  local g = load(KEYS[1])
  local out = {}
  if ti > 0 and g.tk > NEG then
    if delta >= 0 then
      g.tk = math.max(g.tk, now) + ti * delta
    else
      g.tk = math.max(g.tk + ti * delta, math.min(g.tk, now))
    end
    out[#out + 1] = 'tk'; out[#out + 1] = fmt(g.tk)
  end
  if now < g.tz then g.tr = g.tr - delta; out[#out + 1] = 'tr'; out[#out + 1] = fmt(g.tr) end
  save(KEYS[1], g, out)
  return 'ok'
end

if mode == 'signal' then
  -- LocalLimiter.apply: what one replica learned, every replica obeys
  local ra, rem, reset = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  local trem, treset = tonumber(ARGV[5]), tonumber(ARGV[6])
  local w = load(KEYS[1])
  local out = {}
  if rem >= 0 and reset >= 0 then
    w.rr, w.rz = rem, now + reset
    out[#out + 1] = 'rr'; out[#out + 1] = fmt(w.rr); out[#out + 1] = 'rz'; out[#out + 1] = fmt(w.rz)
  end
  if trem >= 0 and treset >= 0 then
    w.tr, w.tz = trem, now + treset
    out[#out + 1] = 'tr'; out[#out + 1] = fmt(w.tr); out[#out + 1] = 'tz'; out[#out + 1] = fmt(w.tz)
  end
  if ra > 0 and now + ra > w.hu then
    w.hu = now + ra
    out[#out + 1] = 'hu'; out[#out + 1] = fmt(w.hu)
  end
  save(KEYS[1], w, out)
  return fmt(constrain(w, now, 1, 0) - now)
end

return redis.error_reply('kilo limiter: unknown mode ' .. tostring(mode))
"""


class LuaScript:
    """A script loaded once (``SCRIPT LOAD``) and called by SHA; reloaded when Redis lost it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def load(self, client: Redis) -> None:
        sha = await client.script_load(self.source)
        if isinstance(sha, bytes):
            sha = sha.decode()
        if sha != self.sha:  # pragma: no cover - Redis hashes the same bytes with SHA-1
            self.sha = sha

    async def __call__(self, client: Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted (or flushed) Redis: load it again, once
            await self.load(client)
            return await client.evalsha(self.sha, len(keys), *keys, *args)
