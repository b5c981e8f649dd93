#include "acemux/stats.hpp"

#include <cjson/cJSON.h>
#include <memory>

#include "acemux/daemon.hpp"
#include "acemux/version.hpp"

namespace acemux {

namespace {
using Json = std::unique_ptr<cJSON, decltype(&cJSON_Delete)>;

double seconds(Millis ms) { return static_cast<double>(ms) / 1000.0; }

cJSON* client_json(const Client& c, const Ring& ring, Millis now) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "address", c.peer().str().c_str());
    cJSON_AddStringToObject(o, "user_agent", c.user_agent().c_str());
    cJSON_AddNumberToObject(o, "connected_s", seconds(now - c.connected_at()));
    cJSON_AddNumberToObject(o, "bytes", static_cast<double>(c.bytes_sent()));
    cJSON_AddNumberToObject(o, "lag_chunks", c.started() ? static_cast<double>(c.cursor().behind(ring)) : 0);
    cJSON_AddNumberToObject(o, "jumps", static_cast<double>(c.jumps()));
    cJSON_AddBoolToObject(o, "blocked", c.blocked());
    return o;
}

cJSON* session_json(const Session& s, Millis now) {
    cJSON* o = cJSON_CreateObject();
    const Ring& ring = s.ring();
    cJSON_AddStringToObject(o, "id", s.id().c_str());
    cJSON_AddStringToObject(o, "engine", s.engine() ? s.engine()->cfg.name.c_str() : "");
    cJSON_AddStringToObject(o, "state", Session::state_name(s.state()));
    cJSON_AddNumberToObject(o, "uptime_s", seconds(now - s.created_at()));
    cJSON_AddNumberToObject(o, "bytes_in", static_cast<double>(s.bytes_in()));
    cJSON_AddNumberToObject(o, "bitrate_in", s.byte_rate() * 8);
    uint64_t out_bytes = 0;
    for (auto& c : s.clients()) out_bytes += c.bytes_sent();
    cJSON_AddNumberToObject(o, "bytes_out", static_cast<double>(out_bytes));
    cJSON_AddNumberToObject(o, "ring_chunks", static_cast<double>(ring.head() - ring.first() + 1));
    cJSON_AddNumberToObject(o, "ring_size", static_cast<double>(ring.chunks()));
    cJSON_AddNumberToObject(o, "dropped_bytes", static_cast<double>(s.dropped_bytes()));
    cJSON_AddNumberToObject(o, "reconnects", static_cast<double>(s.reconnects()));
    cJSON_AddNumberToObject(o, "resumed_chunks", static_cast<double>(s.primed_chunks()));
    cJSON* clients = cJSON_AddArrayToObject(o, "clients");
    for (auto& c : s.clients())
        if (!c.dead()) cJSON_AddItemToArray(clients, client_json(c, ring, now));
    return o;
}
} // namespace

std::string stats_json(const Daemon& d) {
    Millis now = d.reactor().now();
    Json root(cJSON_CreateObject(), cJSON_Delete);
    cJSON_AddStringToObject(root.get(), "version", ACEMUX_VERSION);
    cJSON_AddNumberToObject(root.get(), "uptime_s", seconds(now - d.started_at()));

    cJSON* streams = cJSON_AddArrayToObject(root.get(), "streams");
    for (auto& [key, s] : d.sessions().sessions()) cJSON_AddItemToArray(streams, session_json(*s, now));

    cJSON* engines = cJSON_AddArrayToObject(root.get(), "engines");
    for (auto& e : d.pool().engines()) {
        cJSON* o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", e->cfg.name.c_str());
        cJSON_AddStringToObject(o, "address", e->cfg.addr.str().c_str());
        cJSON_AddStringToObject(o, "state", e->up ? "up" : "down");
        cJSON_AddNumberToObject(o, "streams", e->streams);
        cJSON_AddNumberToObject(o, "max_streams", e->cfg.max_streams);
        cJSON_AddStringToObject(o, "version", e->version.c_str());
        cJSON_AddItemToArray(engines, o);
    }

    const RedisMirror& r = d.redis();
    cJSON* redis = cJSON_AddObjectToObject(root.get(), "redis");
    cJSON_AddBoolToObject(redis, "enabled", r.enabled());
    cJSON_AddBoolToObject(redis, "connected", r.connected());
    cJSON_AddNumberToObject(redis, "chunks_written", static_cast<double>(r.written()));
    cJSON_AddNumberToObject(redis, "chunks_skipped", static_cast<double>(r.skipped()));
    cJSON_AddNumberToObject(redis, "bytes_written", static_cast<double>(r.bytes()));
    cJSON_AddNumberToObject(redis, "backlog_bytes", static_cast<double>(r.backlog()));
    cJSON_AddStringToObject(redis, "last_error", r.last_error().c_str());

    cJSON* totals = cJSON_AddObjectToObject(root.get(), "totals");
    cJSON_AddNumberToObject(totals, "streams", static_cast<double>(d.sessions().sessions().size()));
    cJSON_AddNumberToObject(totals, "clients", static_cast<double>(d.sessions().client_count()));
    cJSON_AddNumberToObject(totals, "connections", static_cast<double>(d.server().connections()));

    std::unique_ptr<char, decltype(&cJSON_free)> text(cJSON_PrintUnformatted(root.get()), cJSON_free);
    return std::string(text.get()) + "\n";
}

} // namespace acemux
