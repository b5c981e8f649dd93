// The configuration: every option with its default. Parsing checks each key's
// type and range and reports problems as "file:line:col: message".
//
// One struct per section, and each module takes only its own: the HTTP
// server a ServerConfig, the streams a StreamConfig and an AccessConfig, the
// engine pool an EnginesConfig, the Redis mirror a RedisConfig. Config is
// all of them together, so `cfg.chunk_size` reads as the file says it.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "acemux/clock.hpp"
#include "acemux/log.hpp"
#include "acemux/net.hpp"
#include "acemux/zero_copy.hpp"

namespace acemux {

struct EngineConfig {
    std::string name;      // defaults to "host:port"
    std::string host = "127.0.0.1"; // an IP address or a name (resolved on the loop)
    int port = 6878;
    int max_streams = 10;
    bool direct = false;   // api = "direct": GET /ace/getstream?id= streams at once, no JSON step
    bool allow_other_hosts = false; // follow URLs the engine hands out to hosts other than itself
    std::string address() const { return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port); }
};

// An IP literal or a DNS name (letters, digits, '-', '_', dots).
bool valid_host(const std::string& h);

// [redis]; the URL is the mirror's to read (RedisMirror::parse_url).
struct RedisConfig {
    std::string url;       // empty (and no sentinels): no Redis, the buffer lives in memory only
    std::vector<std::string> sentinels; // "host:port" of each; then the url gives only password and db
    std::string master;    // the name the sentinels know the master by
    bool cluster = false;  // a Redis Cluster: the url names one of its nodes
    bool enabled() const { return !url.empty() || !sentinels.empty(); }
    std::string prefix = "ace_proxy";
    int ttl = 60;          // seconds: ends what a stream that stopped left behind
    int keep_chunks = 32;  // newest chunks kept per stream (a resume needs 16, a follower a few)
    size_t max_backlog = 8 * 1024 * 1024;
    Millis resume_max_age = 30000;
};

// A channel: a [[channel]] entry, or one imported from a [[playlist]].
struct ChannelConfig {
    std::string name, id, group, logo;
    std::string key = "id";       // "infohash": its ids are infohashes
    std::vector<std::string> ids; // id first, then its backups, tried in order when one cannot be played
    std::string tvg_id, tvg_name; // an imported entry's, for the guide
    std::string source;           // the playlist it came from; "" a [[channel]]
};

// [[playlist]]: a list of AceStream links imported as channels.
struct PlaylistConfig {
    std::string source;  // a file, or an http:// or https:// URL
    bool fetched() const { return https() || source.rfind("http://", 0) == 0; } // a URL, not a file
    bool https() const { return source.rfind("https://", 0) == 0; }
    Millis refresh = 3600000; // fetched again this often (and on SIGHUP); 0: at start and on SIGHUP only
    std::string ca_file; // https: the CA certificates to trust ("": the system's)
    std::string group;   // entries without a group-title go here ("": none)
};

struct ServerConfig { // [server]
    std::vector<std::string> listen{"0.0.0.0:8000"};
    std::vector<SockAddr> listen_addrs;
    int max_connections = 1024;
    int max_connections_per_ip = 64; // 0: no limit
    std::string tcp_congestion;      // players' sockets; "": the system's
    Millis header_timeout = 10000;
    std::string pidfile;
    std::string user, group;
    std::string data_dir; // hls.min.js for the watch page; empty: the installed share directory
};

struct LogConfig { // [log]
    LogLevel log_level = LogLevel::info;
    std::string log_target = "stderr"; // or "syslog"
};

struct StreamConfig { // [stream]
    size_t chunk_size = 65424;   // 348 TS packets
    size_t ring_chunks = 64;     // the most; and the size until the rate is measured
    Millis ring_time = 1500;     // what a ring holds at the stream's rate; 0: the size it was made with
    int initial_behind = 3;
    Millis join_behind = 1000; // 0: no keyframe joins, the chunk rule only
    int catchup_behind = 50;
    size_t wake_bytes = 64 * 1024;
    Millis wake_delay = 100;
    Millis keepalive_interval = 500;
    Millis client_stall_timeout = 30000;
    int client_sndbuf = 256 * 1024; // 0: the kernel's autotuning
    ZeroCopy::Mode zero_copy = ZeroCopy::Mode::automatic; // whether those streams lend: measured, or on, or off
    int zero_copy_from = 16;          // readers from which a stream may send with sendfile; 0: never
    Millis grace_period = 5000;
    Millis connect_timeout = 5000;
    Millis answer_timeout = 30000; // an engine's answer headers (a cold channel prebuffers first)
    Millis no_data_timeout = 10000;
    Millis failover_timeout = 60000;
    Millis no_peers_timeout = 30000; // engine still prebuffering with 0 peers: the content is dead
};

struct HlsConfig { // [hls]
    Millis target_duration = 2000; // a segment ends at the first keyframe past it (3x: forced)
    int window = 6;                // segments in the playlist
    Millis manifest_wait = 15000;  // a manifest waits this long for the first segment, then 503
    size_t max_ring_bytes = 32u << 20; // the ring grows to hold the window at the stream's rate, up to this
};

struct ClusterConfig { // [cluster]
    bool cluster = false;    // [cluster] enabled: several instances on one Redis, one upstream per stream
    std::string instance;    // this instance's name; empty: host name and a random suffix
    Millis lease = 5000;     // a stream's owner holds it this long without renewing
};

struct EnginesConfig { // [engines] and each [[engine]]
    Millis health_interval = 10000;
    int health_failures = 3;
    Millis health_timeout = 3000;
    bool allow_other_hosts = false;
    std::vector<EngineConfig> engines;
};

struct AccessConfig { // [access]
    std::vector<Cidr> allow;       // who may use acemux at all
    std::vector<Cidr> admin_allow; // who may read /stats, /metrics, /status (empty: same as allow)
    std::string token;             // when set, every request but /health carries it
    int max_clients = 0;           // players at once, 0: only max_connections limits them
    int max_clients_per_ip = 0;
};

struct TunerConfig { // [tuner]: what Plex, Jellyfin and Emby see of acemux as an HDHomeRun
    std::string tuner_name = "acemux"; // FriendlyName
    std::string device_id;             // 8 hex digits; empty: derived from the name
    int tuner_count = 0;               // streams at once; 0: the engines' max_streams added up
};

struct Config : ServerConfig, LogConfig, StreamConfig, HlsConfig, ClusterConfig, EnginesConfig, AccessConfig, TunerConfig {
    std::string path;
    RedisConfig redis;
    std::vector<ChannelConfig> channels; // [[channel]]
    std::vector<PlaylistConfig> playlists; // [[playlist]]
};

// Parses TOML text; on failure returns false and sets err to "path:line:col: message".
bool parse_config(const std::string& text, const std::string& path, Config& out, std::string& err);
bool load_config(const std::string& path, Config& out, std::string& err);

} // namespace acemux
