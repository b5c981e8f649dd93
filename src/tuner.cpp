#include "acemux/tuner.hpp"

#include <cstdio>

#include "acemux/json.hpp"
#include "acemux/playlist.hpp"

namespace acemux {

int tuner_count(const Config& c) {
    if (c.tuner_count > 0) return c.tuner_count;
    int n = 0;
    for (auto& e : c.engines) n += e.max_streams;
    return n;
}

// FNV-1a of the name: stable, and different for two instances named apart.
std::string tuner_device_id(const Config& c) {
    if (!c.device_id.empty()) return c.device_id;
    uint32_t h = 2166136261u;
    for (unsigned char ch : c.tuner_name) h = (h ^ ch) * 16777619u;
    char id[9];
    std::snprintf(id, sizeof id, "%08X", h);
    return id;
}

std::string tuner_discover(const Config& c, const std::string& base) {
    Json d = json_object();
    cJSON_AddStringToObject(d.get(), "FriendlyName", c.tuner_name.c_str());
    cJSON_AddStringToObject(d.get(), "Manufacturer", "acemux");
    // Plex and Jellyfin accept a device by these two (an HDHomeRun
    // CONNECT's); they change nothing in what is served.
    cJSON_AddStringToObject(d.get(), "ModelNumber", "HDTC-2US");
    cJSON_AddStringToObject(d.get(), "FirmwareName", "hdhomeruntc_atsc");
    cJSON_AddStringToObject(d.get(), "FirmwareVersion", "20200101");
    cJSON_AddStringToObject(d.get(), "DeviceID", tuner_device_id(c).c_str());
    cJSON_AddStringToObject(d.get(), "DeviceAuth", "acemux");
    cJSON_AddStringToObject(d.get(), "BaseURL", base.c_str());
    cJSON_AddStringToObject(d.get(), "LineupURL", (base + "/lineup.json").c_str());
    cJSON_AddNumberToObject(d.get(), "TunerCount", tuner_count(c));
    return json_text(d);
}

std::string tuner_lineup(const Config& c, const Channels& channels, const std::string& base) {
    Json list(cJSON_CreateArray());
    int number = 0;
    for (auto& ch : channels.all()) {
        cJSON* e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "GuideNumber", std::to_string(++number).c_str());
        cJSON_AddStringToObject(e, "GuideName", ch.name.c_str());
        cJSON_AddStringToObject(e, "URL", stream_url(c, base, ch).c_str());
        cJSON_AddItemToArray(list.get(), e);
    }
    return json_text(list);
}

std::string tuner_lineup_status() {
    return "{\"ScanInProgress\":0,\"ScanPossible\":0,\"Source\":\"Cable\",\"SourceList\":[\"Cable\"]}\n";
}

} // namespace acemux
