// Every stream, by content id, and admission: /ace/getstream finds or
// starts the stream (engine slots, limits, 503s), the engine's JSON API over
// our streams, stop commands and the record of ended streams.
#pragma once
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "acemux/channels.hpp"
#include "acemux/m3u.hpp"
#include "acemux/stream.hpp"

namespace acemux {

class Streams final : private Stream::Host {
public:
    Streams(Reactor& r, const StreamConfig& c, const HlsConfig& h, const AccessConfig& a, EnginePool& pool,
            RedisMirror& redis, Cluster* cluster = nullptr);
    ~Streams();

    HttpResponse getstream(const HttpRequest& req);
    HttpResponse manifest(const HttpRequest& req); // HLS: /ace/manifest.m3u8
    HttpResponse segment(const HttpRequest& req);  // HLS: /ace/hls/...
    // The engine's JSON API over our streams: /ace/getstream?format=json, and
    // the stat_url and command_url it hands out.
    HttpResponse engine_stat(const HttpRequest& req);
    HttpResponse engine_command(const HttpRequest& req);
    void reconfigure(const StreamConfig& c, const HlsConfig& h, const AccessConfig& a);
    // The channels ([[channel]] and imported), whose names and backup ids
    // new streams of their ids take from now on.
    void use_channels(const Channels* c) { channels_ = c; }
    // The channel of an id (`key` "id" or "infohash"), nullptr when none lists it.
    const ChannelConfig* channel(const std::string& key, std::string id) const;
    void close_all();

    const StreamConfig& cfg() const { return cfg_; }
    const ZeroCopy& zero_copy() const { return zero_copy_; }
    size_t stops_pending() const { return detached_.size(); } // engine requests still out (stops among them)
    bool close_idle_stream(); // the one in its grace period longest; false when there is none

    const std::map<std::string, std::unique_ptr<Stream>>& streams() const { return streams_; }
    size_t player_count() const; // TS players and HLS viewers

    // Counters over the daemon's life (what ends adds its own here).
    const StreamTotals& totals() const { return totals_; }
    // The last streams that ended, newest last, and why: a user asking why a
    // channel did not play finds the engine's answer here.
    struct Ended {
        std::string id, engine, why;
        Millis at;
    };
    static constexpr size_t kEndedKept = 16;
    const std::deque<Ended>& ended() const { return ended_; }

private:
    struct Wanted {
        std::string id_key, id, key; // the parameter's name, the id, the stream's key
    };
    static bool read_id(const HttpRequest& req, Wanted& w, HttpResponse& bad);
    HttpResponse manifest_answer(const HttpRequest& req);
    HttpResponse segment_answer(const HttpRequest& req);
    size_t watcher_count(const std::string* host = nullptr) const;
    bool admit(const HttpRequest& req, const std::string& id, HttpResponse& no);
    Stream* find_or_start(const Wanted& w, HttpResponse& no);
    HttpResponse engine_answer(const HttpRequest& req, const std::string& id_key, const std::string& id);
    Stream* find(const std::string& key);
    // Stream::Host
    StreamTotals& counters() override { return totals_; }
    FetchSet& detached() override { return detached_; }
    void closed(Stream& s, const std::string& why) override; // remembered for /stats, taken out
    bool lending_pays() const override { return zero_copy_.lends(); }
    void probe_zero_copy();

    Reactor& r_;
    StreamConfig cfg_;
    HlsConfig hls_;
    AccessConfig access_; // client limits, and the token our engine answers carry
    EnginePool& pool_;
    RedisMirror& redis_;
    Cluster* cluster_;
    std::map<std::string, std::unique_ptr<Stream>> streams_;
    std::deque<Ended> ended_;
    FetchSet detached_;
    StreamTotals totals_;
    Throttle refused_; // streams no engine could take
    const Channels* channels_ = nullptr;
    ZeroCopy zero_copy_;
    Timer zero_copy_timer_;
};

} // namespace acemux
