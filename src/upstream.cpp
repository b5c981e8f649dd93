#include "acemux/upstream.hpp"

#include <cjson/cJSON.h>
#include <cstring>

namespace acemux {

Upstream::Upstream(Reactor& r, Ring& ring, Listener& l) : r_(r), ring_(ring), l_(l), api_(r), play_(r, *this) {}

void Upstream::start(const EngineConfig& e, const std::string& id_key, const std::string& id, const std::string& pid,
                     Millis timeout) {
    stop();
    engine_ = e;
    timeout_ = timeout;
    command_url_.clear();
    aligner_.reset(); // whatever the last connection left half-sent is not ours to finish
    ring_.discard_pending();
    staged_.clear();
    splice_aligner_ = ts::Aligner();
    if (e.direct) {
        play(e.addr, "/ace/getstream?" + id_key + "=" + id + "&pid=" + pid);
        return;
    }
    api_.get(e.addr, "/ace/getstream?format=json&" + id_key + "=" + id + "&pid=" + pid, timeout,
             [this](int status, const std::string& body, const std::string& err) { on_api(status, body, err); });
}

std::pair<uint8_t*, size_t> Upstream::recv_area() {
    staging_ = splice_.active();
    if (!staging_) return {ring_.recv_ptr(), ring_.recv_space()};
    constexpr size_t kStage = 64 * 1024;
    if (!stage_buf_) stage_buf_ = std::make_unique_for_overwrite<uint8_t[]>(kStage);
    return {stage_buf_.get(), kStage};
}

bool Upstream::on_body(const uint8_t* at, size_t n) {
    if (staging_) staged_.append(reinterpret_cast<const char*>(at), n);
    else ring_.append(at, n);
    return true;
}

void Upstream::to_ring(const uint8_t* p, size_t n) {
    size_t made = 0;
    while (n) {
        size_t k = std::min(n, ring_.recv_space());
        std::memcpy(ring_.recv_ptr(), p, k);
        ring_.append(ring_.recv_ptr(), k);
        made += ring_.commit(aligner_);
        p += k;
        n -= k;
    }
    if (made) l_.on_upstream_data(made);
}

void Upstream::stop() {
    api_.cancel();
    play_.close();
}

void Upstream::on_api(int status, const std::string& body, const std::string& err) {
    if (!err.empty()) return l_.on_upstream_failed(err, false);
    if (status / 100 != 2) return l_.on_upstream_failed("engine answered HTTP " + std::to_string(status), false);
    EngineAnswer a = parse_engine_answer(body);
    if (!a.error.empty()) return l_.on_upstream_failed(a.error, a.rejected);
    command_url_ = a.command_url;
    const std::string& playback = a.playback_url;

    SockAddr to;
    std::string target;
    if (!resolve_http_url(playback, engine_.addr, to, target))
        return l_.on_upstream_failed("bad playback_url \"" + playback.substr(0, 200) + "\"", false);
    l_.on_upstream_accepted();
    play(to, target);
}

EngineAnswer parse_engine_answer(const std::string& body) {
    EngineAnswer a;
    cJSON* j = cJSON_Parse(body.c_str());
    if (!j) return a.error = "engine answer is not JSON", a;
    cJSON* error = cJSON_GetObjectItemCaseSensitive(j, "error");
    cJSON* resp = cJSON_GetObjectItemCaseSensitive(j, "response");
    cJSON* url = cJSON_IsObject(resp) ? cJSON_GetObjectItemCaseSensitive(resp, "playback_url") : nullptr;
    cJSON* cmd = cJSON_IsObject(resp) ? cJSON_GetObjectItemCaseSensitive(resp, "command_url") : nullptr;
    if (cJSON_IsString(error) && error->valuestring[0]) {
        a.error = std::string(error->valuestring).substr(0, 300);
        for (auto& ch : a.error) // one line in logs and in the player's 502
            if (ch == '\n' || ch == '\r') ch = ' ';
        a.rejected = true;
    } else if (!cJSON_IsString(url)) {
        a.error = "engine answer has no response.playback_url";
    } else {
        a.playback_url = url->valuestring;
        if (cJSON_IsString(cmd)) a.command_url = cmd->valuestring;
    }
    cJSON_Delete(j);
    return a;
}

void Upstream::play(const SockAddr& to, const std::string& target) {
    r_.log().debug("engine %s: GET %s", engine_.name.c_str(), target.c_str());
    play_.get(to, target, timeout_);
}

bool Upstream::on_status(int status) {
    if (status / 100 == 2) {
        if (engine_.direct) l_.on_upstream_accepted();
        return true;
    }
    return false; // on_end reports it
}

void Upstream::on_read() {
    if (staging_) {
        auto r = splice_aligner_.scan(reinterpret_cast<uint8_t*>(staged_.data()), staged_.size());
        spliced_.clear();
        splice_.feed(reinterpret_cast<const uint8_t*>(staged_.data()), r.whole, spliced_);
        staged_.erase(0, r.whole);
        if (!splice_.active()) { // done: what is left goes the normal way
            spliced_ += staged_;
            staged_.clear();
            splice_aligner_ = ts::Aligner();
            r_.log().info("engine %s: new stream spliced in (%llu packets before its PAT dropped)",
                          engine_.name.c_str(), static_cast<unsigned long long>(splice_.dropped()));
        }
        to_ring(reinterpret_cast<const uint8_t*>(spliced_.data()), spliced_.size());
        return;
    }
    size_t n = ring_.commit(aligner_);
    // One line per second at most: an engine that interleaves garbage would flood the log.
    if (aligner_.dropped() != dropped_seen_ && aligner_.synced() && r_.now() - dropped_logged_at_ >= 1000) {
        r_.log().warn("engine %s: dropped %llu bytes that were not TS packets (%llu in all, %llu resyncs)",
                      engine_.name.c_str(), static_cast<unsigned long long>(aligner_.dropped() - dropped_seen_),
                      static_cast<unsigned long long>(aligner_.dropped()),
                      static_cast<unsigned long long>(aligner_.resyncs()));
        dropped_seen_ = aligner_.dropped();
        dropped_logged_at_ = r_.now();
    }
    if (n) l_.on_upstream_data(n);
}

void Upstream::on_end(const std::string& error) {
    ring_.discard_pending();
    if (uint64_t junk = aligner_.dropped() - dropped_seen_; junk && !aligner_.synced()) {
        dropped_seen_ = aligner_.dropped();
        return l_.on_upstream_failed("engine sent " + std::to_string(junk) + " bytes that were not TS packets (" +
                                         (error.empty() ? "then ended the stream" : error) + ")",
                                     false);
    }
    if (!error.empty()) {
        if (play_.status() && play_.status() / 100 != 2)
            return l_.on_upstream_failed("playback answered HTTP " + std::to_string(play_.status()), false);
        return l_.on_upstream_failed(error, false);
    }
    l_.on_upstream_failed("engine ended the stream", false);
}

} // namespace acemux
