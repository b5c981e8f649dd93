#include "acemux/redis_mirror.hpp"

#include <hiredis/hiredis.h>
#include <memory>

namespace acemux {

RedisMirror::RedisMirror(Reactor& r, const RedisConfig& c) : r_(r), link_(r, "redis") {
    link_.on_lost = [this] { backlog_ = 0; }; // what was in flight is gone with the connection
    reconfigure(c);
}

void RedisMirror::reconfigure(const RedisConfig& c) {
    cfg_ = c;
    link_.set_url(cfg_.url);
}

// Keys of one stream share the hash tag {id}: the layout works on Redis Cluster.
std::string RedisMirror::key(const std::string& id, const std::string& what) const {
    return cfg_.prefix + ":stream:{" + id + "}:" + what;
}

void RedisMirror::mirror(const std::string& id, uint64_t idx, const uint8_t* data, size_t len) {
    if (!enabled()) return;
    if (!link_.connected() || backlog_ + len > cfg_.max_backlog) {
        skipped_++;
        return;
    }
    backlog_ += len;
    std::string ttl = std::to_string(cfg_.ttl), n = std::to_string(idx);
    link_.command({"SET", key(id, "chunk:" + n), std::string(reinterpret_cast<const char*>(data), len), "EX", ttl},
            [this, len](redisReply* r) {
                backlog_ -= std::min(backlog_, len);
                if (r && r->type != REDIS_REPLY_ERROR) written_++, bytes_ += len;
                else if (r) last_error_ = r->str;
            });
    link_.command({"SET", key(id, "index"), n, "EX", ttl}, [](redisReply*) {});
    link_.command({"SET", key(id, "time"), std::to_string(unix_ms()), "EX", ttl}, [](redisReply*) {});
}

bool RedisMirror::load(const std::string& id, size_t max_chunks, Load& l, Loaded done) {
    if (!link_.connected()) return false;
    auto result = l.arm(std::move(done));
    link_.command({"MGET", key(id, "index"), key(id, "time")}, [this, id, max_chunks, result](redisReply* r) {
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
        get_chunks(id, index + 1 - std::min<uint64_t>(index + 1, max_chunks), index, result);
    });
    return true;
}

void RedisMirror::fetch(const std::string& id, uint64_t from, uint64_t to, Load& l, Loaded done) {
    get_chunks(id, from, to, l.arm(std::move(done)));
}

void RedisMirror::get_chunks(const std::string& id, uint64_t from, uint64_t to, Loaded result) {
    std::vector<std::string> args{"MGET"};
    for (uint64_t i = from; i <= to; i++) args.push_back(key(id, "chunk:" + std::to_string(i)));
    link_.command(std::move(args), [from, result](redisReply* r) {
        Chunks out;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            if (r->element[i]->type == REDIS_REPLY_STRING)
                out.emplace_back(from + i, std::string(r->element[i]->str, r->element[i]->len));
            else
                out.clear(); // a hole: keep only the contiguous newest run
        }
        result(std::move(out));
    });
}

} // namespace acemux
