// One stream's connection to an engine (the seed's StreamManager).
//
// json mode: GET /ace/getstream?format=json&id=...&pid=..., read
// response.playback_url / stat_url / command_url (or error), then GET the
// playback URL. direct mode: GET /ace/getstream?id=... streams at once.
// Body bytes are received into the ring's free space and go through the TS
// aligner before readers can see them.
#pragma once
#include <memory>
#include <string>

#include "acemux/engine_pool.hpp"
#include "acemux/http_client.hpp"
#include "acemux/ring.hpp"
#include "acemux/ts.hpp"

namespace acemux {

// What an engine said to /ace/getstream?format=json.
struct EngineAnswer {
    std::string playback_url, command_url;
    std::string error;     // the engine's refusal, one line; or why the answer is unusable
    bool rejected = false; // the engine refused the id (as opposed to a broken answer)
};
EngineAnswer parse_engine_answer(const std::string& body);

class Upstream final : private HttpClient::Sink {
public:
    struct Listener {
        virtual void on_upstream_accepted() = 0;           // the engine agreed to stream
        virtual void on_upstream_data(size_t bytes) = 0;   // whole packets were added to the ring
        // The attempt is over. `rejected`: the engine refused the id (its message in `why`).
        virtual void on_upstream_failed(const std::string& why, bool rejected) = 0;

    protected:
        ~Listener() = default;
    };

    Upstream(Reactor& r, Ring& ring, Listener& l);

    // id_key is "id" or "infohash".
    void start(const EngineConfig& e, const std::string& id_key, const std::string& id, const std::string& pid,
               Millis timeout);
    void stop();                                       // closes quietly
    // Marks the next connection's data as a new stream, starting at a keyframe
    // when one comes within `key_wait` packets.
    void splice_next(uint64_t key_wait) { splice_.arm(key_wait); }
    bool active() const { return api_.active() || play_.active(); }
    const std::string& command_url() const { return command_url_; }
    const ts::Aligner& aligner() const { return aligner_; }

private:
    void on_api(int status, const std::string& body, const std::string& err);
    void play(const SockAddr& to, const std::string& target);

    std::pair<uint8_t*, size_t> recv_area() override;
    bool on_status(int status) override;
    bool on_body(const uint8_t* at, size_t n) override;
    void on_read() override;
    void to_ring(const uint8_t* p, size_t n); // copies into the ring and commits
    void on_end(const std::string& error) override;

    Reactor& r_;
    Ring& ring_;
    Listener& l_;
    Fetch api_;
    HttpClient play_;
    ts::Aligner aligner_;
    // While a splice is armed, body bytes are staged, aligned and marked
    // before they are copied into the ring; otherwise they land there directly.
    ts::Splice splice_;
    ts::Aligner splice_aligner_;
    std::string staged_, spliced_;
    std::unique_ptr<uint8_t[]> stage_buf_;
    bool staging_ = false;
    EngineConfig engine_;
    Millis timeout_ = 5000;
    std::string command_url_;
    uint64_t dropped_seen_ = 0;
    Millis dropped_logged_at_ = -1000000;
};

} // namespace acemux
