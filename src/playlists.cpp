#include "acemux/playlists.hpp"

#include <algorithm>
#include <cstring>

#include "acemux/file.hpp"

namespace acemux {

class Playlists::Source final : private HttpClient::Sink {
public:
    Source(Reactor& r, const PlaylistConfig& c, const TlsConfig* tls, Changed& changed)
        : r_(r), cfg_(c), changed_(changed), client_(r, *this), timer_(r, [this] { fetch(); }) {
        client_.set_tls(tls);
        state_.source = c.source;
    }
    const PlaylistConfig& cfg() const { return cfg_; }
    void reconfigure(const PlaylistConfig& c) {
        cfg_ = c;
        if (!client_.active()) schedule();
    }
    void fetch() {
        timer_.stop();
        if (!cfg_.fetched()) return read_local();
        Url u;
        if (!parse_url(cfg_.source, u, true)) return failed("not a valid URL"); // checked with the config
        body_.clear();
        status_ = 0;
        client_.get(u, kConnect, kAnswer, kBody);
    }
    void start() { timer_.start(0); } // from the loop: the first list arrives as later ones do
    const M3uList* list() const { return state_.have ? &list_ : nullptr; }
    const State& state() const { return state_; }

private:
    // A local file is read whole, on the loop: a playlist is small, and
    // reading it costs less than a log line's write to a slow disk.
    void read_local() {
        std::string text;
        if (std::string why = read_file(cfg_.source, kMaxBytes, text); !why.empty()) return failed(why);
        got(text);
    }
    bool on_status(int status, const std::string&) override {
        status_ = status;
        return status == 200;
    }
    bool on_body(const uint8_t* at, size_t n) override {
        if (body_.size() + n > kMaxBytes) return too_big_ = true, false;
        body_.append(reinterpret_cast<const char*>(at), n);
        return true;
    }
    void on_end(const std::string& error) override {
        if (too_big_) return too_big_ = false, failed("larger than 8 MiB");
        if (status_ && status_ != 200) return failed("HTTP " + std::to_string(status_));
        if (!error.empty()) return failed(error);
        got(body_);
        body_.clear();
        body_.shrink_to_fit();
    }

    void got(const std::string& text) {
        size_t hash = std::hash<std::string>()(text);
        if (state_.have && hash == hash_) {
            if (!state_.error.empty()) r_.log().info("playlist %s: fetched again; unchanged", cfg_.source.c_str());
            state_.error.clear();
            return schedule();
        }
        M3uList l = parse_m3u(text, cfg_.source);
        // An error page, a moved list or a file caught half-written answers
        // too: a list with no link does not replace a good one.
        if (l.entries.empty())
            return failed(text.find("#EXTM3U") == std::string::npos ? "not an M3U playlist (no #EXTM3U and no links)"
                                                                     : "no AceStream link in it");
        state_.error.clear();
        schedule();
        for (auto& p : l.problems) r_.log().warn("%s", p.c_str());
        if (l.skipped > l.problems.size())
            r_.log().warn("playlist %s: %zu more entries skipped", cfg_.source.c_str(), l.skipped - l.problems.size());
        r_.log().info("playlist %s: %zu entries imported, %zu skipped", cfg_.source.c_str(), l.entries.size(), l.skipped);
        hash_ = hash;
        list_ = std::move(l);
        state_.have = true;
        state_.entries = list_.entries.size();
        state_.skipped = list_.skipped;
        state_.fetched = r_.now();
        changed_();
    }
    void failed(const std::string& why) {
        bool said = !state_.error.empty();
        state_.error = why;
        schedule();
        if (said) return;
        if (state_.have)
            r_.log().warn("playlist %s: cannot fetch it (%s); keeping the last good list of %zu entries", cfg_.source.c_str(),
                          why.c_str(), list_.entries.size());
        else
            r_.log().warn("playlist %s: cannot fetch it (%s); its channels are missing until it can be", cfg_.source.c_str(),
                          why.c_str());
    }
    // A source that failed is tried again sooner (a minute at most), so a
    // daemon started before the network is up gets its list.
    void schedule() {
        Millis next = cfg_.refresh;
        if (!state_.error.empty() || !state_.have) next = next ? std::min<Millis>(next, 60000) : 60000;
        if (next) timer_.start(next);
    }

    Reactor& r_;
    PlaylistConfig cfg_;
    Changed& changed_;
    HttpClient client_;
    Timer timer_;
    std::string body_;
    size_t hash_ = 0; // of the last good list as fetched, to tell a change
    int status_ = 0;
    bool too_big_ = false;
    M3uList list_;
    State state_;
};

Playlists::Playlists(Reactor& r, Changed changed) : r_(r), changed_(std::move(changed)) {}
Playlists::~Playlists() = default;

bool Playlists::configure(const std::vector<PlaylistConfig>& c, std::string& err) {
    // The CAs an https source trusts; an http:// one gets the system's
    // when they are there, for a redirect to https (common).
    for (auto& pc : c) {
        if (!pc.fetched()) continue;
        bool https = pc.https();
        std::string ca = pc.ca_file.empty() ? TlsConfig::kSystemCa : pc.ca_file;
        if (tls_.count(ca)) continue;
        auto t = std::make_unique<TlsConfig>();
        std::string why;
        if (t->load(ca, why)) tls_[ca] = std::move(t);
        else if (https) return err = "playlist " + pc.source + ": " + why, false;
    }
    std::list<std::unique_ptr<Source>> next;
    for (auto& pc : c) {
        auto same = std::find_if(sources_.begin(), sources_.end(), [&](auto& s) {
            return s->cfg().source == pc.source && s->cfg().ca_file == pc.ca_file;
        });
        if (same != sources_.end()) {
            (*same)->reconfigure(pc);
            next.push_back(std::move(*same));
            sources_.erase(same);
            continue;
        }
        auto ca = tls_.find(pc.ca_file.empty() ? TlsConfig::kSystemCa : pc.ca_file);
        const TlsConfig* tls = ca == tls_.end() ? nullptr : ca->second.get();
        next.push_back(std::make_unique<Source>(r_, pc, tls, changed_));
        next.back()->start();
    }
    bool dropped = !sources_.empty();
    sources_ = std::move(next);
    if (dropped) changed_();
    return true;
}

void Playlists::refresh() {
    for (auto& s : sources_) s->fetch();
}

std::vector<Channels::Imported> Playlists::lists() const {
    std::vector<Channels::Imported> v;
    for (auto& s : sources_)
        if (s->list()) v.push_back({&s->cfg(), s->list()});
    return v;
}

std::vector<Playlists::State> Playlists::states() const {
    std::vector<State> v;
    for (auto& s : sources_) v.push_back(s->state());
    return v;
}

} // namespace acemux
