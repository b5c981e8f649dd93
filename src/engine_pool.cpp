#include "acemux/engine_pool.hpp"

#include "acemux/http.hpp"
#include "acemux/json.hpp"

namespace acemux {

EnginePool::EnginePool(Reactor& r, const EnginesConfig& c) : r_(r), timer_(r, [this] { check_all(); }), checks_(r) { reconfigure(c); }

void EnginePool::reconfigure(const EnginesConfig& c) {
    std::vector<std::shared_ptr<Engine>> next;
    for (auto& ec : c.engines) {
        std::shared_ptr<Engine> e;
        for (auto& old : engines_)
            if (!old->removed && old->cfg.name == ec.name && old->cfg.address() == ec.address()) e = old;
        if (!e) {
            e = std::make_shared<Engine>();
            if (!engines_.empty()) r_.log().info("engine %s: added", ec.name.c_str());
        }
        e->cfg = ec;
        next.push_back(std::move(e));
    }
    for (auto& old : engines_)
        if (std::find(next.begin(), next.end(), old) == next.end()) {
            old->removed = true; // streams keep their lease until they move to another engine or end
            r_.log().info("engine %s: removed from the config (%d streams on it)", old->cfg.name.c_str(), old->streams);
        }
    engines_ = std::move(next);
    interval_ = c.health_interval;
    failures_ = c.health_failures;
    timeout_ = c.health_timeout;
    timer_.start(0, interval_);
}

EngineLease EnginePool::pick(const Engine* avoid) {
    std::shared_ptr<Engine> best;
    size_t n = engines_.size();
    for (int pass = 0; pass < 2 && !best; pass++) {
        for (size_t k = 0; k < n; k++) {
            auto& e = engines_[(turn_ + k) % n];
            if (!e->usable(r_.now()) || e->load() >= e->cfg.max_streams) continue;
            if (pass == 0 && e.get() == avoid) continue;
            if (!best || e->load() < best->load()) best = e;
        }
    }
    if (!best) return EngineLease();
    turn_ = (turn_ + 1) % std::max<size_t>(n, 1);
    return EngineLease(best);
}

bool EnginePool::other_usable(const Engine* e) const {
    for (auto& o : engines_)
        if (o.get() != e && !o->removed && o->usable(r_.now()) && o->load() < o->cfg.max_streams) return true;
    return false;
}

EngineLease EnginePool::pick_uncounted() {
    std::shared_ptr<Engine> best;
    for (auto& e : engines_)
        if (e->usable(r_.now()) && !e->removed && (!best || e->load() < best->load())) best = e;
    return best ? EngineLease(best, false) : EngineLease();
}

void EnginePool::suspend(const std::string& name, Millis ms, const std::string& why) {
    for (auto& e : engines_)
        if (e->cfg.name == name) {
            e->suspended_until = r_.now() + ms;
            e->suspended_why = why;
            r_.log().warn("engine %s: %s; no new streams for %.0f s", name.c_str(), why.c_str(),
                          static_cast<double>(ms) / 1000.0);
        }
}

void EnginePool::check_all() {
    for (auto& e : engines_) check(e);
}

void EnginePool::check(const std::shared_ptr<Engine>& e) {
    std::weak_ptr<Engine> weak = e;
    checks_.get(version_url(e->cfg), timeout_,
                [this, weak](int status, const std::string& body, const std::string& err) {
                    auto e = weak.lock();
                    if (!e || e->removed) return;
                    if (err.empty() && status / 100 == 2) {
                        if (Json j = json_parse(body)) {
                            cJSON* res = cJSON_GetObjectItemCaseSensitive(j.get(), "result");
                            cJSON* v = res ? cJSON_GetObjectItemCaseSensitive(res, "version") : nullptr;
                            if (cJSON_IsString(v)) e->version = printable(v->valuestring, 64);
                        }
                        if (!e->up) r_.log().info("engine %s: up (version %s)", e->cfg.name.c_str(), e->version.c_str());
                        e->up = true;
                        e->misses = 0;
                        return;
                    }
                    std::string why = err.empty() ? "HTTP " + std::to_string(status) : err;
                    if (++e->misses >= failures_ && e->up) {
                        e->up = false;
                        r_.log().warn("engine %s: down after %d failed health checks (%s)", e->cfg.name.c_str(),
                                      e->misses, why.c_str());
                    } else if (e->up) {
                        r_.log().debug("engine %s: health check failed (%s)", e->cfg.name.c_str(), why.c_str());
                    }
                });
}

} // namespace acemux
