// The running daemon: the config, the HTTP server and the streams, wired to
// one reactor. main() builds it; tests may build one in-process.
#pragma once
#include <memory>
#include <string>

#include "acemux/access.hpp"
#include "acemux/cluster.hpp"
#include "acemux/config.hpp"
#include "acemux/engine_pool.hpp"
#include "acemux/http_server.hpp"
#include "acemux/playlists.hpp"
#include "acemux/reactor.hpp"
#include "acemux/redis_mirror.hpp"
#include "acemux/streams.hpp"
#include "acemux/watch.hpp"

namespace acemux {

class Daemon {
public:
    Daemon(Reactor& r, Config c);
    ~Daemon();

    bool start(std::string& err); // binds listeners
    void reload();                // SIGHUP: re-read the config file, keep the old one if it is bad
    void shutdown();              // SIGTERM: close everything, then stop the loop
    // Where the log goes whatever [log] target says, reloads included
    // (acemux -l: OpenWrt's procd files stderr as errors, its logd has /dev/log).
    void override_log_target(const std::string& target) {
        log_target_ = target;
        apply_log_config();
    }

    HttpServer& server() { return server_; }
    Streams& streams() { return streams_; }
    const Streams& streams() const { return streams_; }
    const EnginePool& pool() const { return pool_; }
    const RedisMirror& redis() const { return redis_; }
    const Cluster& cluster() const { return cluster_; }
    const HttpServer& server() const { return server_; }
    Millis started_at() const { return started_; }
    Reactor& reactor() const { return r_; }
    const Config& config() const { return cfg_; }
    const Channels& channels() const { return channels_; }
    const Playlists& playlists() const { return playlists_; }

private:
    void apply_log_config();
    void load_watch_page();
    void build_channels(); // [[channel]] entries and the imported lists, again
    void route(const char* path, Audience who, HttpServer::Handler h, bool prefix = false);
    static HttpResponse typed(const char* type, std::string body);

    Reactor& r_;
    Config cfg_;
    std::string log_target_; // -l; "" [log] target
    HttpServer server_; // before the sessions: players hold its connection slots
    EnginePool pool_;
    RedisMirror redis_;
    Cluster cluster_;
    Streams streams_;
    Channels channels_;
    Playlists playlists_;
    WatchPage watch_;
    Millis started_;
    static constexpr Millis kStopDeadline = 1000;
    void check_shutdown();
    Millis shutdown_deadline_ = 0;
    Timer shutdown_timer_;
};

} // namespace acemux
