#include "acemux/stats.hpp"


#include "acemux/daemon.hpp"
#include "acemux/json.hpp"
#include "acemux/version.hpp"

namespace acemux {

namespace {

double seconds(Millis ms) { return static_cast<double>(ms) / 1000.0; }

cJSON* player_json(const Player& c, const Ring& ring, Millis now) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "ts");
    cJSON_AddStringToObject(o, "address", c.peer().str().c_str());
    cJSON_AddStringToObject(o, "user_agent", c.user_agent().c_str());
    cJSON_AddNumberToObject(o, "connected_s", seconds(now - c.connected_at()));
    cJSON_AddNumberToObject(o, "bytes", static_cast<double>(c.bytes_sent()));
    cJSON_AddNumberToObject(o, "lag_chunks", c.started() ? static_cast<double>(c.cursor().behind(ring)) : 0);
    cJSON_AddNumberToObject(o, "jumps", static_cast<double>(c.jumps()));
    cJSON_AddBoolToObject(o, "blocked", c.blocked());
    return o;
}

cJSON* viewer_json(const HlsOutlet::Viewer& v, Millis now) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "hls");
    cJSON_AddStringToObject(o, "address", v.peer.host().c_str());
    cJSON_AddStringToObject(o, "user_agent", v.user_agent.c_str());
    cJSON_AddNumberToObject(o, "connected_s", seconds(now - v.since));
    cJSON_AddNumberToObject(o, "bytes", static_cast<double>(v.bytes));
    cJSON_AddNumberToObject(o, "segments", static_cast<double>(v.segments));
    cJSON_AddNumberToObject(o, "last_fetch_s", seconds(now - v.last));
    return o;
}

// A connection to Redis: where it is, and the errors Redis answered on it by kind.
template <typename L> cJSON* link_json(const L& l) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", l.name());
    cJSON_AddStringToObject(o, "node", l.node().c_str());
    cJSON_AddBoolToObject(o, "connected", l.connected());
    const RedisLink::Errors& e = l.errors();
    cJSON_AddNumberToObject(o, "readonly", static_cast<double>(e.readonly));
    cJSON_AddNumberToObject(o, "moved", static_cast<double>(e.moved));
    cJSON_AddNumberToObject(o, "ask", static_cast<double>(e.ask));
    cJSON_AddNumberToObject(o, "unknown_command", static_cast<double>(e.unknown));
    cJSON_AddNumberToObject(o, "other_errors", static_cast<double>(e.other));
    cJSON_AddStringToObject(o, "last_error", l.last_error().c_str());
    return o;
}

// The sharded subscriptions: one channel per followed stream, and what came on them.
cJSON* subscriber_json(const RedisSubscriber& s) {
    cJSON* o = link_json(s);
    cJSON_AddNumberToObject(o, "channels", static_cast<double>(s.channels()));
    cJSON_AddNumberToObject(o, "messages", static_cast<double>(s.messages()));
    return o;
}

cJSON* stream_json(const Stream& s, Millis now) {
    cJSON* o = cJSON_CreateObject();
    const Ring& ring = s.ring();
    cJSON_AddStringToObject(o, "id", s.id().c_str());
    cJSON_AddStringToObject(o, "name", s.name().c_str()); // the channel's, "" if none
    cJSON_AddStringToObject(o, "live_id", s.live_id().c_str()); // a channel's backup id once the first could not be played
    cJSON_AddStringToObject(o, "engine", s.engine() ? s.engine()->cfg.name.c_str() : "");
    cJSON_AddStringToObject(o, "state", Stream::state_name(s.state()));
    cJSON_AddStringToObject(o, "role", Follow::role_name(s.role())); // in a cluster: owner or follower
    if (s.role() != Follow::Role::solo) cJSON_AddStringToObject(o, "owner", s.owner().c_str());
    if (s.role() == Follow::Role::follower) cJSON_AddNumberToObject(o, "lag_chunks", static_cast<double>(s.lag_chunks()));
    cJSON_AddNumberToObject(o, "uptime_s", seconds(now - s.created_at()));
    cJSON_AddNumberToObject(o, "bytes_in", static_cast<double>(s.bytes_in()));
    cJSON_AddNumberToObject(o, "bitrate_in", s.byte_rate() * 8);
    cJSON_AddNumberToObject(o, "bytes_out", static_cast<double>(s.bytes_out()));
    cJSON_AddNumberToObject(o, "bitrate_out", s.out_rate() * 8);
    // The ring's size (ring_time at the stream's rate, or an HLS window) and what of it holds data.
    cJSON_AddNumberToObject(o, "ring_chunks", static_cast<double>(ring.chunks()));
    cJSON_AddNumberToObject(o, "ring_used_chunks", static_cast<double>(ring.head() - ring.first() + 1));
    cJSON_AddNumberToObject(o, "ring_size", static_cast<double>(ring.chunks()));
    cJSON_AddBoolToObject(o, "zero_copy", ring.lends());
    cJSON_AddNumberToObject(o, "ring_renewed", static_cast<double>(ring.renewed()));
    cJSON_AddNumberToObject(o, "dropped_bytes", static_cast<double>(s.dropped_bytes()));
    cJSON_AddNumberToObject(o, "reconnects", static_cast<double>(s.reconnects()));
    cJSON_AddNumberToObject(o, "resumed_chunks", static_cast<double>(s.primed_chunks()));
    // What the engine says of its download (stat_url); null until it has said.
    const EngineStatus& es = s.engine_status();
    if (!es.at) {
        cJSON_AddNullToObject(o, "engine_status");
    } else {
        cJSON* e = cJSON_AddObjectToObject(o, "engine_status");
        cJSON_AddStringToObject(e, "status", es.status.c_str());
        cJSON_AddNumberToObject(e, "peers", static_cast<double>(es.peers));
        cJSON_AddNumberToObject(e, "speed_down", static_cast<double>(es.speed_down));
        cJSON_AddNumberToObject(e, "speed_up", static_cast<double>(es.speed_up));
        cJSON_AddNumberToObject(e, "downloaded", static_cast<double>(es.downloaded));
        cJSON_AddNumberToObject(e, "uploaded", static_cast<double>(es.uploaded));
        cJSON_AddNumberToObject(e, "age_s", seconds(now - es.at));
    }
    cJSON* players = cJSON_AddArrayToObject(o, "players");
    for (auto& p : s.players()) cJSON_AddItemToArray(players, player_json(*p, ring, now));
    for (auto& [k, v] : s.hls().viewers()) cJSON_AddItemToArray(players, viewer_json(v, now));
    const Segmenter& seg = s.hls().segmenter();
    cJSON* hls = cJSON_AddObjectToObject(o, "hls");
    cJSON_AddNumberToObject(hls, "segments", static_cast<double>(seg.ready()));
    cJSON_AddNumberToObject(hls, "segments_cut", static_cast<double>(seg.cut()));
    cJSON_AddNumberToObject(hls, "target_duration_s", seconds(seg.target()));
    return o;
}
} // namespace

std::string stats_json(const Daemon& d) {
    Millis now = d.reactor().now();
    Json root = json_object();
    cJSON_AddStringToObject(root.get(), "version", ACEMUX_VERSION);
    cJSON_AddNumberToObject(root.get(), "uptime_s", seconds(now - d.started_at()));

    cJSON* streams = cJSON_AddArrayToObject(root.get(), "streams");
    for (auto& [key, s] : d.streams().streams()) cJSON_AddItemToArray(streams, stream_json(*s, now));

    if (d.cluster().enabled()) {
        cJSON* cl = cJSON_AddObjectToObject(root.get(), "cluster");
        cJSON_AddStringToObject(cl, "instance", d.cluster().instance().c_str());
        cJSON* alive = cJSON_AddArrayToObject(cl, "alive");
        for (auto& n : d.cluster().alive()) cJSON_AddItemToArray(alive, cJSON_CreateString(n.c_str()));
    }

    cJSON* ended = cJSON_AddArrayToObject(root.get(), "ended");
    for (auto& e : d.streams().ended()) {
        cJSON* o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", e.id.c_str());
        cJSON_AddStringToObject(o, "engine", e.engine.c_str());
        cJSON_AddStringToObject(o, "reason", e.why.c_str());
        cJSON_AddNumberToObject(o, "ago_s", seconds(now - e.at));
        cJSON_AddItemToArray(ended, o);
    }

    // Each [[playlist]] source: what its last good list held, and the error
    // of the fetches since ("" while they work).
    cJSON* playlists = cJSON_AddArrayToObject(root.get(), "playlists");
    for (auto& p : d.playlists().states()) {
        cJSON* o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "source", p.source.c_str());
        cJSON_AddNumberToObject(o, "entries", static_cast<double>(p.entries));
        cJSON_AddNumberToObject(o, "skipped", static_cast<double>(p.skipped));
        if (p.have) cJSON_AddNumberToObject(o, "fetched_ago_s", seconds(now - p.fetched));
        cJSON_AddStringToObject(o, "error", p.error.c_str());
        cJSON_AddItemToArray(playlists, o);
    }
    cJSON_AddNumberToObject(root.get(), "channels", static_cast<double>(d.channels().all().size()));

    cJSON* engines = cJSON_AddArrayToObject(root.get(), "engines");
    for (auto& e : d.pool().engines()) {
        cJSON* o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", e->cfg.name.c_str());
        cJSON_AddStringToObject(o, "address", e->cfg.address().c_str());
        bool suspended = e->up && !e->usable(now);
        cJSON_AddStringToObject(o, "state", suspended ? "suspended" : e->up ? "up" : "down");
        if (suspended) {
            cJSON_AddStringToObject(o, "why", e->suspended_why.c_str());
            cJSON_AddNumberToObject(o, "suspended_s", seconds(e->suspended_until - now));
        }
        cJSON_AddNumberToObject(o, "streams", e->streams);
        cJSON_AddNumberToObject(o, "max_streams", e->cfg.max_streams);
        if (d.cluster().enabled()) cJSON_AddNumberToObject(o, "streams_elsewhere", e->elsewhere); // other instances
        cJSON_AddStringToObject(o, "version", e->version.c_str());
        cJSON_AddItemToArray(engines, o);
    }

    const RedisMirror& r = d.redis();
    cJSON* redis = cJSON_AddObjectToObject(root.get(), "redis");
    cJSON_AddBoolToObject(redis, "enabled", r.enabled());
    cJSON_AddBoolToObject(redis, "connected", r.connected());
    cJSON_AddNumberToObject(redis, "chunks_written", static_cast<double>(r.written()));
    cJSON_AddNumberToObject(redis, "chunks_skipped", static_cast<double>(r.skipped()));
    cJSON_AddNumberToObject(redis, "chunks_refused", static_cast<double>(r.fenced())); // the lease was not ours
    cJSON_AddNumberToObject(redis, "chunks_failed", static_cast<double>(r.failed()));   // Redis answered an error
    cJSON_AddNumberToObject(redis, "bytes_written", static_cast<double>(r.bytes()));
    cJSON_AddNumberToObject(redis, "backlog_bytes", static_cast<double>(r.backlog()));
    cJSON_AddStringToObject(redis, "last_error", r.last_error().c_str());
    if (const RedisSentinel* s = r.sentinel()) {
        cJSON* o = cJSON_AddObjectToObject(redis, "sentinel");
        cJSON_AddStringToObject(o, "master", s->master().c_str());
        cJSON_AddStringToObject(o, "asking", s->asking().c_str());
    }
    const RedisRouter& rt = r.router();
    if (rt.cluster()) {
        cJSON* c = cJSON_AddObjectToObject(redis, "cluster"); // a Redis Cluster's routing
        cJSON_AddNumberToObject(c, "moved", static_cast<double>(rt.moved()));
        cJSON_AddNumberToObject(c, "ask", static_cast<double>(rt.asked()));
        cJSON_AddNumberToObject(c, "tryagain", static_cast<double>(rt.retried()));
        cJSON_AddNumberToObject(c, "slot_refreshes", static_cast<double>(rt.refreshes()));
    }
    cJSON* links = cJSON_AddArrayToObject(redis, "links");
    if (const RedisLink* seed = rt.seed()) cJSON_AddItemToArray(links, link_json(*seed));
    rt.each([&](const RedisRouter::Node& n) {
        cJSON_AddItemToArray(links, link_json(n.link));
        if (n.sub) cJSON_AddItemToArray(links, subscriber_json(*n.sub));
    });

    // "_now": at this moment; "_since_start": over the daemon's life.
    const auto& t = d.streams().totals();
    cJSON* totals = cJSON_AddObjectToObject(root.get(), "totals");
    cJSON_AddNumberToObject(totals, "streams_now", static_cast<double>(d.streams().streams().size()));
    cJSON_AddNumberToObject(totals, "players_now", static_cast<double>(d.streams().player_count()));
    cJSON_AddNumberToObject(totals, "connections_now", static_cast<double>(d.server().connections()));
    cJSON_AddNumberToObject(totals, "streams_since_start", static_cast<double>(t.streams));
    cJSON_AddNumberToObject(totals, "reconnects_since_start", static_cast<double>(t.reconnects));
    cJSON_AddNumberToObject(totals, "hls_players_gone_since_start", static_cast<double>(t.hls_players));
    // Where the time goes (make bench divides these by the bytes delivered).
    uint64_t sent = t.bytes_out, writes = t.writes;
    for (auto& [k, s] : d.streams().streams())
        for (auto& p : s->players()) sent += p->bytes_sent(), writes += p->writes();
    cJSON_AddNumberToObject(totals, "player_bytes_since_start", static_cast<double>(sent));
    cJSON_AddNumberToObject(totals, "player_writes_since_start", static_cast<double>(writes));
    cJSON_AddNumberToObject(totals, "loop_passes_since_start", static_cast<double>(d.reactor().passes()));

    // How streams with zero_copy_from readers send, and why (ZeroCopy).
    const ZeroCopy& zc = d.streams().zero_copy();
    cJSON* z = cJSON_AddObjectToObject(root.get(), "zero_copy");
    cJSON_AddStringToObject(z, "mode", ZeroCopy::mode_name(zc.mode()));
    cJSON_AddBoolToObject(z, "lending", zc.lends() && d.streams().cfg().zero_copy_from > 0);
    cJSON_AddBoolToObject(z, "probing", zc.probing());
    cJSON_AddBoolToObject(z, "measured", zc.decided());
    cJSON_AddNumberToObject(z, "lending_cpu_s_per_gb", zc.lend_cost());
    cJSON_AddNumberToObject(z, "copying_cpu_s_per_gb", zc.copy_cost());

    return json_text(root);
}

} // namespace acemux

namespace acemux {

namespace {
struct Prom {
    std::string out;
    void head(const char* name, const char* type, const char* help) {
        out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    }
    void value(const char* name, double v, const std::string& labels = "") {
        char num[64];
        std::snprintf(num, sizeof num, "%.17g", v);
        out += std::string(name) + (labels.empty() ? "" : "{" + labels + "}") + " " + num + "\n";
    }
    void one(const char* name, const char* type, const char* help, double v) {
        head(name, type, help);
        value(name, v);
    }
};

std::string label(const char* k, const std::string& v) {
    std::string e;
    for (char c : v) {
        if (c == '\\' || c == '"') e += '\\';
        if (c == '\n') {
            e += "\\n";
            continue;
        }
        e += c;
    }
    return std::string(k) + "=\"" + e + "\"";
}

// A stream's series carry its id, and its channel's name when it has one.
std::string stream_labels(const Stream& s) {
    return label("id", s.id()) + (s.name().empty() ? "" : "," + label("name", s.name()));
}
} // namespace

std::string metrics_text(const Daemon& d) {
    const Streams& sm = d.streams();
    const auto& t = sm.totals();
    uint64_t bytes_in = t.bytes_in, bytes_out = t.bytes_out, jumps = t.jumps, players = t.players;
    for (auto& [k, s] : sm.streams()) {
        bytes_in += s->bytes_in();
        for (auto& p : s->players()) bytes_out += p->bytes_sent(), jumps += p->jumps(), players++;
    }
    Prom p;
    p.head("acemux_info", "gauge", "Version of the running daemon.");
    p.value("acemux_info", 1, label("version", ACEMUX_VERSION));
    p.one("acemux_uptime_seconds", "gauge", "Seconds since the daemon started.",
          seconds(d.reactor().now() - d.started_at()));
    p.one("acemux_streams", "gauge", "Streams open now.", static_cast<double>(sm.streams().size()));
    // One metric for watchers of both kinds, told apart by a label: the sum
    // over kinds is the number of watchers, as /stats and the limits count them.
    size_t ts = 0, hls = 0;
    for (auto& [k, s] : sm.streams()) ts += s->player_count(), hls += s->hls().viewer_count();
    p.head("acemux_players", "gauge", "Watchers now: TS players, and HLS viewers (fetched within 3 target durations).");
    p.value("acemux_players", static_cast<double>(ts), label("kind", "ts"));
    p.value("acemux_players", static_cast<double>(hls), label("kind", "hls"));
    p.one("acemux_connections", "gauge", "Open HTTP connections, players included.",
          static_cast<double>(d.server().connections()));
    p.one("acemux_streams_started_total", "counter", "Streams started.", static_cast<double>(t.streams));
    p.one("acemux_stream_reconnects_total", "counter", "Engine reconnects and failovers.",
          static_cast<double>(t.reconnects));
    p.one("acemux_players_total", "counter", "Players served.", static_cast<double>(players));
    p.one("acemux_received_bytes_total", "counter", "TS bytes received from engines.", static_cast<double>(bytes_in));
    p.one("acemux_sent_bytes_total", "counter", "Bytes sent to players.", static_cast<double>(bytes_out));
    p.one("acemux_player_jumps_total", "counter", "Catch-up jumps of players that fell behind.",
          static_cast<double>(jumps));
    p.head("acemux_stream_players", "gauge", "Watchers of a stream, by kind (ts: players, hls: viewers).");
    for (auto& [k, s] : sm.streams()) {
        p.value("acemux_stream_players", static_cast<double>(s->player_count()), stream_labels(*s) + "," + label("kind", "ts"));
        p.value("acemux_stream_players", static_cast<double>(s->hls().viewer_count()), stream_labels(*s) + "," + label("kind", "hls"));
    }
    p.head("acemux_stream_receive_bytes_per_second", "gauge", "Bytes per second received for a stream.");
    for (auto& [k, s] : sm.streams()) p.value("acemux_stream_receive_bytes_per_second", s->byte_rate(), stream_labels(*s));
    p.head("acemux_stream_send_bytes_per_second", "gauge", "Bytes per second sent to a stream's players, together.");
    for (auto& [k, s] : sm.streams()) p.value("acemux_stream_send_bytes_per_second", s->out_rate(), stream_labels(*s));
    p.head("acemux_stream_engine_peers", "gauge", "Peers the engine reports for a stream.");
    for (auto& [k, s] : sm.streams())
        if (s->engine_status().at) p.value("acemux_stream_engine_peers", static_cast<double>(s->engine_status().peers), stream_labels(*s));
    p.head("acemux_stream_engine_download_bytes_per_second", "gauge", "Download speed the engine reports for a stream.");
    for (auto& [k, s] : sm.streams())
        if (s->engine_status().at)
            p.value("acemux_stream_engine_download_bytes_per_second", static_cast<double>(s->engine_status().speed_down) * 1024,
                    stream_labels(*s));
    p.head("acemux_stream_engine_downloaded_bytes", "gauge", "Bytes the engine reports downloaded for a stream.");
    for (auto& [k, s] : sm.streams())
        if (s->engine_status().at)
            p.value("acemux_stream_engine_downloaded_bytes", static_cast<double>(s->engine_status().downloaded), stream_labels(*s));
    p.head("acemux_stream_engine_status", "gauge", "1 for the status the engine reports for a stream (prebuf, dl, ...).");
    for (auto& [k, s] : sm.streams())
        if (s->engine_status().at)
            p.value("acemux_stream_engine_status", 1, stream_labels(*s) + "," + label("status", s->engine_status().status));
    p.head("acemux_engine_up", "gauge", "1 when the engine passes its health checks and takes new streams.");
    for (auto& e : d.pool().engines())
        p.value("acemux_engine_up", e->usable(d.reactor().now()) ? 1 : 0, label("engine", e->cfg.name));
    p.head("acemux_engine_streams", "gauge", "Streams on the engine.");
    for (auto& e : d.pool().engines()) p.value("acemux_engine_streams", e->streams, label("engine", e->cfg.name));
    const RedisMirror& r = d.redis();
    p.one("acemux_redis_connected", "gauge", "1 when the Redis mirror is connected.", r.connected() ? 1 : 0);
    p.one("acemux_redis_chunks_written_total", "counter", "Chunks mirrored to Redis.", static_cast<double>(r.written()));
    p.one("acemux_redis_chunks_skipped_total", "counter", "Chunks not mirrored (Redis away or slow).",
          static_cast<double>(r.skipped()));
    p.one("acemux_redis_chunks_refused_total", "counter", "Chunks Redis refused: the stream's lease was another instance's.",
          static_cast<double>(r.fenced()));
    p.one("acemux_redis_chunks_failed_total", "counter", "Chunks sent to Redis and not written: an error answer, or none.",
          static_cast<double>(r.failed()));
    RedisLink::Errors errs;
    auto add = [&errs](const RedisLink::Errors& e) {
        errs.readonly += e.readonly, errs.moved += e.moved, errs.ask += e.ask, errs.unknown += e.unknown, errs.other += e.other;
    };
    if (const RedisLink* seed = r.router().seed()) add(seed->errors());
    r.router().each([&](const RedisRouter::Node& n) {
        add(n.link.errors());
        if (n.sub) add(n.sub->errors());
    });
    p.head("acemux_redis_errors_total", "counter", "Error answers from Redis, by kind (READONLY: a replica; MOVED, ASK: "
                                                   "another node's hash slot; unknown_command: Redis too old).");
    for (auto [kind, n] : {std::pair{"readonly", errs.readonly}, {"moved", errs.moved}, {"ask", errs.ask},
                           {"unknown_command", errs.unknown}, {"other", errs.other}})
        p.value("acemux_redis_errors_total", static_cast<double>(n), label("kind", kind));
    p.one("acemux_log_lines_dropped_total", "counter", "Log lines lost because the log could not keep up.",
          static_cast<double>(d.reactor().log().dropped()));
    return p.out;
}

std::string status_html(const Daemon& d) {
    Millis now = d.reactor().now();
    const Streams& sm = d.streams();
    char buf[512];
    std::string h = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">"
                    "<title>acemux</title><style>body{font:14px sans-serif;margin:1em}table{border-collapse:collapse;"
                    "margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
                    "th{background:#eee}</style></head><body>";
    std::snprintf(buf, sizeof buf, "<h1>acemux %s</h1><p>up %.0f s &middot; %zu streams &middot; %zu players</p>",
                  ACEMUX_VERSION, seconds(now - d.started_at()), sm.streams().size(), sm.player_count());
    h += buf;
    if (d.cluster().enabled()) {
        std::string alive;
        for (auto& n : d.cluster().alive()) alive += (alive.empty() ? "" : ", ") + html_escape(n);
        h += "<p>cluster: this instance is <b>" + html_escape(d.cluster().instance()) + "</b>; instances alive: " + alive + "</p>";
    }
    h += "<h2>Streams</h2><table><tr><th>id</th><th>engine</th><th>state</th><th>up</th><th>Mbit/s in</th>"
         "<th>Mbit/s out</th><th>players</th><th>engine status</th><th>peers</th><th>KiB/s down</th>"
         "<th>MB downloaded</th></tr>";
    for (auto& [k, s] : sm.streams()) {
        const EngineStatus& es = s->engine_status();
        std::string role = s->role() == Follow::Role::solo ? ""
                           : s->role() == Follow::Role::owner ? " (owner)"
                                                              : " (follows " + html_escape(s->owner()) + ")";
        std::snprintf(buf, sizeof buf, "<td>%s%s</td><td>%.0f s</td><td>%.2f</td><td>%.2f</td><td>%zu</td>",
                      Stream::state_name(s->state()), role.c_str(), seconds(now - s->created_at()),
                      s->byte_rate() * 8 / 1e6, s->out_rate() * 8 / 1e6, s->player_count() + s->hls().viewer_count());
        std::string named = s->name().empty() ? html_escape(s->id()) : html_escape(s->name()) + " <small>" + html_escape(s->id()) + "</small>";
        if (s->live_id() != s->id()) named += " <small>playing its backup " + html_escape(s->live_id()) + "</small>";
        h += "<tr><td><a href=\"/watch?id=" + html_escape(s->id()) + "\">" + named + "</a></td><td>" +
             html_escape(s->engine() ? s->engine()->cfg.name : "") + "</td>" + buf;
        if (es.at)
            std::snprintf(buf, sizeof buf, "</td><td>%ld</td><td>%ld</td><td>%.1f</td></tr>", es.peers, es.speed_down,
                          static_cast<double>(es.downloaded) / 1e6);
        else
            std::snprintf(buf, sizeof buf, "</td><td></td><td></td><td></td></tr>");
        h += "<td>" + html_escape(es.status) + buf;
    }
    if (!sm.ended().empty()) {
        h += "</table><h2>Ended</h2><table><tr><th>id</th><th>engine</th><th>ago</th><th>why</th></tr>";
        for (auto it = sm.ended().rbegin(); it != sm.ended().rend(); ++it) {
            std::snprintf(buf, sizeof buf, "<td>%.0f s</td>", seconds(now - it->at));
            h += "<tr><td>" + html_escape(it->id) + "</td><td>" + html_escape(it->engine) + "</td>" + buf + "<td>" + html_escape(it->why) +
                 "</td></tr>";
        }
    }
    h += "</table><h2>Players</h2><table><tr><th>address</th><th>player</th><th>kind</th><th>stream</th><th>MB sent</th>"
         "<th>lag (chunks)</th><th>jumps</th></tr>";
    for (auto& [k, s] : sm.streams())
        for (auto& pp : s->players()) {
            const Player& c = *pp;
            std::snprintf(buf, sizeof buf, "<td>%.1f</td><td>%llu</td><td>%llu</td></tr>",
                          static_cast<double>(c.bytes_sent()) / 1e6,
                          static_cast<unsigned long long>(c.started() ? c.cursor().behind(s->ring()) : 0),
                          static_cast<unsigned long long>(c.jumps()));
            h += "<tr><td>" + html_escape(c.peer().str()) + "</td><td>" + html_escape(c.user_agent()) + "</td><td>ts</td><td>" +
                 html_escape(s->id().substr(0, 8)) + "&hellip;</td>" + buf;
        }
    for (auto& [k, s] : sm.streams())
        for (auto& [vk, v] : s->hls().viewers()) {
            std::snprintf(buf, sizeof buf, "<td>%.1f</td><td></td><td></td></tr>", static_cast<double>(v.bytes) / 1e6);
            h += "<tr><td>" + html_escape(v.peer.host()) + "</td><td>" + html_escape(v.user_agent) + "</td><td>hls</td><td>" +
                 html_escape(s->id().substr(0, 8)) + "&hellip;</td>" + buf;
        }
    h += "</table><h2>Engines</h2><table><tr><th>name</th><th>address</th><th>state</th><th>streams</th></tr>";
    for (auto& e : d.pool().engines()) {
        std::snprintf(buf, sizeof buf, "<td>%s</td><td>%d / %d</td></tr>",
                      !e->up ? "down" : e->usable(d.reactor().now()) ? "up" : "suspended", e->streams, e->cfg.max_streams);
        h += "<tr><td>" + html_escape(e->cfg.name) + "</td><td>" + html_escape(e->cfg.address()) + "</td>" + buf;
    }
    const RedisMirror& r = d.redis();
    std::snprintf(buf, sizeof buf, "</table><h2>Redis</h2><p>%s &middot; %llu chunks written &middot; %llu skipped</p>",
                  !r.enabled() ? "not configured" : r.connected() ? "connected" : "not connected",
                  static_cast<unsigned long long>(r.written()), static_cast<unsigned long long>(r.skipped()));
    h += buf;
    return h + "</body></html>\n";
}

} // namespace acemux
