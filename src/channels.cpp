#include "acemux/channels.hpp"

#include <algorithm>
#include <cctype>

namespace acemux {

namespace {
std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}
} // namespace

void Channels::set(const std::vector<ChannelConfig>& configured, const std::vector<Imported>& imported) {
    all_.clear();
    by_id_.clear();
    guides_.clear();
    for (auto& ch : configured) {
        all_.push_back(ch);
        for (auto& id : ch.ids) by_id_.emplace(ch.key + ":" + id, all_.size() - 1);
    }
    // Entries of one channel across the lists: by tvg-id, else by group and name.
    std::unordered_map<std::string, size_t> same;
    for (auto& [source, list] : imported) {
        if (!list->url_tvg.empty() && std::find(guides_.begin(), guides_.end(), list->url_tvg) == guides_.end())
            guides_.push_back(list->url_tvg);
        for (auto& e : list->entries) {
            std::string id_key = e.key + ":" + e.id;
            if (by_id_.count(id_key)) continue; // a [[channel]]'s, or listed before
            std::string group = e.group.empty() ? source->group : e.group;
            std::string who = e.key + (e.tvg_id.empty() ? "\n" + lower(group) + "\n" + lower(e.name) : "\ttvg:" + e.tvg_id);
            auto [it, fresh] = same.emplace(who, all_.size());
            if (fresh) {
                ChannelConfig ch;
                ch.name = e.name, ch.id = e.id, ch.group = group, ch.logo = e.logo;
                ch.key = e.key, ch.tvg_id = e.tvg_id, ch.tvg_name = e.tvg_name, ch.source = source->source;
                all_.push_back(std::move(ch));
            }
            ChannelConfig& ch = all_[it->second];
            if (ch.logo.empty()) ch.logo = e.logo;
            ch.ids.push_back(e.id);
            by_id_.emplace(id_key, it->second);
        }
    }
}

const ChannelConfig* Channels::find(const std::string& key, const std::string& id) const {
    auto it = by_id_.find((key == "infohash" ? "infohash:" : "id:") + id);
    return it == by_id_.end() ? nullptr : &all_[it->second];
}

} // namespace acemux
