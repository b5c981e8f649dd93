#include "acemux/http.hpp"

#include <cctype>
#include <cstring>

#include "acemux/version.hpp"

namespace acemux {

const std::string* HttpRequest::param(std::string_view name) const {
    for (auto& [k, v] : query)
        if (k == name) return &v;
    return nullptr;
}

const std::string* HttpRequest::header(std::string_view lower_name) const {
    for (auto& [k, v] : headers)
        if (k == lower_name) return &v;
    return nullptr;
}

HttpResponse HttpResponse::text(int status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    if (r.body.empty() || r.body.back() != '\n') r.body.push_back('\n');
    return r;
}

HttpResponse HttpResponse::unavailable(std::string body, int retry_after_s) {
    HttpResponse r = text(503, std::move(body));
    r.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
    return r;
}

const char* status_reason(int s) {
    switch (s) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool url_decode(std::string_view in, std::string& out, bool plus_is_space) {
    out.clear();
    for (size_t i = 0; i < in.size(); i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= in.size()) return false;
            int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
            if (h < 0 || l < 0) return false;
            c = static_cast<char>(h * 16 + l);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0') return false;
        out.push_back(c);
    }
    return true;
}

std::string html_escape(std::string_view s) {
    std::string o;
    for (char c : s) {
        switch (c) {
        case '<': o += "&lt;"; break;
        case '>': o += "&gt;"; break;
        case '&': o += "&amp;"; break;
        case '"': o += "&quot;"; break;
        default: o += c;
        }
    }
    return o;
}

std::string url_encode(std::string_view in) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : in) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

namespace {
// Length of the well-formed UTF-8 character at in[i] (RFC 3629: no overlong
// forms, no surrogates, nothing past U+10FFFF), or 0.
size_t utf8_char(std::string_view in, size_t i) {
    auto at = [&](size_t k) { return i + k < in.size() ? static_cast<unsigned char>(in[i + k]) : 0; };
    unsigned char c = at(0);
    if (c < 0x80) return 1;
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || i + len > in.size()) return 0;
    unsigned char lo = 0x80, hi = 0xBF; // the second byte's range
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (at(1) < lo || at(1) > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if ((at(k) & 0xC0) != 0x80) return 0;
    return len;
}
} // namespace

std::string printable(std::string_view in, size_t max) {
    std::string out;
    for (size_t i = 0; i < in.size() && out.size() < max;) {
        size_t len = utf8_char(in, i);
        auto c = static_cast<unsigned char>(in[i]);
        if (len == 1 && (c == '\n' || c == '\r' || c == '\t')) { // one line
            out += ' ';
            i++;
            continue;
        }
        // C0 and C1 controls (a terminal acts on ESC and CSI) are not shown either.
        bool control = len == 1 ? c < 0x20 || c == 0x7F : len == 2 && c == 0xC2 && static_cast<unsigned char>(in[i + 1]) < 0xA0;
        if (!len || control || out.size() + len > max) {
            if (len && !control) break; // a whole character does not fit: cut before it
            out += '?';
            i += len ? len : 1;
            continue;
        }
        out.append(in.substr(i, len));
        i += len;
    }
    return out;
}

bool valid_host_header(std::string_view h) {
    if (h.empty() || h.size() > 255) return false;
    for (char c : h)
        if (!std::isalnum(static_cast<unsigned char>(c)) && !std::strchr(".-_:[]", c)) return false;
    return true;
}

std::string base_url(const HttpRequest& q) {
    const std::string* host = q.header("host");
    return "http://" + (host && valid_host_header(*host) ? *host : q.local.str());
}

bool parse_target(std::string_view target, std::string& path, Params& query, std::string& err) {
    query.clear();
    // The absolute form (a proxy-style request line, "GET http://host/path")
    // that some players send: the path is what follows the authority.
    for (std::string_view scheme : {"http://", "https://"})
        if (target.substr(0, scheme.size()) == scheme) {
            size_t slash = target.find_first_of("/?", scheme.size());
            target = slash == std::string_view::npos ? "/" : target.substr(slash);
            if (target[0] == '?') {
                err = "request target has no path";
                return false;
            }
        }
    if (target.empty() || target[0] != '/') {
        err = "request target must start with /";
        return false;
    }
    size_t q = target.find('?');
    std::string_view p = target.substr(0, q), qs = q == std::string_view::npos ? "" : target.substr(q + 1);
    if (!url_decode(p, path, false)) {
        err = "invalid percent-encoding in path";
        return false;
    }
    while (!qs.empty()) {
        size_t amp = qs.find('&');
        std::string_view part = qs.substr(0, amp);
        qs = amp == std::string_view::npos ? "" : qs.substr(amp + 1);
        if (part.empty()) continue;
        size_t eq = part.find('=');
        std::string k, v;
        if (!url_decode(part.substr(0, eq), k, true) ||
            (eq != std::string_view::npos && !url_decode(part.substr(eq + 1), v, true))) {
            err = "invalid percent-encoding in query";
            return false;
        }
        query.emplace_back(std::move(k), std::move(v));
    }
    return true;
}

std::string response_head(int status, std::string_view content_type, long long content_length, const Params& extra,
                          bool keep_alive) {
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " + status_reason(status) +
                    "\r\nServer: acemux/" ACEMUX_VERSION "\r\nContent-Type: ";
    h.append(content_type);
    h += "\r\n";
    if (content_length >= 0) h += "Content-Length: " + std::to_string(content_length) + "\r\n";
    for (auto& [k, v] : extra) h += k + ": " + v + "\r\n";
    h += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    return h;
}

std::string response_bytes(const HttpResponse& r) {
    return response_head(r.status, r.content_type, static_cast<long long>(r.body.size()), r.headers, false) + r.body;
}

void Reply::send(HttpResponse r) {
    auto w = w_.lock();
    w_.reset();
    if (!w || !w->answer) return;
    auto answer = std::move(w->answer); // once: the connection forgets it as it answers
    answer(std::move(r));
}

} // namespace acemux
