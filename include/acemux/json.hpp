#pragma once

// cJSON trees owned by a handle, so that every way out of a parser or a
// renderer frees them.

#include <cjson/cJSON.h>
#include <memory>
#include <string>

namespace acemux {

struct JsonFree {
    void operator()(cJSON* j) const { cJSON_Delete(j); }
};
using Json = std::unique_ptr<cJSON, JsonFree>;

inline Json json_parse(const std::string& text) { return Json(cJSON_Parse(text.c_str())); }
inline Json json_object() { return Json(cJSON_CreateObject()); }

// Compact, one line, as /stats and the engine API answer.
inline std::string json_text(const Json& j) {
    std::unique_ptr<char, decltype(&cJSON_free)> text(cJSON_PrintUnformatted(j.get()), cJSON_free);
    return std::string(text ? text.get() : "null") + "\n";
}

} // namespace acemux
