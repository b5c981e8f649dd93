// The watch page: /watch?id=<content id> plays a stream in a browser with
// hls.js from /ace/manifest.m3u8. hls.js is not ours: make deps fetches the
// pinned release from the npm registry, make install puts it in the data
// directory, and acemux serves it from memory with caching headers, so the
// page works on a network without the Internet.
#pragma once
#include <string>

#include "acemux/http.hpp"

namespace acemux {

class WatchPage {
public:
    static constexpr const char* kScript = "hls.min.js";

    // Finds <dir>/hls.min.js (at start and on reload); false when it is not
    // there: the page then says how to install it.
    bool load(const std::string& dir, std::string& err);
    // `id` as the player gave it (pasted_id), `name` the channel's for the
    // title ("" if none).
    HttpResponse page(const HttpRequest& req, const std::string& id, const std::string& name) const;
    HttpResponse script(const HttpRequest& req);

private:
    bool read_script();
    std::string path_;
    std::string script_, etag_; // read on first use
};

} // namespace acemux
