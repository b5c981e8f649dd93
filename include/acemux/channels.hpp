// Every channel the daemon knows: the [[channel]] entries, then those the
// [[playlist]] sources imported, in their order. An id belongs to one
// channel (a [[channel]] first, else the first list naming it). Imported
// entries that name the same channel become one channel with backup ids:
// the same tvg-id, or else the same name in the same group.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "acemux/config.hpp"
#include "acemux/m3u.hpp"

namespace acemux {

class Channels {
public:
    struct Imported {
        const PlaylistConfig* source;
        const M3uList* list;
    };
    void set(const std::vector<ChannelConfig>& configured, const std::vector<Imported>& imported);

    const std::vector<ChannelConfig>& all() const { return all_; }
    bool empty() const { return all_.empty(); }
    // The channel one of whose ids this is (`key` "id" or "infohash"); nullptr: none.
    const ChannelConfig* find(const std::string& key, const std::string& id) const;
    // The guides (url-tvg) the imported lists name, each once.
    const std::vector<std::string>& guides() const { return guides_; }

private:
    std::vector<ChannelConfig> all_;
    std::unordered_map<std::string, size_t> by_id_; // "id:<hex>" / "infohash:<hex>" -> index in all_
    std::vector<std::string> guides_;
};

} // namespace acemux
