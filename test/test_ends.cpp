// When a stream ends: grace_period after its last watcher of either kind is
// gone (a TS player that hung up, an HLS viewer that fetched no segment for
// 3 target durations), and its engine session is stopped with it. TS only,
// HLS only, both, a viewer that leaves while the engine still prebuffers,
// and a client that polls the playlist without ever fetching a segment.
#include <criterion/criterion.h>

#include <unistd.h>

#include "rig.hpp"

using namespace acemux;
using namespace acemux::test;

namespace {

const std::string kManifest = "/ace/manifest.m3u8?content_id=" + kId;
const std::string kQuick = "grace_period = 1\n";
const std::string kHls = "[hls]\ntarget_duration = 1\n";

// Waits until engine_sim says `key` reached `want` (false on timeout).
bool wait_stat(EngineSim& sim, const std::string& key, long want, long ms) {
    for (long until = now_ms() + ms; now_ms() < until; usleep(100 * 1000))
        if (sim_stat(sim.stats(), key) >= want) return true;
    return false;
}

// In /stats's running streams (not among those that ended).
bool has_stream(int port) {
    std::string st = http_get(port, "/stats").body;
    size_t at = st.find("\"id\":\"" + kId + "\""), ended = st.find("\"ended\":");
    return at != std::string::npos && at < ended;
}

// A viewer: the playlist, then every segment it lists that it has not had, for `ms`.
void view(int port, long ms) {
    std::vector<std::string> had;
    for (long until = now_ms() + ms; now_ms() < until; usleep(300 * 1000)) {
        HttpReply pl = http_get(port, kManifest, 10000);
        for (auto& uri : segment_uris(pl.body))
            if (std::find(had.begin(), had.end(), uri) == had.end()) {
                cr_assert_eq(http_get(port, uri, 10000).status, 200, "%s", uri.c_str());
                had.push_back(uri);
            }
    }
    cr_assert_geq(had.size(), 2u, "the viewer fetched segments");
}

// The stream is gone and its engine session stopped, within `ms` of now.
void ends_within(Rig& rig, long ms, const char* who) {
    cr_assert(wait_stat(rig.engine, "stops", 1, ms), "%s: the engine session was stopped: %s\n%s", who,
              rig.engine.stats().c_str(), rig.log().c_str());
    cr_assert_eq(sim_stat(rig.engine.stats(), "active"), 0, "%s: no playback left on the engine", who);
    cr_assert(!has_stream(rig.daemon.port), "%s: the stream is gone from /stats", who);
}

} // namespace

Test(ends, a_ts_stream_ends_after_its_last_player, .timeout = 30) {
    Rig rig;
    rig.start({}, kQuick);
    TestPlayer p;
    cr_assert(watch(p, rig.daemon.port, kId, 500));
    p.fd.reset();
    ends_within(rig, 4000, "TS only");
}

Test(ends, an_hls_stream_ends_after_its_last_viewer, .timeout = 40) {
    Rig rig;
    rig.start({"--keyframes", "idr", "--key-every", "1000"}, kQuick, kHls);
    playlist_with(rig.daemon.port, kManifest, 2);
    view(rig.daemon.port, 3000);
    cr_assert_eq(sim_stat(rig.engine.stats(), "stops"), 0, "running while the viewer watched");
    // 3 target durations without a segment, then the grace period.
    ends_within(rig, 7000, "HLS only");
}

Test(ends, a_stream_with_both_ends_after_the_last_of_either, .timeout = 40) {
    Rig rig;
    rig.start({"--keyframes", "idr", "--key-every", "1000"}, kQuick, kHls);
    TestPlayer p;
    cr_assert(watch(p, rig.daemon.port, kId, 500));
    playlist_with(rig.daemon.port, kManifest, 2);
    p.fd.reset(); // the TS player leaves; the viewer goes on
    view(rig.daemon.port, 4000);
    cr_assert_eq(sim_stat(rig.engine.stats(), "stops"), 0, "the viewer kept it: %s", rig.log().c_str());
    cr_assert(has_stream(rig.daemon.port));
    ends_within(rig, 7000, "mixed");
}

Test(ends, a_viewer_that_leaves_while_the_engine_prebuffers_leaves_no_stream, .timeout = 40) {
    Rig rig;
    rig.start({"--keyframes", "idr", "--key-every", "1000", "--delay", "4000"}, kQuick, kHls);
    {
        Fd fd(connect_port(rig.daemon.port));
        cr_assert(send_all(fd.get(), "GET " + kManifest + " HTTP/1.1\r\nHost: t\r\n\r\n"));
        usleep(1000 * 1000); // its manifest waits for the first segment; the viewer gives up first
    }
    // The engine starts sending at 4 s; nobody is there to watch it.
    ends_within(rig, 12000, "viewer left while starting");
}

// A client that polls the playlist and never fetches a segment watches
// nothing: the stream ends although the polls go on.
Test(ends, polling_the_playlist_alone_does_not_keep_a_stream, .timeout = 40) {
    Rig rig;
    rig.start({"--keyframes", "idr", "--key-every", "1000"}, kQuick, kHls);
    playlist_with(rig.daemon.port, kManifest, 2);
    long until = now_ms() + 9000;
    bool stopped = false;
    while (!stopped && now_ms() < until) {
        http_get(rig.daemon.port, kManifest, 10000);
        usleep(500 * 1000);
        stopped = sim_stat(rig.engine.stats(), "stops") >= 1;
    }
    cr_assert(stopped, "the engine session was stopped while the playlist was polled: %s", rig.log().c_str());
}
