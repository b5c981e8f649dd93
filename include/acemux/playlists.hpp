// The [[playlist]] sources: each fetched at start, every `refresh` and on
// SIGHUP, from a file or over http(s) on the reactor. A list that comes
// whole and parses replaces the source's last one; one that cannot be
// fetched leaves the last good list in place and is said once until a
// fetch works again. Malformed entries are skipped, each said with its
// source:line, the rest imported.
#pragma once
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "acemux/channels.hpp"
#include "acemux/http_client.hpp"
#include "acemux/tls.hpp"

namespace acemux {

class Playlists {
public:
    using Changed = std::function<void()>; // a source's list changed: the channels are built again
    Playlists(Reactor& r, Changed changed);
    ~Playlists();

    // The config's sources: those kept keep their lists; new ones are
    // fetched now. False with `err` when a CA file cannot be read.
    bool configure(const std::vector<PlaylistConfig>& c, std::string& err);
    void refresh(); // every source now (SIGHUP)
    std::vector<Channels::Imported> lists() const; // each source's last good list

    struct State {
        std::string source, error; // error: the last fetch's, "" when it worked
        size_t entries = 0, skipped = 0;
        bool have = false;         // a good list came once
        Millis fetched = 0;        // when the last good list came (the loop's clock)
    };
    std::vector<State> states() const;

    // A list past these is cut: parsing it and building its channels holds
    // the loop (5,000 entries take a few ms here, 300,000 over a second).
    static constexpr size_t kMaxBytes = 8 << 20;
    static constexpr Millis kConnect = 10000, kAnswer = 20000, kBody = 60000;

private:
    class Source;
    Reactor& r_;
    Changed changed_;
    std::map<std::string, std::unique_ptr<TlsConfig>> tls_; // by CA file, read once
    std::list<std::unique_ptr<Source>> sources_;
};

} // namespace acemux
