#include "acemux/cluster.hpp"

#include <algorithm>
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <random>
#include <unistd.h>

namespace acemux {

namespace {
constexpr Millis kHeartbeat = 1000;

// KEYS: the lease (a hash: who, epoch, at), the epoch counter, the index.
// ARGV: this instance, the lease's time to live, how stale an owner may be
// (ms; negative: do not take it), the renewal the taker saw ("": any).
// Renews the lease when it is ours; takes it, with the next epoch, when it
// is free or its owner has not renewed it in time (and not since the
// renewal the taker saw); answers who ("-": free, not taken), epoch, index,
// on a takeover the engine session the stale owner noted (engine, command
// URL), the owner's last renewal and its age, and on a takeover the content
// id the stale owner played (a channel's backup, or "").
const char* kClaim =
    "local t = redis.call('time') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local idx = redis.call('get', KEYS[3]) or '-1' "
    "local who = redis.call('hget', KEYS[1], 'who') "
    "if who == ARGV[1] then "
    "  redis.call('hset', KEYS[1], 'at', now) redis.call('pexpire', KEYS[1], ARGV[2]) "
    "  return {who, redis.call('hget', KEYS[1], 'epoch'), idx, '', '', redis.call('hget', KEYS[1], 'at'), '0', ''} "
    "end "
    "local at = redis.call('hget', KEYS[1], 'at') or '0' "
    "local age = tostring(now - tonumber(at)) "
    "if who and (tonumber(ARGV[3]) < 0 or tonumber(age) < tonumber(ARGV[3]) or (ARGV[4] ~= '' and at ~= ARGV[4])) then "
    "  return {who, redis.call('hget', KEYS[1], 'epoch'), idx, '', '', at, age, ''} "
    "end "
    "if tonumber(ARGV[3]) < 0 then return {'-', '0', idx, '', '', '0', '0', ''} end "
    "local engine = redis.call('hget', KEYS[1], 'engine') or '' "
    "local cmd = redis.call('hget', KEYS[1], 'cmd') or '' "
    "local live = redis.call('hget', KEYS[1], 'live') or '' "
    "local e = redis.call('incr', KEYS[2]) "
    "redis.call('del', KEYS[1]) "
    "redis.call('hset', KEYS[1], 'who', ARGV[1], 'epoch', e, 'at', now) "
    "redis.call('pexpire', KEYS[1], ARGV[2]) "
    "return {ARGV[1], tostring(e), idx, engine, cmd, redis.call('hget', KEYS[1], 'at'), '0', live}";
const char* kNote =
    "if redis.call('hget', KEYS[1], 'who') == ARGV[1] and redis.call('hget', KEYS[1], 'epoch') == ARGV[2] then "
    "  redis.call('hset', KEYS[1], 'engine', ARGV[3], 'cmd', ARGV[4], 'live', ARGV[5]) end return 0";
const char* kRelease =
    "if redis.call('hget', KEYS[1], 'who') == ARGV[1] and redis.call('hget', KEYS[1], 'epoch') == ARGV[2] then "
    "  return redis.call('del', KEYS[1]) end return 0";
const char* kWatchers =
    "redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1]) return redis.call('zcard', KEYS[1])";

std::string default_name() {
    char host[256] = "acemux";
    ::gethostname(host, sizeof host - 1);
    std::random_device rd;
    char tail[16];
    std::snprintf(tail, sizeof tail, "-%04x", rd() & 0xFFFF);
    return host + std::string(tail);
}
} // namespace

Cluster::Cluster(Reactor& r, const ClusterConfig& c, RedisMirror& mirror, EnginePool& pool)
    : r_(r), mirror_(mirror), pool_(pool), heartbeat_timer_(r, [this] { heartbeat(); }) {
    reconfigure(c);
}

void Cluster::reconfigure(const ClusterConfig& c) {
    cfg_ = c;
    if (name_.empty() || (!c.instance.empty() && c.instance != name_)) name_ = c.instance.empty() ? default_name() : c.instance;
    RedisRouter& redis = mirror_.router();
    redis.set_pubsub(enabled());
    if (!enabled()) return heartbeat_timer_.stop();
    redis.on_message = [this](const std::string& ch, const std::string& m) { on_message(ch, m); };
    // Announcements missed while the subscription was down, or a fetch that
    // got no answer while the command link was: the index key says where
    // the owner is, and a follower fetches from there at once.
    redis.on_reconnect = [this] {
        // By id, looked up each time: nothing answers inside a command
        // call today, but a renewal that did could end an ownership.
        std::vector<std::string> owned;
        for (auto& [id, renew] : owning_) owned.push_back(id);
        for (auto& id : owned)
            if (auto it = owning_.find(id); it != owning_.end()) it->second();
        for (auto& [id, on_chunk] : following_)
            mirror_.router().command({"GET", key(id, "index")}, [this, id = id](redisReply* r) {
                auto it = following_.find(id);
                if (it != following_.end() && r && r->type == REDIS_REPLY_STRING)
                    it->second(std::strtoull(r->str, nullptr, 10));
            });
    };
    if (!heartbeat_timer_.armed()) heartbeat_timer_.start(0, kHeartbeat);
    r_.log().info("cluster: this instance is %s", name_.c_str());
}

void Cluster::claim(const std::string& id, Millis stale, const std::string& renewed_at, Claim& p,
                    std::function<void(Lease)> done) {
    auto result = p.arm(std::move(done));
    if (!connected()) { // never answered inside this call
        Lease none;
        none.lost = true;
        return r_.post([result, none] { result(none); });
    }
    mirror_.router().command({"EVAL", kClaim, "3", key(id, "owner"), key(id, "epoch"), key(id, "index"), name_,
                            std::to_string(cfg_.lease), std::to_string(stale), renewed_at},
                           [result](redisReply* r) {
                               Lease l;
                               l.lost = !r;
                               if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 8) {
                                   for (size_t i = 0; i < r->elements; i++)
                                       if (r->element[i]->type != REDIS_REPLY_STRING) return result({});
                                   l.owner.assign(r->element[0]->str, r->element[0]->len);
                                   l.epoch = std::strtoull(r->element[1]->str, nullptr, 10);
                                   long long idx = std::strtoll(r->element[2]->str, nullptr, 10);
                                   l.index = idx < 0 ? 0 : static_cast<uint64_t>(idx);
                                   l.dead_engine.assign(r->element[3]->str, r->element[3]->len);
                                   l.dead_session.assign(r->element[4]->str, r->element[4]->len);
                                   l.renewed.assign(r->element[5]->str, r->element[5]->len);
                                   l.age = std::strtoll(r->element[6]->str, nullptr, 10);
                                   l.dead_live.assign(r->element[7]->str, r->element[7]->len);
                               }
                               result(l);
                           });
}

void Cluster::note_session(const std::string& id, uint64_t epoch, const std::string& engine, const std::string& command_url,
                           const std::string& live) {
    if (!connected()) return;
    mirror_.router().command({"EVAL", kNote, "1", key(id, "owner"), name_, std::to_string(epoch), engine, command_url, live},
                           [](redisReply*) {});
}

void Cluster::give_up(const std::string& id, uint64_t epoch) {
    if (!connected()) return;
    mirror_.router().command({"EVAL", kRelease, "1", key(id, "owner"), name_, std::to_string(epoch)}, [](redisReply*) {});
}

void Cluster::watching(const std::string& id, bool yes) {
    if (!connected()) return;
    if (yes)
        mirror_.router().command({"ZADD", key(id, "watchers"), std::to_string(unix_ms() + 3 * cfg_.lease), name_},
                               [](redisReply*) {});
    else
        mirror_.router().command({"ZREM", key(id, "watchers"), name_}, [](redisReply*) {});
}

void Cluster::watchers(const std::string& id, Count& p, std::function<void(long)> done) {
    auto result = p.arm(std::move(done));
    if (!connected()) return r_.post([result] { result(-1); });
    mirror_.router().command({"EVAL", kWatchers, "1", key(id, "watchers"), std::to_string(unix_ms())},
                           [result](redisReply* r) { result(r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1); });
}

// Each followed stream's own channel: an instance hears nothing of the
// streams it does not follow.
void Cluster::follow(const std::string& id, std::function<void(uint64_t)> on_chunk) {
    following_[id] = std::move(on_chunk);
    mirror_.router().subscribe(key(id, "chunks"));
}

void Cluster::own(const std::string& id, std::function<void()> on_reconnect) { owning_[id] = std::move(on_reconnect); }

void Cluster::unfollow(const std::string& id) {
    if (following_.erase(id)) mirror_.router().unsubscribe(key(id, "chunks"));
}

// "<prefix>:stream:{<id>}:chunks" says "<index>".
void Cluster::on_message(const std::string& channel, const std::string& message) {
    size_t a = channel.find('{'), b = channel.find('}');
    if (a == std::string::npos || b == std::string::npos || b < a) return;
    auto it = following_.find(channel.substr(a + 1, b - a - 1));
    if (it != following_.end()) it->second(std::strtoull(message.c_str(), nullptr, 10));
}

namespace {
// The registry: one hash tag, so its keys share a slot on a Redis Cluster.
// KEYS: <prefix>:{registry}:alive (instance -> until when, by Redis's clock),
// <prefix>:{registry}:slots ("engine|instance" -> streams).

// ARGV: this instance, how long it lives without another beat (ms), then
// engine, streams pairs (its own counts, the truth). Answers the instances
// alive and every count.
const char* kBeat =
    "local t = redis.call('time') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) "
    "redis.call('zremrangebyscore', KEYS[1], '-inf', now) "
    "for i = 3, #ARGV, 2 do redis.call('hset', KEYS[2], ARGV[i] .. '|' .. ARGV[1], ARGV[i + 1]) end "
    "return {redis.call('zrange', KEYS[1], 0, -1), redis.call('hgetall', KEYS[2])}";

// ARGV: engine, this instance, its max_streams. A slot for one more stream on
// the engine, taken only when the live instances' streams there leave one.
const char* kReserve =
    "local t = redis.call('time') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('zremrangebyscore', KEYS[1], '-inf', now) "
    "local n = 0 "
    "for _, i in ipairs(redis.call('zrange', KEYS[1], 0, -1)) do "
    "  n = n + tonumber(redis.call('hget', KEYS[2], ARGV[1] .. '|' .. i) or '0') "
    "end "
    "if n >= tonumber(ARGV[3]) then return 0 end "
    "redis.call('hincrby', KEYS[2], ARGV[1] .. '|' .. ARGV[2], 1) "
    "return 1";
} // namespace

std::string Cluster::registry(const std::string& what) const {
    return mirror_.config().prefix + ":{registry}:" + what;
}

// Each instance says every second that it lives and how many streams it has
// on each engine; what the live others have counts towards each engine's
// max_streams (EnginePool::pick), and a new owner reserves its slot (reserve).
void Cluster::heartbeat() {
    if (!connected()) return;
    std::vector<std::string> args{"EVAL", kBeat, "2", registry("alive"), registry("slots"), name_,
                                  std::to_string(3 * kHeartbeat)};
    for (auto& e : pool_.engines()) args.push_back(e->cfg.name), args.push_back(std::to_string(e->streams - e->asking));
    mirror_.router().command(std::move(args), [this](redisReply* r) {
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) return;
        redisReply *alive = r->element[0], *slots = r->element[1];
        if (alive->type != REDIS_REPLY_ARRAY || slots->type != REDIS_REPLY_ARRAY) return;
        alive_.clear();
        for (size_t i = 0; i < alive->elements; i++) alive_.emplace_back(alive->element[i]->str, alive->element[i]->len);
        std::map<std::string, int> elsewhere;
        for (size_t i = 0; i + 1 < slots->elements; i += 2) {
            std::string field(slots->element[i]->str, slots->element[i]->len);
            size_t bar = field.rfind('|');
            if (bar == std::string::npos) continue;
            std::string who = field.substr(bar + 1);
            if (who == name_ || std::find(alive_.begin(), alive_.end(), who) == alive_.end()) continue;
            elsewhere[field.substr(0, bar)] += std::atoi(slots->element[i + 1]->str);
        }
        for (auto& e : pool_.engines()) e->elsewhere = elsewhere.count(e->cfg.name) ? elsewhere[e->cfg.name] : 0;
    });
}

void Cluster::reserve(const std::string& engine, int max_streams, Reserve& p, std::function<void(int)> done) {
    auto result = p.arm(std::move(done));
    if (!connected()) return r_.post([result] { result(-1); });
    mirror_.router().command({"EVAL", kReserve, "2", registry("alive"), registry("slots"), engine, name_,
                            std::to_string(max_streams)},
                           [result](redisReply* r) { result(r && r->type == REDIS_REPLY_INTEGER ? static_cast<int>(r->integer) : -1); });
}

// A slot given back at once (zapping: the next reserve must see it), before
// the next heartbeat writes the truth anyway.
void Cluster::free_slot(const std::string& engine) {
    if (!connected()) return;
    mirror_.router().command({"HINCRBY", registry("slots"), engine + "|" + name_, "-1"}, [](redisReply*) {});
}

} // namespace acemux
