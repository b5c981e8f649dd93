#include "acemux/streams.hpp"

#include <cjson/cJSON.h>
#include <cstdio>
#include <new>

namespace acemux {

Streams::Streams(Reactor& r, const StreamConfig& c, const AccessConfig& a, EnginePool& pool, RedisMirror& redis)
    : r_(r), cfg_(c), access_(a), pool_(pool), redis_(redis), detached_(r) {}

Streams::~Streams() = default;

size_t Streams::player_count() const {
    size_t n = 0;
    for (auto& [k, s] : streams_) n += s->player_count();
    return n;
}

static bool is_content_id(std::string& s) {
    if (s.size() != 40) return false;
    for (auto& ch : s) {
        if (!std::isxdigit(static_cast<unsigned char>(ch))) return false;
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    return true;
}

HttpResponse Streams::getstream(const HttpRequest& req) {
    // The engine's own names, in the order the engine prefers them; the
    // engine is asked with the name the player used.
    std::string id_key, id;
    for (const char* name : {"content_id", "id", "infohash"})
        if (const std::string* v = req.param(name); v && id_key.empty()) id_key = name, id = *v;
    for (auto& [k, v] : req.query)
        if (k == id_key && v != id) return HttpResponse::text(400, "give one " + id_key + ", not several");
    if (id_key.empty())
        return HttpResponse::text(400, "missing content id: use /ace/getstream?content_id=<40 hex characters>");
    if (!is_content_id(id)) return HttpResponse::text(400, id_key + " must be 40 hexadecimal characters");

    // content_id and id name the same thing; an infohash is another namespace.
    std::string key = (id_key == "infohash" ? "infohash:" : "id:") + id;
    if (const std::string* f = req.param("format"); f && *f == "json") return engine_answer(req, id_key, id);
    if (access_.max_clients && player_count() >= static_cast<size_t>(access_.max_clients)) {
        r_.log().warn("refused %s for %s: max_clients (%d) reached", req.peer.str().c_str(), id.c_str(), access_.max_clients);
        return HttpResponse::unavailable("client limit reached (" + std::to_string(access_.max_clients) + ")", 30);
    }
    if (access_.max_clients_per_ip) {
        size_t mine = 0;
        for (auto& [k, s] : streams_)
            for (auto& p : s->players()) mine += p->peer().host() == req.peer.host();
        if (mine >= static_cast<size_t>(access_.max_clients_per_ip)) {
            r_.log().warn("refused %s for %s: max_clients_per_ip (%d) reached", req.peer.str().c_str(), id.c_str(),
                          access_.max_clients_per_ip);
            return HttpResponse::text(429, "too many streams from " + req.peer.host() + " (limit " +
                                               std::to_string(access_.max_clients_per_ip) + ")");
        }
    }
    if (req.is_head()) {
        HttpResponse r;
        r.content_type = "video/mp2t";
        r.close_delimited = true;
        return r;
    }
    if (!streams_.count(key)) {
        EngineLease e = pool_.pick();
        // Streams in their grace period hold engine slots nobody watches: the
        // one idle longest gives its slot up (zapping through channels must
        // not run the engines out of slots).
        while (!e && close_idle_stream()) e = pool_.pick();
        if (!e) {
            r_.log().warn("stream %s: refused, no engine can take it", id.c_str());
            return HttpResponse::unavailable("no engine can take a new stream now", 10);
        }
        // A ring is megabytes: when memory runs out, this stream is refused
        // and every other one goes on.
        try {
            streams_[key] = std::make_unique<Stream>(*this, key, id_key, id, std::move(e));
        } catch (const std::bad_alloc&) {
            streams_.erase(key);
            r_.log().error("stream %s: refused, out of memory for its buffer", id.c_str());
            return HttpResponse::unavailable("out of memory for a new stream", 30);
        }
        totals.streams++;
    }
    const std::string* ua = req.header("user-agent");
    HttpResponse r;
    r.stream = [this, key, ua = ua ? printable(*ua, 200) : std::string()](StreamHandoff&& h) {
        auto it = streams_.find(key);
        if (it == streams_.end()) return;
        try {
            it->second->add(std::move(h), ua);
        } catch (const std::bad_alloc&) { // the player's socket closes with the handoff
            r_.log().error("stream %s: a player refused, out of memory", it->second->id().c_str());
        }
    };
    return r;
}

namespace {
HttpResponse json_reply(cJSON* root) {
    std::unique_ptr<char, decltype(&cJSON_free)> text(cJSON_PrintUnformatted(root), cJSON_free);
    cJSON_Delete(root);
    HttpResponse r;
    r.content_type = "application/json";
    r.body = std::string(text.get()) + "\n";
    return r;
}
} // namespace

// What an engine answers to format=json, pointing back at us: a tool that
// speaks the engine's API gets a playback_url that is our stream.
HttpResponse Streams::engine_answer(const HttpRequest& req, const std::string& id_key, const std::string& id) {
    const std::string* host = req.header("host");
    std::string base = "http://" + (host && valid_host_header(*host) ? *host : req.local.str());
    std::string token = access_.token.empty() ? "" : "?token=" + url_encode(access_.token);
    std::string path = (id_key == "infohash" ? "infohash/" : "content_id/") + id;
    cJSON* root = cJSON_CreateObject();
    cJSON* resp = cJSON_AddObjectToObject(root, "response");
    cJSON_AddStringToObject(resp, "playback_url", (base + "/ace/getstream?" + id_key + "=" + id +
                                                   (token.empty() ? "" : "&" + token.substr(1))).c_str());
    cJSON_AddStringToObject(resp, "stat_url", (base + "/ace/stat/" + path + token).c_str());
    cJSON_AddStringToObject(resp, "command_url", (base + "/ace/cmd/" + path + token).c_str());
    cJSON_AddStringToObject(resp, "playback_session_id", path.c_str());
    cJSON_AddStringToObject(resp, "infohash", id.c_str());
    cJSON_AddNumberToObject(resp, "is_live", 1);
    cJSON_AddNumberToObject(resp, "is_encrypted", 0);
    cJSON_AddNullToObject(root, "error");
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
    cJSON* root = cJSON_CreateObject();
    Stream* s = find(key);
    if (!s) {
        cJSON_AddNullToObject(root, "response");
        cJSON_AddStringToObject(root, "error", "no such stream (it starts with its first player)");
        return json_reply(root);
    }
    const EngineStatus& es = s->engine_status();
    cJSON* resp = cJSON_AddObjectToObject(root, "response");
    cJSON_AddStringToObject(resp, "status", es.status.empty() ? (s->bytes_in() ? "dl" : "prebuf") : es.status.c_str());
    cJSON_AddNumberToObject(resp, "peers", static_cast<double>(es.peers));
    cJSON_AddNumberToObject(resp, "speed_down", static_cast<double>(es.speed_down));
    cJSON_AddNumberToObject(resp, "speed_up", static_cast<double>(es.speed_up));
    cJSON_AddNumberToObject(resp, "downloaded", static_cast<double>(es.downloaded));
    cJSON_AddNumberToObject(resp, "uploaded", static_cast<double>(es.uploaded));
    cJSON_AddNumberToObject(resp, "players", static_cast<double>(s->player_count()));
    cJSON_AddNullToObject(root, "error");
    return json_reply(root);
}

// /ace/cmd/...?method=stop: the stream is shared, so a stop means nothing
// more than this caller being done; the stream ends with its last player.
HttpResponse Streams::engine_command(const HttpRequest& req) {
    const std::string* m = req.param("method");
    cJSON* root = cJSON_CreateObject();
    if (!m || *m != "stop") {
        cJSON_AddNullToObject(root, "response");
        cJSON_AddStringToObject(root, "error", "unknown method (only stop is known)");
    } else {
        cJSON_AddStringToObject(root, "response", "ok");
        cJSON_AddNullToObject(root, "error");
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

void Streams::closed(const Stream& s, const std::string& why) {
    ended_.push_back({s.id(), s.engine() ? s.engine()->cfg.name : "", why, r_.now()});
    if (ended_.size() > kEndedKept) ended_.pop_front();
}

void Streams::reconfigure(const StreamConfig& c, const AccessConfig& a) {
    cfg_ = c;
    access_ = a;
    std::vector<Stream*> moving;
    for (auto& [k, s] : streams_)
        if (s->engine() && s->engine()->removed) moving.push_back(s.get());
    for (Stream* s : moving) s->move_off_engine();
    for (auto& [k, s] : streams_) s->update_rules();
}

void Streams::remove(Stream& s) {
    auto it = streams_.find(s.key());
    if (it == streams_.end() || it->second.get() != &s) return;
    // Out of the map at once, so a new request starts a fresh stream;
    // released, since we are inside one of the stream's own callbacks.
    r_.release(std::move(it->second));
    streams_.erase(it);
}

void Streams::close_all() {
    while (!streams_.empty()) streams_.begin()->second->close(503, "server shutting down");
}

} // namespace acemux
