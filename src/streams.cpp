#include "acemux/streams.hpp"

#include <algorithm>
#include <cstdio>
#include <new>
#include <strings.h>
#include <time.h>

#include "acemux/json.hpp"
#include "acemux/net.hpp"

namespace acemux {

Streams::Streams(Reactor& r, const StreamConfig& c, const HlsConfig& h, const AccessConfig& a, EnginePool& pool,
                 RedisMirror& redis, Cluster* cluster)
    : r_(r), cfg_(c), hls_(h), access_(a), pool_(pool), redis_(redis), cluster_(cluster), detached_(r),
      zero_copy_(r.log()), zero_copy_timer_(r, [this] { probe_zero_copy(); }) {
    zero_copy_.set_mode(c.zero_copy);
}

// ZeroCopy's measure: the process's CPU time, the bytes every ring has sent,
// whether lending would change anything now (a stream with zero_copy_from
// readers and a ring that can lend), and whether every ring sends the way
// ZeroCopy says at its steady cost (a stream's ring follows at its next batch).
void Streams::probe_zero_copy() {
    ZeroCopy::Reading m;
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    m.cpu_ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
    m.bytes = totals_.ring_sent;
    size_t from = static_cast<size_t>(cfg_.zero_copy_from);
    for (auto& [k, s] : streams_) {
        const Ring& ring = s->ring();
        m.bytes += ring.sent();
        bool eligible = from && ring.file() >= 0 && s->readers() >= from;
        m.eligible |= eligible;
        // A ring that is not receiving sends nothing either way: its state
        // does not hold the probe (a stream stalled or failing over).
        if (s->byte_rate() <= 0) continue;
        if (!ring.lending_settled() || (eligible && ring.lends() != zero_copy_.lends())) m.settled = false;
        if (eligible)
            m.round = std::max(m.round, static_cast<Millis>(static_cast<double>(ring.chunks() * ring.chunk_size()) * 1000.0 /
                                                            s->byte_rate()));
    }
    Millis next = zero_copy_.step(r_.now(), m);
    // An idle daemon (no stream, or a fixed mode) is not woken for it; a new
    // stream or a reload arms it again.
    if (zero_copy_.probing() || (!streams_.empty() && zero_copy_.mode() == ZeroCopy::Mode::automatic))
        zero_copy_timer_.start(next);
}

Streams::~Streams() = default;

size_t Streams::player_count() const { return watcher_count(); }

// content_id and id name the same thing; an infohash is another namespace.
static std::string stream_key(const std::string& id_key, const std::string& id) {
    return (id_key == "infohash" ? "infohash:" : "id:") + id;
}

// A HEAD on a stream or a segment: what a GET would start with.
static HttpResponse ts_head() {
    HttpResponse r;
    r.content_type = "video/mp2t";
    r.close_delimited = true;
    return r;
}

// The engine's own names, in the order the engine prefers them; the engine
// is asked with the name the player used. content_id and id name the same
// thing; an infohash is another namespace. False: `bad` says why (400).
bool Streams::read_id(const HttpRequest& req, Wanted& w, HttpResponse& bad) {
    for (const char* name : {"content_id", "id", "infohash"})
        if (const std::string* v = req.param(name); v && w.id_key.empty()) w.id_key = name, w.id = *v;
    for (auto& [k, v] : req.query)
        if (k == w.id_key && v != w.id) return bad = HttpResponse::text(400, "give one " + w.id_key + ", not several"), false;
    if (w.id_key.empty())
        return bad = HttpResponse::text(400, "missing content id: use " + req.path + "?content_id=<40 hex characters>"), false;
    w.id = pasted_id(w.id);
    if (!is_content_id(w.id)) return bad = HttpResponse::text(400, w.id_key + " must be 40 hexadecimal characters"), false;
    w.key = stream_key(w.id_key, w.id);
    return true;
}

const ChannelConfig* Streams::channel(const std::string& key, std::string id) const {
    if (!channels_ || !is_content_id(id)) return nullptr; // lower case, as channel ids are
    return channels_->find(key == "infohash" ? "infohash" : "id", id);
}

// Watchers: TS players and HLS viewers alike.
size_t Streams::watcher_count(const std::string* host) const {
    size_t n = 0;
    for (auto& [k, s] : streams_) {
        if (!host) { // all of them: the sizes say it
            n += s->player_count() + s->hls().viewer_count();
            continue;
        }
        for (auto& p : s->players()) n += p->peer().host() == *host;
        for (auto& [vk, v] : s->hls().viewers()) n += v.peer.host() == *host;
    }
    return n;
}

// A new watcher within max_clients and max_clients_per_ip; false: `no` says why.
bool Streams::admit(const HttpRequest& req, const std::string& id, HttpResponse& no) {
    if (access_.max_clients && watcher_count() >= static_cast<size_t>(access_.max_clients)) {
        r_.log().warn("refused %s for %s: max_clients (%d) reached", req.peer.str().c_str(), id.c_str(), access_.max_clients);
        return no = HttpResponse::unavailable("client limit reached (" + std::to_string(access_.max_clients) + ")", 30), false;
    }
    std::string host = req.peer.host();
    if (access_.max_clients_per_ip && watcher_count(&host) >= static_cast<size_t>(access_.max_clients_per_ip)) {
        r_.log().warn("refused %s for %s: max_clients_per_ip (%d) reached", req.peer.str().c_str(), id.c_str(),
                      access_.max_clients_per_ip);
        return no = HttpResponse::text(429, "too many streams from " + host + " (limit " +
                                               std::to_string(access_.max_clients_per_ip) + ")"),
               false;
    }
    return true;
}

// The stream of `w`, started when there is none; nullptr: `no` says why.
Stream* Streams::find_or_start(const Wanted& w, HttpResponse& no) {
    if (Stream* s = find(w.key)) return s;
    EngineLease e = pool_.pick();
    // Streams in their grace period hold engine slots nobody watches: the
    // one idle longest gives its slot up (zapping through channels must not
    // run the engines out of slots).
    while (!e && close_idle_stream()) e = pool_.pick();
    // In a cluster the stream may run on another instance already: this one
    // would only follow it, and needs no engine slot. If it turns out to own
    // the stream, it is refused then (Stream::become_owner).
    if (!e && cluster_ && cluster_->enabled() && cluster_->connected()) e = pool_.pick_uncounted();
    if (!e) {
        if (refused_.ready(r_.now()))
            r_.log().warn("stream %s: refused, no engine can take it (%llu streams refused since the last such line)",
                          w.id.c_str(), static_cast<unsigned long long>(refused_.count()));
        return no = HttpResponse::unavailable("no engine can take a new stream now", 10), nullptr;
    }
    // A ring is megabytes: when memory runs out, this stream is refused and
    // every other one goes on.
    try {
        Stream::Env env{r_, cfg_, hls_, pool_, redis_, cluster_, *this};
        const ChannelConfig* ch = channel(w.id_key, w.id);
        std::vector<std::string> backups;
        if (ch)
            for (auto& id : ch->ids)
                if (id != w.id) backups.push_back(id);
        auto s = std::make_unique<Stream>(env, w.key, w.id_key, w.id, ch ? ch->name : "", std::move(e), std::move(backups));
        Stream* raw = s.get();
        streams_[w.key] = std::move(s);
        totals_.streams++;
        if (!zero_copy_timer_.armed()) zero_copy_timer_.start(ZeroCopy::kIdle);
        return raw;
    } catch (const std::bad_alloc&) {
        streams_.erase(w.key);
        r_.log().error("stream %s: refused, out of memory for its buffer", w.id.c_str());
        return no = HttpResponse::unavailable("out of memory for a new stream", 30), nullptr;
    }
}

static std::string user_agent(const HttpRequest& req) {
    const std::string* ua = req.header("user-agent");
    return ua ? printable(*ua, 200) : std::string();
}

HttpResponse Streams::getstream(const HttpRequest& req) {
    Wanted w;
    HttpResponse no;
    if (!read_id(req, w, no)) return no;
    if (const std::string* f = req.param("format"); f && *f == "json") return engine_answer(req, w.id_key, w.id);
    if (!admit(req, w.id, no)) return no;
    if (req.is_head()) return ts_head();
    if (!find_or_start(w, no)) return no;
    HttpResponse r;
    r.stream = [this, key = w.key, ua = user_agent(req)](StreamHandoff&& h) {
        Stream* s = find(key);
        if (!s) return;
        try {
            s->add(std::move(h), ua);
        } catch (const std::bad_alloc&) { // the player's socket closes with the handoff
            r_.log().error("stream %s: a player refused, out of memory", s->id().c_str());
        }
    };
    return r;
}

// The query segment URIs carry: the token, when the manifest came with one
// in its own query (a player that can set no header).
static std::string token_suffix(const HttpRequest& req) {
    const std::string* t = req.param("token");
    return t ? "?token=" + url_encode(*t) : "";
}

// HLS answers may be read by a web player on another origin (kAnyOrigin).
static HttpResponse cors(HttpResponse r) {
    r.headers.push_back(kAnyOrigin);
    return r;
}

HttpResponse Streams::manifest(const HttpRequest& req) { return cors(manifest_answer(req)); }
HttpResponse Streams::segment(const HttpRequest& req) { return cors(segment_answer(req)); }

// /ace/manifest.m3u8: the HLS playlist of the stream, started if need be.
// Before its first segment the request waits for it (manifest_wait).
HttpResponse Streams::manifest_answer(const HttpRequest& req) {
    Wanted w;
    HttpResponse no;
    if (!read_id(req, w, no)) return no;
    std::string ua = user_agent(req);
    Stream* s = find(w.key);
    if (!(s && s->hls().knows(req.peer, ua)) && !admit(req, w.id, no)) return no;
    if (!(s = find_or_start(w, no))) return no;
    s->hls().seen(req.peer, ua, false);
    if (s->hls().has_segments() || req.is_head()) return s->hls().playlist(token_suffix(req));
    HttpResponse r;
    r.later = [this, key = w.key, suffix = token_suffix(req), viewer = HlsOutlet::viewer_key(req.peer, ua)](Reply reply) {
        if (Stream* s = find(key)) s->hls().wait_manifest(std::move(reply), suffix, viewer);
    };
    return r;
}

// /ace/hls/<content_id|id|infohash>/<id>/<seq>.ts: a segment, from ring memory.
HttpResponse Streams::segment_answer(const HttpRequest& req) {
    std::string_view rest = std::string_view(req.path).substr(std::string_view("/ace/hls/").size());
    size_t a = rest.find('/'), b = a == std::string_view::npos ? a : rest.find('/', a + 1);
    if (b == std::string_view::npos) return HttpResponse::text(404, "no such segment: " + req.path);
    Wanted w;
    w.id_key = std::string(rest.substr(0, a));
    w.id = std::string(rest.substr(a + 1, b - a - 1));
    std::string_view name = rest.substr(b + 1);
    if ((w.id_key != "content_id" && w.id_key != "id" && w.id_key != "infohash") || !is_content_id(w.id) ||
        name.size() < 4 || name.substr(name.size() - 3) != ".ts")
        return HttpResponse::text(404, "no such segment: " + req.path);
    uint64_t seq = 0;
    if (!parse_uint(name.substr(0, name.size() - 3), UINT64_MAX, seq))
        return HttpResponse::text(404, "no such segment: " + req.path);
    w.key = stream_key(w.id_key, w.id);
    Stream* s = find(w.key);
    if (!s) return HttpResponse::text(404, "no such stream: " + w.id + " (it starts with its manifest)");
    std::string ua = user_agent(req);
    s->hls().seen(req.peer, ua, true);
    if (req.is_head()) return ts_head();
    return s->hls().segment(seq, HlsOutlet::viewer_key(req.peer, ua));
}

namespace {
HttpResponse json_reply(const Json& root) {
    HttpResponse r;
    r.content_type = "application/json";
    r.body = json_text(root);
    return r;
}
} // namespace

// What an engine answers to format=json, pointing back at us: a tool that
// speaks the engine's API gets a playback_url that is our stream.
HttpResponse Streams::engine_answer(const HttpRequest& req, const std::string& id_key, const std::string& id) {
    std::string base = base_url(req);
    std::string token = access_.token.empty() ? "" : "?token=" + url_encode(access_.token);
    std::string path = (id_key == "infohash" ? "infohash/" : "content_id/") + id;
    Json root = json_object();
    cJSON* resp = cJSON_AddObjectToObject(root.get(), "response");
    cJSON_AddStringToObject(resp, "playback_url", (base + "/ace/getstream?" + id_key + "=" + id +
                                                   (token.empty() ? "" : "&" + token.substr(1))).c_str());
    cJSON_AddStringToObject(resp, "stat_url", (base + "/ace/stat/" + path + token).c_str());
    cJSON_AddStringToObject(resp, "command_url", (base + "/ace/cmd/" + path + token).c_str());
    cJSON_AddStringToObject(resp, "playback_session_id", path.c_str());
    cJSON_AddStringToObject(resp, "infohash", id.c_str());
    cJSON_AddNumberToObject(resp, "is_live", 1);
    cJSON_AddNumberToObject(resp, "is_encrypted", 0);
    cJSON_AddNullToObject(root.get(), "error");
    return json_reply(root);
}

Stream* Streams::find(const std::string& key) {
    auto it = streams_.find(key);
    return it == streams_.end() ? nullptr : it->second.get();
}

// /ace/stat/<content_id|infohash>/<id>: the engine's status of our stream.
HttpResponse Streams::engine_stat(const HttpRequest& req) {
    std::string rest = req.path.substr(std::string("/ace/stat/").size());
    std::string key = (rest.rfind("infohash/", 0) == 0 ? "infohash:" : "id:") + rest.substr(rest.find('/') + 1);
    Json root = json_object();
    Stream* s = find(key);
    if (!s) {
        cJSON_AddNullToObject(root.get(), "response");
        cJSON_AddStringToObject(root.get(), "error", "no such stream (it starts with its first player)");
        return json_reply(root);
    }
    const EngineStatus& es = s->engine_status();
    cJSON* resp = cJSON_AddObjectToObject(root.get(), "response");
    cJSON_AddStringToObject(resp, "status", es.status.empty() ? (s->bytes_in() ? "dl" : "prebuf") : es.status.c_str());
    cJSON_AddNumberToObject(resp, "peers", static_cast<double>(es.peers));
    cJSON_AddNumberToObject(resp, "speed_down", static_cast<double>(es.speed_down));
    cJSON_AddNumberToObject(resp, "speed_up", static_cast<double>(es.speed_up));
    cJSON_AddNumberToObject(resp, "downloaded", static_cast<double>(es.downloaded));
    cJSON_AddNumberToObject(resp, "uploaded", static_cast<double>(es.uploaded));
    cJSON_AddNumberToObject(resp, "players", static_cast<double>(s->player_count()));
    cJSON_AddNullToObject(root.get(), "error");
    return json_reply(root);
}

// /ace/cmd/...?method=stop: the stream is shared, so a stop means nothing
// more than this caller being done; the stream ends with its last player.
HttpResponse Streams::engine_command(const HttpRequest& req) {
    const std::string* m = req.param("method");
    Json root = json_object();
    if (!m || *m != "stop") {
        cJSON_AddNullToObject(root.get(), "response");
        cJSON_AddStringToObject(root.get(), "error", "unknown method (only stop is known)");
    } else {
        cJSON_AddStringToObject(root.get(), "response", "ok");
        cJSON_AddNullToObject(root.get(), "error");
    }
    return json_reply(root);
}

bool Streams::close_idle_stream() {
    Stream* oldest = nullptr;
    for (auto& [k, s] : streams_)
        if (s->state() == Stream::State::draining && s->engine() && s->engine()->up &&
            (!oldest || s->idle_since() < oldest->idle_since()))
            oldest = s.get();
    if (!oldest) return false;
    r_.log().info("stream %s: idle, gives its engine slot on %s to a new stream", oldest->id().c_str(),
                  oldest->engine()->cfg.name.c_str());
    oldest->close(503, "idle stream gave its engine slot to a new one");
    return true;
}

void Streams::closed(Stream& s, const std::string& why) {
    ended_.push_back({s.id(), s.engine() ? s.engine()->cfg.name : "", why, r_.now()});
    if (ended_.size() > kEndedKept) ended_.pop_front();
    auto it = streams_.find(s.key());
    if (it == streams_.end() || it->second.get() != &s) return;
    // Out of the map at once, so a new request starts a fresh stream;
    // released, since we are inside one of the stream's own callbacks.
    r_.release(std::move(it->second));
    streams_.erase(it);
}

void Streams::reconfigure(const StreamConfig& c, const HlsConfig& h, const AccessConfig& a) {
    cfg_ = c;
    hls_ = h;
    access_ = a;
    zero_copy_.set_mode(c.zero_copy);
    if (!zero_copy_timer_.armed()) zero_copy_timer_.start(ZeroCopy::kIdle);
    std::vector<Stream*> moving;
    for (auto& [k, s] : streams_)
        if (s->engine() && s->engine()->removed) moving.push_back(s.get());
    for (Stream* s : moving) s->move_off_engine();
    for (auto& [k, s] : streams_) s->update_rules();
}

void Streams::close_all() {
    while (!streams_.empty()) streams_.begin()->second->close(503, "server shutting down");
}

} // namespace acemux
