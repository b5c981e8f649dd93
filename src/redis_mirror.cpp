#include "acemux/redis_mirror.hpp"

#include <hiredis/hiredis.h>
#include <memory>

#include "acemux/http.hpp"

namespace acemux {

// What is in flight when a connection goes is answered nullptr, which gives its bytes back to the backlog.
RedisMirror::RedisMirror(Reactor& r, const RedisConfig& c) : r_(r), sentinel_(r), router_(r) { reconfigure(c); }

void RedisMirror::reconfigure(const RedisConfig& c) {
    cfg_ = c;
    sentinel_.configure(c.sentinels, c.master);
    router_.set(cfg_.url, sentinel(), cfg_.cluster);
}

// Keys of one stream share the hash tag {id}: the layout works on Redis Cluster.
std::string RedisMirror::key(const std::string& id, const std::string& what) const {
    return cfg_.prefix + ":stream:{" + id + "}:" + what;
}

namespace {
// KEYS: chunk, index, time, owner, the chunk keep_chunks back.
// ARGV: data, index, ttl (ms), owner's name ("" unfenced), epoch, channel ("" none).
const char* kWrite =
    "if ARGV[4] ~= '' then "
    "  if redis.call('hget', KEYS[4], 'who') ~= ARGV[4] or redis.call('hget', KEYS[4], 'epoch') ~= ARGV[5] then return 0 end "
    "  if tonumber(ARGV[2]) <= tonumber(redis.call('get', KEYS[2]) or '-1') then return 2 end "
    "end "
    "redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[3]) "
    "redis.call('set', KEYS[2], ARGV[2], 'px', ARGV[3]) "
    "local t = redis.call('time') "
    "redis.call('set', KEYS[3], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), 'px', ARGV[3]) "
    "if KEYS[5] ~= KEYS[1] then redis.call('del', KEYS[5]) end "
    "if ARGV[6] ~= '' then redis.call('spublish', ARGV[6], ARGV[2]) end "
    "return 1";
} // namespace

void RedisMirror::mirror(const std::string& id, uint64_t idx, const uint8_t* data, size_t len) {
    put(id, idx, data, len, nullptr, [](int) {});
}

bool RedisMirror::write(const std::string& id, uint64_t idx, const uint8_t* data, size_t len, const Fence& fence,
                        std::function<void(int)> done) {
    return put(id, idx, data, len, &fence, std::move(done));
}

bool RedisMirror::put(const std::string& id, uint64_t idx, const uint8_t* data, size_t len, const Fence* fence,
                      std::function<void(int)> done) {
    if (!enabled()) return false;
    std::string n = std::to_string(idx);
    if (!router_.connected(key(id, "index")) || backlog_ + len > cfg_.max_backlog) {
        skipped_++;
        return false;
    }
    backlog_ += len;
    uint64_t keep = static_cast<uint64_t>(cfg_.keep_chunks);
    std::string old = std::to_string(idx >= keep ? idx - keep : idx);
    router_.command({"EVAL", kWrite, "5", key(id, "chunk:" + n), key(id, "index"), key(id, "time"), key(id, "owner"),
                   key(id, "chunk:" + old), std::string(reinterpret_cast<const char*>(data), len), n,
                   std::to_string(static_cast<long long>(cfg_.ttl) * 1000), fence ? fence->who : "",
                   fence ? std::to_string(fence->epoch) : "", fence ? key(id, "chunks") : ""},
                  [this, len, done = std::move(done)](redisReply* r) {
                      backlog_ -= std::min(backlog_, len);
                      if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) written_++, bytes_ += len;
                      else if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) fenced_++;
                      else if (r && r->type == REDIS_REPLY_ERROR) failed_++, last_error_ = printable(r->str, 200);
                      else if (!r) failed_++; // sent, but the connection went before the answer
                      done(!r ? -1 : r->type == REDIS_REPLY_INTEGER ? static_cast<int>(r->integer) : -2);
                  });
    return true;
}

bool RedisMirror::load(const std::string& id, size_t max_chunks, Load& l, Loaded done) {
    if (!router_.connected(key(id, "index"))) return false;
    auto result = l.arm(std::move(done));
    router_.command({"MGET", key(id, "index"), key(id, "time")}, [this, id, max_chunks, result](redisReply* r) {
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_STRING)
            return result({});
        uint64_t index = std::strtoull(r->element[0]->str, nullptr, 10);
        int64_t age = unix_ms() - std::strtoll(r->element[1]->str, nullptr, 10);
        if (age > cfg_.resume_max_age || age < 0) {
            r_.log().info("redis: buffer of %s is %.1f s old, not resuming from it", id.c_str(),
                          static_cast<double>(age) / 1000.0);
            return result({});
        }
        get_chunks(id, index + 1 - std::min<uint64_t>(index + 1, max_chunks), index, true,
                   [result](bool, Chunks c) { result(std::move(c)); });
    });
    return true;
}

void RedisMirror::fetch(const std::string& id, uint64_t from, uint64_t to, Fetch& f, Fetched done) {
    get_chunks(id, from, to, false, f.arm(std::move(done)));
}

// `run`: only the newest contiguous run (a buffer to resume from); else every chunk there.
void RedisMirror::get_chunks(const std::string& id, uint64_t from, uint64_t to, bool run, Fetched result) {
    std::vector<std::string> args{"MGET"};
    for (uint64_t i = from; i <= to; i++) args.push_back(key(id, "chunk:" + std::to_string(i)));
    router_.command(std::move(args), [from, run, result](redisReply* r) {
        Chunks out;
        bool answered = r && r->type == REDIS_REPLY_ARRAY;
        for (size_t i = 0; answered && i < r->elements; i++) {
            if (r->element[i]->type == REDIS_REPLY_STRING)
                out.emplace_back(from + i, std::string(r->element[i]->str, r->element[i]->len));
            else if (run)
                out.clear(); // a hole: keep only the contiguous newest run
        }
        result(answered, std::move(out));
    });
}

} // namespace acemux
