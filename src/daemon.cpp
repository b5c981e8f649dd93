#include "acemux/daemon.hpp"

#include "acemux/stats.hpp"

namespace acemux {

Daemon::Daemon(Reactor& r, Config c)
    : r_(r), cfg_(std::move(c)), server_(r, cfg_), pool_(r, cfg_), redis_(r, cfg_.redis),
      sessions_(r, cfg_, pool_, redis_), started_(r.now()) {
    apply_log_config();
    server_.route("/health", [](const HttpRequest&) { return HttpResponse::text(200, "ok"); });
    server_.route("/ace/getstream", [this](const HttpRequest& q) { return sessions_.getstream(q); });
    server_.route("/stats", [this](const HttpRequest&) {
        HttpResponse r;
        r.content_type = "application/json";
        r.body = stats_json(*this);
        return r;
    });
}

Daemon::~Daemon() = default;

bool Daemon::start(std::string& err) { return server_.listen(err); }

void Daemon::apply_log_config() {
    r_.log().set_level(cfg_.log_level);
    if (cfg_.log_target == "syslog") {
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
    cfg_ = std::move(next);
    apply_log_config();
    server_.reconfigure(cfg_);
    pool_.reconfigure(cfg_);
    redis_.reconfigure(cfg_.redis);
    sessions_.reconfigure(cfg_);
    r_.log().info("reload: %s applied", cfg_.path.c_str());
}

void Daemon::shutdown() {
    r_.log().info("shutting down");
    server_.close_all();
    sessions_.close_all();
    r_.stop();
}

} // namespace acemux
