#include "acemux/daemon.hpp"

#include "acemux/access.hpp"
#include "acemux/front.hpp"
#include "acemux/playlist.hpp"
#include "acemux/stats.hpp"
#include "acemux/tuner.hpp"

#include <unistd.h>

namespace acemux {

Daemon::Daemon(Reactor& r, Config c)
    : r_(r), cfg_(std::move(c)), server_(r, cfg_), pool_(r, cfg_), redis_(r, cfg_.redis),
      cluster_(r, cfg_, redis_, pool_), streams_(r, cfg_, cfg_, cfg_, pool_, redis_, &cluster_),
      playlists_(r, [this] { build_channels(); }), started_(r.now()), shutdown_timer_(r, [this] { check_shutdown(); }) {
    apply_log_config();
    load_watch_page();
    streams_.use_channels(&channels_);
    build_channels();
    route("/", Audience::player, [this](const HttpRequest& q) {
        HttpResponse r = typed("text/html; charset=utf-8", front_page(cfg_, channels_, streams_, q));
        r.headers.emplace_back("Cache-Control", "no-cache");
        return r;
    });
    route("/health", Audience::anyone, [](const HttpRequest&) { return HttpResponse::text(200, "ok"); });
    route("/ace/getstream", Audience::player, [this](const HttpRequest& q) { return streams_.getstream(q); });
    route("/ace/manifest.m3u8", Audience::player, [this](const HttpRequest& q) { return streams_.manifest(q); });
    route("/ace/hls/", Audience::player, [this](const HttpRequest& q) { return streams_.segment(q); }, true);
    route("/watch", Audience::player, [this](const HttpRequest& q) {
        const std::string* given = q.param("id");
        std::string id = pasted_id(given ? *given : "");
        const ChannelConfig* ch = streams_.channel("id", id);
        return watch_.page(q, id, ch ? ch->name : "");
    });
    // Anyone: a script tag carries no token, and hls.js is no secret.
    route("/static/hls.min.js", Audience::anyone, [this](const HttpRequest& q) { return watch_.script(q); });
    // The engine's JSON API, for tools that speak it (/ace/getstream?format=json points here).
    route("/ace/stat/", Audience::player, [this](const HttpRequest& q) { return streams_.engine_stat(q); }, true);
    route("/ace/cmd/", Audience::player, [this](const HttpRequest& q) { return streams_.engine_command(q); }, true);
    route("/playlist.m3u", Audience::player, [this](const HttpRequest& q) {
        return playlist_m3u(cfg_, channels_, q);
    });
    // An HDHomeRun for Plex, Jellyfin and Emby. Those send no token, so with
    // [access] token set they are refused like any request without one:
    // the lineup would hand the token to whoever asks.
    route("/discover.json", Audience::player, [this](const HttpRequest& q) {
        return typed("application/json", tuner_discover(cfg_, base_url(q)));
    });
    route("/lineup.json", Audience::player, [this](const HttpRequest& q) {
        return typed("application/json", tuner_lineup(cfg_, channels_, base_url(q)));
    });
    route("/lineup_status.json", Audience::player, [](const HttpRequest&) {
        return typed("application/json", tuner_lineup_status());
    });
    route("/stats", Audience::admin, [this](const HttpRequest&) {
        return typed("application/json", stats_json(*this));
    });
    route("/metrics", Audience::admin, [this](const HttpRequest&) {
        return typed("text/plain; version=0.0.4; charset=utf-8", metrics_text(*this));
    });
    route("/status", Audience::admin, [this](const HttpRequest&) {
        return typed("text/html; charset=utf-8", status_html(*this));
    });
}

Daemon::~Daemon() = default;

bool Daemon::start(std::string& err) { return playlists_.configure(cfg_.playlists, err) && server_.listen(err); }

void Daemon::build_channels() { channels_.set(cfg_.channels, playlists_.lists()); }

HttpResponse Daemon::typed(const char* type, std::string body) {
    HttpResponse r;
    r.content_type = type;
    r.body = std::move(body);
    return r;
}

// Every route passes the access rules first; a refusal is logged once.
void Daemon::route(const char* path, Audience who, HttpServer::Handler h, bool prefix) {
    auto checked = [this, who, h = std::move(h)](const HttpRequest& q) {
        if (auto no = refuse_access(cfg_, q, who)) {
            r_.log().warn("refused %s %s: %s", q.peer.str().c_str(), q.path.c_str(),
                          no->body.substr(0, no->body.size() - 1).c_str());
            return *no;
        }
        return h(q);
    };
    if (prefix) server_.route_prefix(path, std::move(checked));
    else server_.route(path, std::move(checked));
}

void Daemon::load_watch_page() {
#ifndef ACEMUX_DATADIR
#define ACEMUX_DATADIR "/usr/local/share/acemux"
#endif
    std::string err;
    if (!cfg_.data_dir.empty()) {
        if (!watch_.load(cfg_.data_dir, err)) r_.log().warn("watch page: %s", err.c_str());
        return;
    }
    if (watch_.load(ACEMUX_DATADIR, err)) return;
    // Run from the source tree (make run, the tests): make deps put it in build/share.
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    std::string dir = n > 0 ? std::string(exe, static_cast<size_t>(n)) : "";
    dir = dir.substr(0, dir.rfind('/') + 1) + "build/share";
    std::string err2;
    if (!watch_.load(dir, err2)) r_.log().warn("watch page: %s", err.c_str());
}

void Daemon::apply_log_config() {
    r_.log().set_level(cfg_.log_level);
    if ((log_target_.empty() ? cfg_.log_target : log_target_) == "syslog") {
        if (!r_.log().use_syslog("acemux")) r_.log().warn("log: /dev/log is not reachable, logging to stderr");
    } else {
        r_.log().use_stderr();
    }
}

void Daemon::reload() {
    Config next;
    std::string err;
    if (!load_config(cfg_.path, next, err)) {
        r_.log().error("reload: %s; keeping the running configuration", err.c_str());
        return;
    }
    if (next.listen != cfg_.listen) r_.log().warn("reload: listen addresses change only on restart");
    next.listen = cfg_.listen;
    next.listen_addrs = cfg_.listen_addrs;
    if (next.tcp_congestion != cfg_.tcp_congestion) r_.log().warn("reload: tcp_congestion changes only on restart");
    next.tcp_congestion = cfg_.tcp_congestion;
    cfg_ = std::move(next);
    apply_log_config();
    load_watch_page();
    server_.reconfigure(cfg_);
    pool_.reconfigure(cfg_);
    redis_.reconfigure(cfg_.redis);
    cluster_.reconfigure(cfg_);
    streams_.reconfigure(cfg_, cfg_, cfg_);
    // Every source is fetched again too: SIGHUP is also "the list changed".
    if (!playlists_.configure(cfg_.playlists, err))
        r_.log().error("reload: %s; the playlist sources are unchanged", err.c_str());
    playlists_.refresh();
    build_channels();
    r_.log().info("reload: %s applied", cfg_.path.c_str());
}

// Engines are told to stop their sessions on the way out: the loop runs on
// until those commands are answered, for a second at most.
void Daemon::shutdown() {
    r_.log().info("shutting down");
    server_.close_all();
    streams_.close_all();
    shutdown_deadline_ = r_.now() + kStopDeadline;
    check_shutdown();
    if (!r_.stopping()) shutdown_timer_.start(10, 10);
}

void Daemon::check_shutdown() {
    if (streams_.stops_pending() && r_.now() < shutdown_deadline_) return;
    if (streams_.stops_pending()) r_.log().warn("%zu engine stop commands unanswered at exit", streams_.stops_pending());
    shutdown_timer_.stop();
    r_.stop();
}

} // namespace acemux
