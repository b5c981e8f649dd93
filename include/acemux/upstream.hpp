// One stream's connection to an engine: one attempt at a time.
//
// json mode: GET /ace/getstream?format=json&content_id=...&pid=..., read
// response.playback_url / stat_url / command_url (or error), then GET the
// playback URL, following the engine's 302 to its /content/ URL. direct
// mode: GET /ace/getstream?content_id=... streams (after the same redirect).
// Body bytes go into the stream's ring through its Ingest (received in
// place, aligned, spliced on when the ring has data). While an attempt
// lives, the engine's stat_url is polled for its status and peers.
//
// It tells its stream what happened through Listener, always as the last
// thing it does, and has finished its own part first (a failed attempt is
// stopped, the engine told): the stream never needs to call back into it.
#pragma once
#include <memory>
#include <string>

#include "acemux/config.hpp"
#include "acemux/http_client.hpp"
#include "acemux/ingest.hpp"

namespace acemux {

// What an engine said to /ace/getstream?format=json.
struct EngineAnswer {
    std::string playback_url, stat_url, command_url;
    std::string error;     // the engine's refusal, one line; or why the answer is unusable
    bool rejected = false; // the engine refused the content (as opposed to a broken answer)
};
EngineAnswer parse_engine_answer(const std::string& body);

// What the engine's stat_url said last.
struct EngineStatus {
    std::string status; // "" until the engine has said: idle, prebuf, dl, ...
    long peers = -1, speed_down = -1, speed_up = -1; // speeds in KiB/s as the engine gives them
    long long downloaded = -1, uploaded = -1;
    Millis at = 0;      // when it was read (0: never)
};
// false when the body is not a stat answer; an empty first answer gives an empty status.
bool parse_engine_status(const std::string& body, EngineStatus& out);

// A random (version 4) UUID: the player id an engine attempt sends.
std::string engine_pid();

// An address the engine handed out (playback, stat, command), as we can reach
// it: an engine behind Docker or NAT names itself by a loopback address, which
// from here is the engine's own host.
bool engine_url(const EngineConfig& e, const std::string& url, Url& out);
// Whether a URL the engine handed out (or redirected to) leads back to that
// engine: the host it is configured with, or an address that name resolved
// to; any host when the config allows others.
bool engine_own(Reactor& r, const EngineConfig& e, const Url& u);

class Upstream final : private HttpClient::Sink {
public:
    static constexpr Millis kStatEvery = 2000;
    // Not-TS bytes since the last packet (or before the first) that make an
    // engine's answer garbage: a real stream locks within three packets, and
    // one that loses sync mid-stream (garbage, 187-byte packets) finds it
    // again within as many.
    static constexpr uint64_t kGarbageLimit = 256 * 1024;

    // How an attempt failed, which decides where the next one goes.
    enum class Failure {
        ended,   // the connection failed or ended: often a blip, the same engine may be tried again
        broken,  // the engine answered with something unusable (not TS, no answer, bad JSON)
        refused, // the engine refused the content ({"response": null, "error": ...}): its message in `why`
    };
    struct Listener {
        virtual void on_upstream_accepted() = 0;           // the engine agreed to stream
        virtual void on_upstream_data(size_t bytes) = 0;   // whole packets were added to the ring
        // The attempt is over and stopped.
        virtual void on_upstream_failed(const std::string& why, Failure kind) = 0;

    protected:
        ~Listener() = default;
    };

    // `detached` carries requests that must finish even if this upstream
    // goes first: the JSON request (an engine session it opens is stopped
    // when nobody wants it any more) and stop commands.
    Upstream(Reactor& r, Ingest& in, Listener& l, FetchSet& detached);

    // Tells an engine to end a session (command_url?method=stop); fire and forget.
    static void stop_session(FetchSet& via, const EngineConfig& e, const std::string& command_url, Millis timeout);

    // One attempt: id_key is the parameter name the player used (content_id,
    // id or infohash). When the ring already holds data (an earlier attempt,
    // a buffer resumed from Redis), this one's is spliced on as a new stream,
    // starting at a keyframe when one comes within `key_wait` packets.
    struct Attempt {
        std::string id_key, id, label; // label: how the log names the stream
        Millis connect, answer; // timeouts
        uint64_t key_wait;
        size_t batch = 0;       // the stream is read in batches of this many bytes ...
        Millis batch_wait = 0;  // ... or what came in this long
    };
    void start(const EngineConfig& e, const Attempt& a);
    // Ends the attempt quietly; an engine session it opened is told to stop.
    void stop();
    bool active() const { return asking_ || play_.active(); }
    const std::string& command_url() const { return command_url_; } // of the engine session open now ("" none)
    // Still waiting for the engine to answer (its JSON, or the playback's headers).
    bool waiting_answer() const { return asking_ || (play_.active() && !play_.answered()); }
    const EngineStatus& status() const { return status_; }
    // How long the engine has said it is prebuffering with no peer (0: it has not).
    Millis peerless_for(Millis now) const { return peerless_since_ ? now - peerless_since_ : 0; }

private:
    void on_api(int status, const std::string& body, const std::string& err);
    void fail(const std::string& why, Failure kind); // stop, then tell the stream
    void play(const Url& url);
    void poll_stat();

    std::pair<uint8_t*, size_t> recv_area() override;
    size_t batch_end() override;
    bool on_status(int status, const std::string& content_type) override;
    bool on_redirect(int status, const Url& to) override;
    bool on_body(const uint8_t* at, size_t n) override;
    void on_read() override;
    void on_end(const std::string& error) override;

    Reactor& r_;
    Ingest& in_;
    Listener& l_;
    FetchSet& detached_;
    std::shared_ptr<char> asked_; // replaced per attempt: an answer to an older one is not ours
    bool asking_ = false;           // the JSON request is out
    Fetch stat_;
    HttpClient play_;
    Timer stat_timer_;
    EngineConfig engine_;
    Attempt attempt_{};
    std::string command_url_;
    Url stat_url_;
    EngineStatus status_;
    Millis peerless_since_ = 0;
    // direct mode: an engine that answers JSON (an error on HTTP 200) instead of TS
    bool json_answer_ = false;
    std::string json_body_;
    uint64_t packets_ = 0;         // whole packets this attempt
    bool garbage_ = false;
    uint64_t dropped_seen_ = 0;
    Millis dropped_logged_at_ = -1000000;
};

} // namespace acemux
