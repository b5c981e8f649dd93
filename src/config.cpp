#include "acemux/config.hpp"

#include <optional>

#include "acemux/file.hpp"
#include "acemux/http_client.hpp"
#include "acemux/redis_mirror.hpp"
#include "acemux/m3u.hpp"

#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>
#include <strings.h>
#include <toml++/toml.h>

namespace acemux {

namespace {

// One key of a table: a setter that checks the node and stores it, or returns
// a message describing what was wrong.
struct Problem {
    std::string msg;                // empty: no problem
    const toml::node* at = nullptr; // where to point; the key's value when null
    Problem() = default;
    Problem(std::string m, const toml::node* n = nullptr) : msg(std::move(m)), at(n) {}
    Problem(const char* m) : msg(m) {}
};

struct Field {
    const char* key;
    std::function<Problem(const toml::node&)> set;
};

std::string where(const std::string& path, const toml::source_region& r) {
    return path + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column) + ": ";
}

const char* type_name(const toml::node& n) {
    switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
    }
}

template <typename T>
Field integer(const char* key, T& out, long long lo, long long hi) {
    return {key, [&out, key, lo, hi](const toml::node& n) -> Problem {
                if (!n.is_integer()) return std::string(key) + " must be an integer, not " + type_name(n);
                long long v = n.as_integer()->get();
                if (v < lo || v > hi)
                    return std::string(key) + " = " + std::to_string(v) + " is out of range (" +
                           std::to_string(lo) + " to " + std::to_string(hi) + ")";
                out = static_cast<T>(v);
                return {};
            }};
}

// Durations are written in seconds, fractions allowed: keepalive_interval = 0.5
Field seconds(const char* key, Millis& out, double lo, double hi) {
    return {key, [&out, key, lo, hi](const toml::node& n) -> Problem {
                if (!n.is_number()) return std::string(key) + " must be a number of seconds, not " + type_name(n);
                double v = n.value<double>().value_or(0);
                if (!(v >= lo && v <= hi)) {
                    char m[160];
                    std::snprintf(m, sizeof m, " = %g is out of range (%g to %g seconds)", v, lo, hi);
                    return key + std::string(m);
                }
                out = static_cast<Millis>(std::llround(v * 1000));
                return {};
            }};
}

Field string(const char* key, std::string& out, std::vector<std::string> allowed = {}) {
    return {key, [&out, key, allowed](const toml::node& n) -> Problem {
                if (!n.is_string()) return std::string(key) + " must be a string, not " + type_name(n);
                std::string v = n.as_string()->get();
                if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
                    std::string m = std::string(key) + " = \"" + v + "\" is not one of";
                    for (auto& a : allowed) m += " \"" + a + "\"";
                    return m;
                }
                out = v;
                return {};
            }};
}

struct Parser {
    const std::string& path;
    std::string err;

    bool fail(const toml::source_region& r, const std::string& msg) {
        err = where(path, r) + msg;
        return false;
    }

    // Applies fields to a table; any key not listed is an error.
    bool table(const toml::table& t, const std::string& name, const std::vector<Field>& fields) {
        for (auto&& [k, v] : t) {
            std::string_view key = k.str(); // (clang 14 cannot capture a structured binding)
            auto f = std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return key == f.key; });
            if (f == fields.end()) return fail(k.source(), "unknown key \"" + std::string(k.str()) + "\" in " + name);
            Problem m = f->set(v);
            if (!m.msg.empty()) return fail((m.at ? m.at : &v)->source(), m.msg);
        }
        return true;
    }

    bool subtable(const toml::table& root, const char* name, const std::vector<Field>& fields) {
        const toml::node* n = root.get(name);
        if (!n) return true;
        if (!n->is_table()) return fail(n->source(), std::string(name) + " must be a table ([" + name + "])");
        return table(*n->as_table(), std::string("[") + name + "]", fields);
    }
};

// A congestion control's name as the kernel spells them (TCP_CA_NAME_MAX is
// 16 with its NUL), and one this kernel lets the daemon choose: asked of it
// here, so that -t and a reload say so at the line.
Problem parse_congestion(const toml::node& n, std::string& out) {
    if (!n.is_string()) return std::string("tcp_congestion must be a string, not ") + type_name(n);
    const std::string& v = n.as_string()->get();
    bool name = !v.empty() && v.size() <= 15 &&
                std::all_of(v.begin(), v.end(), [](char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'; });
    if (!name)
        return "tcp_congestion = \"" + v + "\" is not a congestion control's name (such as \"cubic\" or \"bbr\"; "
               "leave it out for the system's)";
    if (std::string why; !congestion_usable(v, why)) return why;
    out = v;
    return {};
}

Problem parse_listen(const toml::node& n, Config& c) {
    std::vector<std::string> out;
    auto add = [&](const toml::node& e) -> Problem {
        if (!e.is_string()) return {std::string("listen entries must be strings, not ") + type_name(e), &e};
        SockAddr a;
        std::string why;
        if (!parse_hostport(e.as_string()->get(), a, why))
            return {"listen = \"" + e.as_string()->get() + "\": " + why, &e};
        out.push_back(e.as_string()->get());
        c.listen_addrs.push_back(a);
        return {};
    };
    c.listen_addrs.clear();
    if (n.is_array()) {
        for (auto& e : *n.as_array())
            if (Problem pr = add(e); !pr.msg.empty()) return pr;
    } else if (Problem pr = add(n); !pr.msg.empty()) {
        return pr;
    }
    if (out.empty()) return "listen needs at least one address";
    c.listen = out;
    return {};
}

bool parse_engines(Parser& p, const toml::node& n, Config& c) {
    if (!n.is_array_of_tables()) return p.fail(n.source(), "engine must be written as [[engine]] tables");
    for (auto& e : *n.as_array()) {
        EngineConfig ec;
        std::string api = "json";
        std::vector<Field> fields{string("name", ec.name), string("host", ec.host),
                                  integer("port", ec.port, 1, 65535), integer("max_streams", ec.max_streams, 1, 1000),
                                  string("api", api, {"json", "direct"})};
        if (!p.table(*e.as_table(), "[[engine]]", fields)) return false;
        const toml::node* host = e.as_table()->get("host");
        if (!valid_host(ec.host))
            return p.fail((host ? host : &e)->source(),
                          "engine host \"" + ec.host + "\" is neither an IP address nor a host name");
        ec.direct = api == "direct";
        if (ec.name.empty()) ec.name = ec.address();
        for (auto& other : c.engines) {
            if (other.name == ec.name) return p.fail(e.source(), "engine name \"" + ec.name + "\" is used twice");
            // Two entries for one engine would double its max_streams.
            if (strcasecmp(other.address().c_str(), ec.address().c_str()) == 0)
                return p.fail(e.source(), "engine \"" + ec.name + "\" has the address of engine \"" + other.name + "\" (" +
                                              ec.address() + "): one [[engine]] per engine");
        }
        c.engines.push_back(ec);
    }
    return true;
}

Problem parse_cidrs(const toml::node& n, std::vector<Cidr>& out, const char* key) {
    if (!n.is_array()) return std::string(key) + " must be an array of \"address/bits\" strings";
    out.clear();
    for (auto& e : *n.as_array()) {
        Cidr c;
        if (!e.is_string() || !parse_cidr(e.as_string()->get(), c))
            return {std::string(key) + " entries must be networks like \"192.168.0.0/16\" or \"fd00::/8\"", &e};
        out.push_back(c);
    }
    return {};
}

// Each "host[:port]" (a name, an IPv4 address or [IPv6]; port 26379 when not given); [] none.
Problem parse_sentinels(const toml::node& n, std::vector<std::string>& out) {
    if (!n.is_array()) return "sentinels must be an array of \"host:port\" strings";
    out.clear();
    for (auto& e : *n.as_array()) {
        if (!e.is_string()) return {std::string("sentinels entries must be \"host:port\" strings, not ") + type_name(e), &e};
        std::string s = e.as_string()->get();
        if (!s.empty() && (s[0] == '[' ? s.back() == ']' : s.find(':') == std::string::npos)) s += ":26379";
        RedisLink::Target t;
        std::string why;
        if (s.empty() || s.find_first_of("/@?") != std::string::npos || !RedisLink::parse_url("redis://" + s, t, why))
            return {"sentinels entry \"" + e.as_string()->get() + "\" is not host:port" + (why.empty() ? "" : " (" + why + ")"), &e};
        out.push_back(s);
    }
    return {};
}

// Sentinels and the master's name go together; the url then says only the
// password and database, and names the master as its host so that it
// cannot be read as a second address to use. A Redis Cluster is named by
// one node's url.
bool check_sentinels(Parser& p, const toml::table& t, const toml::source_region& whole, const RedisConfig& r) {
    auto at = [&](const char* name) { return t.get(name) ? t.get(name)->source() : whole; };
    if (r.sentinels.empty() != r.master.empty())
        return p.fail(at(r.master.empty() ? "sentinels" : "master"),
                      r.master.empty() ? "sentinels needs master: the name the sentinels know the master by"
                                       : "master needs sentinels: the \"host:port\" of each sentinel to ask");
    RedisLink::Target u;
    std::string why;
    RedisLink::parse_url(r.url, u, why);
    // A Redis Cluster has no databases and no sentinels; its nodes name each other by address.
    if (r.cluster && !r.sentinels.empty())
        return p.fail(at("cluster"), "cluster and sentinels do not go together: a Redis Cluster fails over by itself");
    if (r.cluster && (r.url.empty() || !u.unix_path.empty()))
        return p.fail(at(r.url.empty() ? "cluster" : "url"), "cluster needs url = \"redis://[:password@]host:port\" naming one of its nodes");
    if (r.cluster && u.db != 0) return p.fail(at("url"), "a Redis Cluster has only database 0: drop the /" + std::to_string(u.db) + " from url");
    if (r.sentinels.empty() || r.url.empty()) return true;
    if (!u.unix_path.empty() || u.host != r.master)
        return p.fail(at("url"), "with sentinels, url gives only the password and database and names the master: "
                                 "redis://[:password@]" + r.master + "[/db]");
    return true;
}

// A 40-hexadecimal id (an acestream:// link's too), in lower case: one spelling everywhere after.
bool channel_id(std::string s, std::string& out) {
    s = pasted_id(s);
    if (!is_content_id(s)) return false;
    out = s;
    return true;
}

bool parse_channels(Parser& p, const toml::node& n, Config& c) {
    if (!n.is_array_of_tables()) return p.fail(n.source(), "channel must be written as [[channel]] tables");
    for (auto& e : *n.as_array()) {
        ChannelConfig ch;
        std::vector<std::string> ids;
        const toml::node* ids_at = nullptr;
        if (!p.table(*e.as_table(), "[[channel]]", {string("name", ch.name), string("id", ch.id),
                                                    string("group", ch.group), string("logo", ch.logo),
                                                    {"ids", [&](const toml::node& v) -> Problem {
                                                         ids_at = &v;
                                                         if (!v.is_array()) return "ids must be an array of content ids";
                                                         for (auto& x : *v.as_array()) {
                                                             std::string id;
                                                             if (!x.is_string() || !channel_id(x.as_string()->get(), id))
                                                                 return {"ids entries must be 40 hexadecimal characters", &x};
                                                             ids.push_back(id);
                                                         }
                                                         return {};
                                                     }}}))
            return false;
        const toml::node* id_at = e.as_table()->get("id");
        if (!ch.id.empty() || ids.empty()) {
            if (!channel_id(ch.id, ch.id))
                return p.fail((id_at ? id_at : &e)->source(),
                              ids_at ? "channel id must be 40 hexadecimal characters"
                                     : "channel id must be 40 hexadecimal characters (or give ids = [...])");
            ids.insert(ids.begin(), ch.id);
        }
        // The first is the channel's id; a repeated one is tried once.
        for (auto& id : ids)
            if (std::find(ch.ids.begin(), ch.ids.end(), id) == ch.ids.end()) ch.ids.push_back(id);
        ch.id = ch.ids.front();
        for (auto& other : c.channels)
            for (auto& id : ch.ids)
                if (std::find(other.ids.begin(), other.ids.end(), id) != other.ids.end())
                    return p.fail(e.source(), "content id " + id + " is in two channels (\"" + other.name + "\" and this one)");
        if (ch.name.empty()) ch.name = ch.id;
        c.channels.push_back(ch);
    }
    return true;
}

bool parse_playlists(Parser& p, const toml::node& n, Config& c) {
    if (!n.is_array_of_tables()) return p.fail(n.source(), "playlist must be written as [[playlist]] tables");
    for (auto& e : *n.as_array()) {
        PlaylistConfig pl;
        if (!p.table(*e.as_table(), "[[playlist]]", {string("source", pl.source), seconds("refresh", pl.refresh, 0, 86400 * 7),
                                                     string("ca_file", pl.ca_file), string("group", pl.group)}))
            return false;
        const toml::node* at = e.as_table()->get("source");
        Url u;
        bool web = pl.fetched();
        if (pl.source.empty())
            return p.fail(e.source(), "[[playlist]] needs source = \"/path/list.m3u\" or \"https://host/list.m3u\"");
        if (web && !parse_url(pl.source, u, true))
            return p.fail(at->source(), "source \"" + pl.source + "\" is not a valid http:// or https:// URL");
        if (!web && pl.source.find("://") != std::string::npos)
            return p.fail(at->source(), "source \"" + pl.source + "\": only files, http:// and https:// are fetched");
        if (!pl.ca_file.empty() && !u.tls)
            return p.fail(e.as_table()->get("ca_file")->source(), "ca_file is for https:// sources");
        for (auto& other : c.playlists)
            if (other.source == pl.source) return p.fail(at->source(), "playlist source \"" + pl.source + "\" is listed twice");
        c.playlists.push_back(pl);
    }
    return true;
}

} // namespace

bool valid_host(const std::string& h) {
    if (h.empty() || h.size() > 253) return false;
    in6_addr a;
    if (inet_pton(AF_INET6, h.c_str(), &a) == 1) return true;
    // RFC 1123 labels; '_' too, since Docker and Compose service names use it.
    size_t label = 0;
    for (char ch : h) {
        if (ch == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') return false;
        if (++label > 63) return false;
    }
    return h.front() != '-';
}


bool parse_config(const std::string& text, const std::string& path, Config& c, std::string& err) {
    Parser p{path, {}};
    toml::table root;
    try {
        root = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        err = where(path, e.source()) + std::string(e.description());
        return false;
    }
    c = Config{};
    c.path = path;
    // Loopback and private networks, IPv4 and IPv6: a home LAN, not the Internet.
    for (const char* net : {"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                            "::1/128", "fc00::/7", "fe80::/10"}) {
        Cidr cidr;
        parse_cidr(net, cidr);
        c.allow.push_back(cidr);
    }
    std::string level = "info";
    std::string zero_copy = "auto";
    double max_backlog_mib = 8, max_ring_mib = 32;
    int chunk_size = static_cast<int>(c.chunk_size), ring_chunks = static_cast<int>(c.ring_chunks);
    int wake_bytes = static_cast<int>(c.wake_bytes);
    std::optional<toml::source_region> cluster_at; // where [cluster] enabled = true was said
    bool ok = true;
    for (auto&& [k, v] : root) {
        std::string key(k.str());
        if (key == "server") {
            ok = p.subtable(root, "server", {
                {"listen", [&](const toml::node& n) { return parse_listen(n, c); }},
                integer("max_connections_per_ip", c.max_connections_per_ip, 0, 1000000),
                integer("max_connections", c.max_connections, 1, 1000000),
                {"tcp_congestion", [&](const toml::node& n) { return parse_congestion(n, c.tcp_congestion); }},
                seconds("header_timeout", c.header_timeout, 0.05, 3600),
                string("pidfile", c.pidfile), string("user", c.user), string("group", c.group),
                string("data_dir", c.data_dir)});
        } else if (key == "log") {
            ok = p.subtable(root, "log", {string("level", level, {"error", "warn", "info", "debug"}),
                                          string("target", c.log_target, {"stderr", "syslog"})});
        } else if (key == "stream") {
            ok = p.subtable(root, "stream", {
                integer("chunk_size", chunk_size, 188 * 8, 188 * 10000),
                integer("ring_chunks", ring_chunks, 4, 4096),
                seconds("ring_time", c.ring_time, 0, 600),
                integer("initial_behind", c.initial_behind, 0, 4095),
                seconds("join_behind", c.join_behind, 0, 60),
                integer("catchup_behind", c.catchup_behind, 1, 4095),
                integer("wake_bytes", wake_bytes, 188, 16 * 1024 * 1024),
                seconds("wake_delay", c.wake_delay, 0.001, 1),
                seconds("keepalive_interval", c.keepalive_interval, 0.05, 60),
                seconds("client_stall_timeout", c.client_stall_timeout, 0.1, 3600),
                integer("client_sndbuf", c.client_sndbuf, 0, 64 * 1024 * 1024),
                string("zero_copy", zero_copy, ZeroCopy::mode_names()),
                integer("zero_copy_from", c.zero_copy_from, 0, 1000000),
                seconds("grace_period", c.grace_period, 0, 3600),
                seconds("connect_timeout", c.connect_timeout, 0.1, 300),
                seconds("answer_timeout", c.answer_timeout, 0.1, 600),
                seconds("no_data_timeout", c.no_data_timeout, 0.1, 3600),
                seconds("failover_timeout", c.failover_timeout, 0.1, 3600),
                seconds("no_peers_timeout", c.no_peers_timeout, 1, 3600)});
            if (ok) {
                const toml::table& t = *v.as_table();
                const toml::source_region whole = v.source();
                auto at = [&](const char* name) { return t.get(name) ? t.get(name)->source() : whole; };
                if (chunk_size % 188) ok = p.fail(at("chunk_size"), "chunk_size must be a multiple of 188 (a TS packet)");
                else if (c.catchup_behind > ring_chunks - 2)
                    ok = p.fail(at("catchup_behind"), "catchup_behind must be at most ring_chunks - 2 (" +
                                                          std::to_string(ring_chunks - 2) +
                                                          "): the chunk a player jumps from must still be in the ring");
                else if (c.ring_time > 0 && c.ring_time <= c.join_behind)
                    ok = p.fail(at("ring_time"), "ring_time must be more than join_behind (" +
                                                     std::to_string(c.join_behind) + " ms): a player joins that far back");
                else if (c.initial_behind >= c.catchup_behind)
                    ok = p.fail(at("initial_behind"), "initial_behind must be less than catchup_behind (" +
                                                          std::to_string(c.catchup_behind) + ")");
            }
        } else if (key == "cluster") {
            ok = p.subtable(root, "cluster", {
                {"enabled", [&c](const toml::node& n) -> Problem {
                     if (!n.is_boolean()) return std::string("enabled must be true or false, not ") + type_name(n);
                     c.cluster = n.as_boolean()->get();
                     return {};
                 }},
                string("instance", c.instance),
                seconds("lease", c.lease, 1, 60)});
            if (ok && c.cluster) cluster_at = v.source();
        } else if (key == "hls") {
            ok = p.subtable(root, "hls", {
                seconds("target_duration", c.target_duration, 1, 10),
                integer("window", c.window, 3, 30),
                seconds("manifest_wait", c.manifest_wait, 1, 120),
                {"max_ring_mib", [&](const toml::node& n) -> Problem {
                     if (!n.is_number()) return Problem(std::string("max_ring_mib must be a number, not ") + type_name(n));
                     max_ring_mib = n.value<double>().value_or(0);
                     if (!(max_ring_mib >= 1 && max_ring_mib <= 4096)) return "max_ring_mib is out of range (1 to 4096)";
                     return {};
                 }}});
        } else if (key == "tuner") {
            ok = p.subtable(root, "tuner", {
                string("name", c.tuner_name), integer("count", c.tuner_count, 0, 1000),
                {"device_id", [&](const toml::node& n) -> Problem {
                     if (!n.is_string()) return Problem(std::string("device_id must be a string, not ") + type_name(n));
                     c.device_id = n.value<std::string>().value_or("");
                     bool hex8 = c.device_id.size() == 8 &&
                                 c.device_id.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
                     if (!c.device_id.empty() && !hex8)
                         return "device_id must be 8 hexadecimal characters (or empty: derived from name)";
                     return {};
                 }}});
        } else if (key == "engines") {
            ok = p.subtable(root, "engines", {seconds("health_interval", c.health_interval, 0.05, 3600),
                                              integer("health_failures", c.health_failures, 1, 100),
                                              seconds("health_timeout", c.health_timeout, 0.05, 60),
                                              {"allow_other_hosts", [&c](const toml::node& n) -> Problem {
                                                   if (!n.is_boolean())
                                                       return std::string("allow_other_hosts must be true or false, not ") +
                                                              type_name(n);
                                                   c.allow_other_hosts = n.as_boolean()->get();
                                                   return {};
                                               }}});
        } else if (key == "engine") {
            ok = parse_engines(p, v, c);
        } else if (key == "channel") {
            ok = parse_channels(p, v, c);
        } else if (key == "playlist") {
            ok = parse_playlists(p, v, c);
        } else if (key == "access") {
            ok = p.subtable(root, "access", {
                {"allow", [&](const toml::node& n) { return parse_cidrs(n, c.allow, "allow"); }},
                {"admin_allow", [&](const toml::node& n) { return parse_cidrs(n, c.admin_allow, "admin_allow"); }},
                string("token", c.token),
                integer("max_clients", c.max_clients, 0, 1000000),
                integer("max_clients_per_ip", c.max_clients_per_ip, 0, 1000000)});
        } else if (key == "redis") {
            ok = p.subtable(root, "redis", {
                {"url", [&](const toml::node& n) -> Problem {
                     if (!n.is_string()) return Problem(std::string("url must be a string, not ") + type_name(n));
                     c.redis.url = n.as_string()->get();
                     std::string why;
                     RedisMirror::Target t;
                     if (!c.redis.url.empty() && !RedisMirror::parse_url(c.redis.url, t, why)) return why;
                     return {};
                 }},
                string("prefix", c.redis.prefix),
                integer("ttl", c.redis.ttl, 1, 86400 * 7),
                integer("keep_chunks", c.redis.keep_chunks, 4, 100000),
                {"max_backlog_mib", [&](const toml::node& n) -> Problem {
                     if (!n.is_number()) return Problem(std::string("max_backlog_mib must be a number, not ") + type_name(n));
                     max_backlog_mib = n.value<double>().value_or(0);
                     if (!(max_backlog_mib >= 0.0625 && max_backlog_mib <= 1024))
                         return "max_backlog_mib is out of range (0.0625 to 1024)";
                     return {};
                 }},
                seconds("resume_max_age", c.redis.resume_max_age, 0, 86400),
                {"sentinels", [&](const toml::node& n) { return parse_sentinels(n, c.redis.sentinels); }},
                string("master", c.redis.master),
                {"cluster", [&c](const toml::node& n) -> Problem {
                     if (!n.is_boolean()) return std::string("cluster must be true or false, not ") + type_name(n);
                     c.redis.cluster = n.as_boolean()->get();
                     return {};
                 }}});
            if (ok) ok = check_sentinels(p, *v.as_table(), v.source(), c.redis);
        } else {
            ok = p.fail(k.source(), "unknown section or key \"" + key + "\"");
        }
        if (!ok) break;
    }
    if (ok && cluster_at && !c.redis.enabled())
        ok = p.fail(*cluster_at, "[cluster] enabled needs [redis] url (or sentinels): the instances meet in Redis");
    if (!ok) {
        err = p.err;
        return false;
    }
    parse_log_level(level, c.log_level);
    ZeroCopy::parse_mode(zero_copy, c.zero_copy);
    for (auto& e : c.engines) e.allow_other_hosts = c.allow_other_hosts;
    c.chunk_size = static_cast<size_t>(chunk_size);
    c.ring_chunks = static_cast<size_t>(ring_chunks);
    c.wake_bytes = static_cast<size_t>(wake_bytes);
    c.redis.max_backlog = static_cast<size_t>(max_backlog_mib * 1024 * 1024);
    c.max_ring_bytes = static_cast<size_t>(max_ring_mib * 1024 * 1024);
    if (c.listen_addrs.empty())
        for (auto& l : c.listen) {
            SockAddr a;
            std::string why;
            parse_hostport(l, a, why);
            c.listen_addrs.push_back(a);
        }
    if (c.engines.empty()) {
        EngineConfig e;
        e.allow_other_hosts = c.allow_other_hosts;
        e.name = e.address();
        c.engines.push_back(e);
    }
    return true;
}

// Far above any real one (a channel list belongs in a playlist file), low
// enough that a wrong path to something huge fails at once.
constexpr size_t kMaxConfigBytes = 16 << 20;

bool load_config(const std::string& path, Config& out, std::string& err) {
    std::string text;
    if (std::string why = read_file(path, kMaxConfigBytes, text); !why.empty()) {
        err = path + ": " + why;
        return false;
    }
    return parse_config(text, path, out, err);
}

} // namespace acemux
