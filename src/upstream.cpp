#include "acemux/upstream.hpp"

#include "acemux/http.hpp"

#include <arpa/inet.h>
#include "acemux/json.hpp"
#include <cstdio>
#include <cstring>
#include <ctime>
#include <sys/random.h>
#include <unistd.h>

namespace acemux {

Upstream::Upstream(Reactor& r, Ingest& in, Listener& l, FetchSet& detached)
    : r_(r), in_(in), l_(l), detached_(detached), stat_(r), play_(r, *this), stat_timer_(r, [this] { poll_stat(); }) {}

void Upstream::stop_session(FetchSet& via, const EngineConfig& e, const std::string& command_url, Millis timeout) {
    Url u;
    Reactor& r = via.reactor();
    if (!engine_url(e, command_url, u) || !engine_own(r, e, u)) {
        r.log().warn("engine %s: cannot stop its session, command_url \"%s\" is not the engine's", e.name.c_str(),
                     printable(command_url, 200).c_str());
        return;
    }
    u.target += u.target.find('?') == std::string::npos ? "?method=stop" : "&method=stop";
    if (r.log().enabled(LogLevel::debug)) r.log().debug("engine %s: GET %s", e.name.c_str(), u.str().c_str());
    via.get(u, timeout, [&r, name = e.name](int status, const std::string&, const std::string& err) {
        if (!err.empty() || status / 100 != 2)
            r.log().warn("engine %s: stop command failed: %s", name.c_str(),
                         err.empty() ? ("HTTP " + std::to_string(status)).c_str() : err.c_str());
    });
}

std::string engine_pid() {
    uint8_t b[16];
    if (::getrandom(b, sizeof b, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof b)) {
        // A router early after boot may have no entropy yet: the clocks,
        // the process and this frame's address still differ per call.
        timespec t1, t2;
        clock_gettime(CLOCK_REALTIME, &t1);
        clock_gettime(CLOCK_MONOTONIC, &t2);
        uint64_t x = static_cast<uint64_t>(t1.tv_sec) * 1000000007u ^ static_cast<uint64_t>(t1.tv_nsec) ^
                     static_cast<uint64_t>(t2.tv_nsec) << 21 ^ static_cast<uint64_t>(::getpid()) << 40 ^
                     reinterpret_cast<uintptr_t>(&b);
        for (auto& byte : b) { // splitmix64
            x += 0x9E3779B97F4A7C15ull;
            uint64_t z = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
            byte = static_cast<uint8_t>((z ^ (z >> 27)) * 0x94D049BB133111EBull >> 56);
        }
    }
    b[6] = static_cast<uint8_t>((b[6] & 0x0F) | 0x40); // version 4
    b[8] = static_cast<uint8_t>((b[8] & 0x3F) | 0x80); // RFC 4122 variant
    char out[37];
    std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                  b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return out;
}

void Upstream::start(const EngineConfig& e, const Attempt& a) {
    stop();
    engine_ = e;
    attempt_ = a;
    status_ = EngineStatus{};
    peerless_since_ = 0;
    packets_ = 0;
    garbage_ = json_answer_ = false;
    json_body_.clear();
    in_.end(); // whatever the last connection left half-sent is not ours to finish
    dropped_seen_ = in_.aligner().dropped(); // what an earlier engine sent is not this one's to report
    // A pid of its own per attempt: the engine serves one reader per pid and
    // would cut off another stream (or our own earlier attempt) sharing it.
    std::string query = a.id_key + "=" + a.id + "&pid=" + engine_pid();
    if (e.direct) return play(Url{e.host, e.port, "/ace/getstream?" + query});
    asked_ = std::make_shared<char>();
    asking_ = true;
    detached_.get(Url{e.host, e.port, "/ace/getstream?format=json&" + query}, a.connect,
                  [this, mine = std::weak_ptr<char>(asked_), e, t = a.connect, &via = detached_](
                      int status, const std::string& body, const std::string& err) {
                      if (!mine.expired()) return on_api(status, body, err);
                      // Abandoned while the engine thought: whatever it opened is stopped.
                      EngineAnswer ans = err.empty() ? parse_engine_answer(body) : EngineAnswer{};
                      if (!ans.command_url.empty()) stop_session(via, e, ans.command_url, t);
                  },
                  a.answer);
}

void Upstream::stop() {
    asked_.reset();
    asking_ = false;
    play_.close();
    stat_.cancel();
    stat_timer_.stop();
    // The engine would go on downloading for nobody.
    if (!command_url_.empty()) stop_session(detached_, engine_, std::exchange(command_url_, std::string()), attempt_.connect);
}

void Upstream::fail(const std::string& why, Failure kind) {
    stop();
    l_.on_upstream_failed(why, kind);
}

std::pair<uint8_t*, size_t> Upstream::recv_area() { return in_.area(); }
size_t Upstream::batch_end() { return in_.batch_end(); }

bool Upstream::on_body(const uint8_t* at, size_t n) {
    if (json_answer_) {
        json_body_.append(reinterpret_cast<const char*>(at), std::min<size_t>(n, 65536 - json_body_.size()));
        return json_body_.size() < 65536;
    }
    // A quarter of a megabyte and not one packet: whatever this is, it is not a stream (any more).
    if (in_.garbage() >= kGarbageLimit) return garbage_ = true, false;
    in_.add(at, n); // chunked framing removed in place
    return true;
}

bool engine_url(const EngineConfig& e, const std::string& url, Url& out) {
    if (!parse_url(url, out)) {
        // Not absolute: a path on the engine itself.
        if (url.empty() || url[0] != '/') return false;
        out = Url{e.host, e.port, url};
        return true;
    }
    auto loopback = [](const std::string& h) {
        in6_addr a6;
        in_addr a4;
        if (h == "localhost") return true;
        if (inet_pton(AF_INET, h.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
        return inet_pton(AF_INET6, h.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    };
    if (loopback(out.host) && !loopback(e.host)) out.host = e.host;
    return true;
}

void Upstream::on_api(int status, const std::string& body, const std::string& err) {
    asking_ = false;
    if (!err.empty()) return fail(err, Failure::broken);
    if (status / 100 != 2) return fail("engine answered HTTP " + std::to_string(status), Failure::broken);
    EngineAnswer a = parse_engine_answer(body);
    if (!a.error.empty()) return fail(a.error, a.rejected ? Failure::refused : Failure::broken);
    command_url_ = a.command_url;
    Url playback;
    if (!engine_url(engine_, a.playback_url, playback))
        return fail("bad playback_url \"" + printable(a.playback_url, 200) + "\"", Failure::broken);
    if (!engine_own(r_, engine_, playback))
        return fail("playback_url on another host (" + printable(playback.host, 100) +
                        "), not followed ([engines] allow_other_hosts allows it)",
                    Failure::broken);
    if (engine_url(engine_, a.stat_url, stat_url_) && engine_own(r_, engine_, stat_url_)) poll_stat();
    play(playback);
    l_.on_upstream_accepted();
}

void Upstream::play(const Url& url) {
    // Whatever the ring holds came from elsewhere (an earlier attempt, a
    // buffer resumed from Redis, another instance): this stream is spliced on.
    in_.begin(attempt_.key_wait);
    if (r_.log().enabled(LogLevel::debug)) r_.log().debug("engine %s, stream %s: GET %s", engine_.name.c_str(), attempt_.label.c_str(), url.str().c_str());
    play_.get(url, attempt_.connect, attempt_.answer);
}

bool Upstream::on_redirect(int status, const Url& to) {
    if (!engine_own(r_, engine_, to)) {
        r_.log().warn("engine %s, stream %s: not following its redirect (HTTP %d) to %s, another host "
                      "([engines] allow_other_hosts allows it)", engine_.name.c_str(), attempt_.label.c_str(), status,
                      printable(to.str(), 300).c_str());
        return false;
    }
    r_.log().info("engine %s, stream %s: playback redirected (HTTP %d) to %s", engine_.name.c_str(), attempt_.label.c_str(), status,
                  printable(to.str(), 300).c_str());
    return true;
}

bool engine_own(Reactor& r, const EngineConfig& e, const Url& u) {
    return e.allow_other_hosts || r.resolver().known_as(e.host, u.host);
}

// The engine's view of the download; never needed for streaming, so a
// failed poll only leaves the last answer standing.
void Upstream::poll_stat() {
    stat_.get(stat_url_, attempt_.connect, [this](int status, const std::string& body, const std::string& err) {
        EngineStatus s;
        bool ok = err.empty() && status / 100 == 2 && parse_engine_status(body, s);
        // The first answer is empty ({}); the next one soon says something.
        // Once the stream flows the status matters less: a poll costs the
        // loop a connection, so it comes less often.
        Millis next = ok && s.status.empty() ? kStatEvery / 4 : packets_ ? kStatEvery * 5 / 2 : kStatEvery;
        stat_timer_.start(next);
        if (!ok) {
            if (r_.log().enabled(LogLevel::debug))
                r_.log().debug("engine %s, stream %s: stat_url: %s", engine_.name.c_str(), attempt_.label.c_str(),
                               err.empty() ? ("HTTP " + std::to_string(status)).c_str() : err.c_str());
            return;
        }
        s.at = r_.now();
        if (s.status != status_.status && !s.status.empty())
            r_.log().info("engine %s, stream %s: status %s, %ld peers, %lld bytes downloaded", engine_.name.c_str(), attempt_.label.c_str(),
                          s.status.c_str(), s.peers, s.downloaded);
        bool peerless = (s.status == "prebuf" || s.status == "idle" || s.status == "starting") && s.peers <= 0;
        if (!peerless) peerless_since_ = 0;
        else if (!peerless_since_) peerless_since_ = r_.now();
        status_ = s;
    });
}

EngineAnswer parse_engine_answer(const std::string& body) {
    EngineAnswer a;
    Json j = json_parse(body);
    if (!j) return a.error = "engine answer is not JSON", a;
    cJSON* error = cJSON_GetObjectItemCaseSensitive(j.get(), "error");
    cJSON* resp = cJSON_GetObjectItemCaseSensitive(j.get(), "response");
    auto field = [resp](const char* name) -> std::string {
        cJSON* v = cJSON_IsObject(resp) ? cJSON_GetObjectItemCaseSensitive(resp, name) : nullptr;
        return cJSON_IsString(v) ? v->valuestring : "";
    };
    if (cJSON_IsString(error) && error->valuestring[0]) {
        // Shown in logs, /stats and the player's 502: one line of valid
        // UTF-8, whatever bytes the engine sent (printable cuts between characters).
        a.error = printable(error->valuestring, 300);
        a.rejected = true;
    } else if (a.playback_url = field("playback_url"); a.playback_url.empty()) {
        a.error = "engine answer has no response.playback_url";
    } else {
        a.stat_url = field("stat_url");
        a.command_url = field("command_url");
    }
    return a;
}

bool parse_engine_status(const std::string& body, EngineStatus& out) {
    Json j = json_parse(body);
    if (!j) return false;
    cJSON* resp = cJSON_GetObjectItemCaseSensitive(j.get(), "response");
    bool ok = cJSON_IsObject(resp);
    if (ok) {
        // An engine's numbers are only its word: a negative, NaN or one past
        // what the field holds (2.2e54 bytes, found by the fuzzer) is not a
        // figure, and converting it would be undefined.
        auto num = [resp](const char* name, double most) -> double {
            cJSON* v = cJSON_GetObjectItemCaseSensitive(resp, name);
            double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
            return d > most ? most : d >= 0 ? d : -1;
        };
        constexpr double kLong = 2147483647.0, kBytes = 1e18; // long is 32 bits on a router
        cJSON* st = cJSON_GetObjectItemCaseSensitive(resp, "status");
        out.status = cJSON_IsString(st) ? printable(st->valuestring, 32) : "";
        out.peers = static_cast<long>(num("peers", kLong));
        out.speed_down = static_cast<long>(num("speed_down", kLong));
        out.speed_up = static_cast<long>(num("speed_up", kLong));
        out.downloaded = static_cast<long long>(num("downloaded", kBytes));
        out.uploaded = static_cast<long long>(num("uploaded", kBytes));
    }
    return ok;
}

bool Upstream::on_status(int status, const std::string& content_type) {
    if (status / 100 != 2) return false; // on_end reports it
    // An engine reports errors as JSON on HTTP 200, in direct mode too.
    json_answer_ = content_type.rfind("application/json", 0) == 0;
    if (!json_answer_ && attempt_.batch) play_.batch_body(attempt_.batch, attempt_.batch_wait);
    if (engine_.direct && !json_answer_) l_.on_upstream_accepted();
    return true;
}

void Upstream::on_read() {
    if (json_answer_) return;
    const ts::Aligner& a = in_.aligner();
    bool splicing = in_.splicing();
    size_t n = in_.commit();
    packets_ += n / ts::kPacket;
    if (splicing && !in_.splicing())
        r_.log().info("engine %s, stream %s: new stream spliced in (%llu packets before its PAT dropped)", engine_.name.c_str(), attempt_.label.c_str(),
                      static_cast<unsigned long long>(in_.splice_dropped()));
    // One line per second at most: an engine that interleaves garbage would flood the log.
    if (a.dropped() != dropped_seen_ && a.synced() && r_.now() - dropped_logged_at_ >= 1000) {
        r_.log().warn("engine %s, stream %s: dropped %llu bytes that were not TS packets (%llu in all, %llu resyncs)",
                      engine_.name.c_str(), attempt_.label.c_str(), static_cast<unsigned long long>(a.dropped() - dropped_seen_),
                      static_cast<unsigned long long>(a.dropped()), static_cast<unsigned long long>(a.resyncs()));
        dropped_seen_ = a.dropped();
        dropped_logged_at_ = r_.now();
    }
    if (n) l_.on_upstream_data(n);
}

void Upstream::on_end(const std::string& error) {
    in_.end();
    const ts::Aligner& a = in_.aligner();
    if (json_answer_) {
        EngineAnswer a = parse_engine_answer(json_body_);
        return fail(a.error.empty() ? "engine answered JSON instead of a stream" : a.error,
                    a.rejected ? Failure::refused : Failure::broken);
    }
    uint64_t junk = a.dropped() - dropped_seen_;
    if (garbage_ || (junk && !a.synced())) {
        dropped_seen_ = a.dropped();
        return fail("engine sent " + std::to_string(junk) + " bytes that were not TS packets (" +
                        (garbage_ ? (packets_ ? "and no packet since" : "and no packet at all")
                                  : error.empty() ? "then ended the stream" : error) + ")",
                    Failure::broken);
    }
    if (!error.empty()) {
        if (play_.status() / 100 == 1 || play_.status() / 100 >= 4) // a 3xx not followed explains itself
            return fail("playback answered HTTP " + std::to_string(play_.status()), Failure::broken);
        return fail(error, play_.answered() ? Failure::ended : Failure::broken);
    }
    fail("engine ended the stream", Failure::ended);
}

} // namespace acemux
