#include "acemux/watch.hpp"

#include "acemux/file.hpp"

#include <cstdio>
#include <unistd.h>

namespace acemux {

bool WatchPage::load(const std::string& dir, std::string& err) {
    path_ = dir + "/" + kScript;
    script_.clear();
    if (::access(path_.c_str(), R_OK) == 0) return true;
    err = "cannot read " + path_ + " (make deps fetches it, make install installs it); /watch plays only where the "
                                   "browser has HLS of its own";
    path_.clear();
    return false;
}

// Read on the first request, not at start: 600 KiB a router's daemon holds
// only once somebody watches in a browser.
bool WatchPage::read_script() {
    constexpr size_t kMaxScriptBytes = 16 << 20; // hls.js is about 600 KiB
    if (!read_file(path_, kMaxScriptBytes, script_).empty()) return script_.clear(), false;
    // A validator that changes with the file: its size and a cheap hash.
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : script_) h = (h ^ c) * 1099511628211ull;
    char tag[48];
    std::snprintf(tag, sizeof tag, "\"%zx-%llx\"", script_.size(), static_cast<unsigned long long>(h));
    etag_ = tag;
    return true;
}

HttpResponse WatchPage::script(const HttpRequest& req) {
    if (script_.empty() && !path_.empty()) read_script();
    if (script_.empty()) return HttpResponse::text(404, std::string(kScript) + " is not installed (make deps, make install)");
    HttpResponse r;
    r.content_type = "text/javascript; charset=utf-8";
    r.headers.emplace_back("Cache-Control", "public, max-age=86400");
    r.headers.emplace_back("ETag", etag_);
    if (const std::string* inm = req.header("if-none-match"); inm && *inm == etag_) {
        r.status = 304;
        return r;
    }
    r.body = script_;
    return r;
}

HttpResponse WatchPage::page(const HttpRequest& req, const std::string& id, const std::string& name) const {
    bool ok = id.size() == 40 && id.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
    if (!ok) return HttpResponse::text(400, "use /watch?id=<40 hexadecimal characters or an acestream:// link>");
    const std::string* token = req.param("token");
    std::string query = "content_id=" + id + (token ? "&token=" + url_encode(*token) : "");
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.headers.emplace_back("Cache-Control", "no-cache");
    // The id is 40 hex characters and the token percent-encoded: both are
    // safe inside the HTML and the script below as they are.
    r.body = R"html(<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>)html" + (name.empty() ? "acemux " + id : html_escape(name) + " - acemux") + R"html(</title>
<style>body{margin:0;background:#000;color:#ccc;font:14px sans-serif}video{display:block;width:100vw;height:calc(100vh - 2em);background:#000}#say{padding:.4em .8em}</style>
</head><body>
<video id="video" controls autoplay muted playsinline></video><div id="say">loading</div>
<script src="/static/hls.min.js"></script>
<script>
const src = "/ace/manifest.m3u8?)html" + query + R"html(";
const video = document.getElementById("video"), say = document.getElementById("say");
function tell(text) { say.textContent = text; console.info("acemux-watch " + text); }
if (window.Hls && Hls.isSupported()) {
  const hls = new Hls({liveSyncDurationCount: 3});
  hls.on(Hls.Events.ERROR, (e, d) => {
    console.error("acemux-watch hls.js error " + d.type + " " + d.details + (d.fatal ? " (fatal)" : "") +
                  (d.reason || d.error ? ": " + (d.reason || d.error.message) : ""));
    if (d.fatal && d.type === Hls.ErrorTypes.NETWORK_ERROR) setTimeout(() => hls.loadSource(src), 2000);
    else if (d.fatal) hls.recoverMediaError();
  });
  hls.loadSource(src);
  hls.attachMedia(video);
} else if (video.canPlayType("application/vnd.apple.mpegurl")) {
  video.src = src;
} else {
  tell("this browser has no HLS of its own and hls.js is not installed on the server (make deps, make install)");
}
video.play().catch(() => {});
setInterval(() => { if (!video.paused || video.currentTime > 0) tell("playing " + video.currentTime.toFixed(1) + " s"); }, 1000);
</script>
</body></html>
)html";
    return r;
}

} // namespace acemux
