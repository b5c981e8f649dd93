// A test player: one GET /ace/getstream connection whose TS is checked packet
// by packet as it arrives. Many players are read together from one poll loop.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"
#include "ts_gen.hpp"

namespace acemux::test {

struct TestPlayer {
    Fd fd;
    std::string head;      // response header, once complete
    int status = 0;
    bool closed = false;
    bool paused = false;   // not read by read_players
    long connected_ms = 0, first_byte_ms = -1;
    // When bytes came: the longest silence, and the longest time without a
    // data packet (null packets fill an engine's failure, data does not).
    long last_byte_ms = -1, max_silence_ms = 0, last_data_ms = -1, max_data_gap_ms = 0;
    long restart_ms = -1; // when the newest restart (a new engine connection) arrived
    uint64_t body_bytes = 0;
    std::string first_bytes; // the first body bytes, for inspection
    testts::TsCheck check;

    bool open(int port, const std::string& id, const std::string& extra_headers = "");
    void on_data(const char* p, size_t n);
};

// An engine_sim and the daemon in front of it. `stream` goes into [stream];
// `extra` follows the [[engine]] entry (more of its keys, or other tables);
// `server` goes into [server].
struct Rig {
    EngineSim engine;
    DaemonProc daemon;
    void start(const std::vector<std::string>& engine_args = {}, const std::string& stream = "",
               const std::string& extra = "", const std::string& server = "");
    std::string log(); // everything the daemon wrote so far
    // Rewrites the config with `stream` as its [stream] and reloads it (SIGHUP, "applied").
    void reload(const std::string& stream);
};

// A first player watches for `watch_ms`, then a second joins and both read
// for `late_ms`. `head` is the first player's newest sequence number when the
// second joined.
struct LateJoin {
    TestPlayer first, late;
    uint64_t head = 0;
    void run(int port, long watch_ms, long late_ms);
};

// A player with a small receive buffer, so that the daemon sees it lag.
bool open_small(TestPlayer& p, int port, const std::string& id, int rcvbuf);
// The slow one takes 64 KiB every 50 ms for `rounds` rounds; the fast one reads everything.
void sip(TestPlayer& slow, TestPlayer& fast, int rounds);
// The "fast" reader of a test whose small ring makes a slow one jump: on a
// loaded machine (a sanitizer build, a busy core) the test itself may not
// read it for the few tens of milliseconds such a ring holds, and then it is
// jumped too. Clean, or each gap a jump the daemon logged for it (`log`),
// with nothing corrupt, duplicated or out of order.
void expect_clean_or_jumped(const TestPlayer& fast, const std::string& log);

// The engine answers after about half a second and prebuffers before its
// first byte, as a real one does: these read until something has happened.
// Until the player has its response header (false on timeout).
bool wait_status(TestPlayer& p, long ms = 5000);
// Until the player has `packets` data packets (false on timeout).
bool wait_data(TestPlayer& p, long ms = 8000, uint64_t packets = 1);
bool wait_data(std::vector<TestPlayer*> players, long ms = 8000, uint64_t packets = 1);

// Reads every player that is not paused for `ms` milliseconds.
void read_players(std::vector<TestPlayer*> players, long ms);
inline void read_player(TestPlayer& p, long ms) { read_players({&p}, ms); }
// A player watching: opens, waits for the first data, then reads for `ms`.
inline bool watch(TestPlayer& p, int port, const std::string& id, long ms) {
    if (!p.open(port, id) || !wait_data(p)) return false;
    read_player(p, ms);
    return true;
}

// HLS: the segment URIs a playlist lists, and the playlist of `manifest`
// (a /ace/manifest.m3u8 target) once it lists `n` segments (fails the test
// after `ms`).
std::vector<std::string> segment_uris(const std::string& playlist);
std::string playlist_with(int port, const std::string& manifest, size_t n, long ms = 15000);

inline const std::string kId = "0123456789abcdef0123456789abcdef01234567";
inline const std::string kId2 = "fedcba9876543210fedcba9876543210fedcba98";

// An [[engine]] table for a config.
std::string engine_entry(const std::string& name, int port, int max_streams = 10, const std::string& host = "127.0.0.1");
// [redis] on `url` (plus `redis_more` keys) and [cluster] for instance `name`
// (plus `cluster_more` keys): one instance of a cluster.
std::string instance_config(const std::string& url, const std::string& name, const std::string& cluster_more = "",
                            const std::string& redis_more = "");
// `n` cluster instances, "i0", "i1"..., on `redis`, each with `engines`
// (engine_entry lines) and a 2 s grace period, each once its pub/sub link
// is up.
std::vector<std::unique_ptr<DaemonProc>> start_instances(const RedisServer& redis, const std::string& engines, int n);

// Parses {"api":1,...} as written by engine_sim.
long sim_stat(const std::string& json, const std::string& key);

} // namespace acemux::test
