// engine_sim: a simulated AceStream engine for tests and benchmarks.
//
// By default it behaves like a real engine 3.1.74 (see DESIGN.md, "The
// engine's real protocol"): /ace/getstream?format=json answers after about
// half a second with playback_url, stat_url and command_url built from the
// request's Host header; content errors come on HTTP 200 as
// {"response": null, "error": "failed to load content"} after about 4 s;
// the playback_url answers 302 to /content/<infohash>/<token> with no
// Content-Length and holds that connection open; /content/ serves the TS
// after a prebuffer; a second reader with the same pid cuts off the first;
// stat_url answers {} first, then prebuf -> dl with peers, speeds and bytes.
// Without parameters /ace/getstream answers HTTP 500.
//
// The TS is real 188-byte packets: PAT and PMT every 100 ms, an SDT every
// 500 ms, a test card that players show (card.hpp; --content data leaves it
// out, as the tests do) and a data PID filling the rest of the bit rate whose
// payload carries a sequence number (see ts_gen.hpp), or a TS file in a loop.
// Shortcuts of older tests and faults are flags; /sim/set changes faults at
// run time; /sim/stats counts what it saw.
//
// Faults (--fault NAME at start, GET /sim/set?fault=NAME at run time, and
// fault= clears it). Some act on the answers to new requests only:
//   silent          accepts every connection and never answers (not even the version check);
//   garbage         a new playback sends bytes that are not TS, forever;
//   chunk-truncated, chunk-huge, no-packets, close-mid-header: a broken playback answer, then close;
//   json-10mb       a JSON answer of 10 MB;
//   refuse          every /ace/getstream (json and direct) answers HTTP 200 {"response": null,
//                   "error": ...} after the api delay: an engine in trouble says so at once
//                   (--reject ID is the per-id content error, after the error delay; reject=ID at run
//                   time: a broadcast that ends, its playbacks cut off and the id refused from then on);
//   drip-json       the JSON answer's headers, then its body at 1 byte a second, connection open;
//   stat-dl         stat_url says dl with peers and bytes downloaded from its first poll on while
//                   /content/ still prebuffers --delay ms: a stat that lies.
// The others act on the playbacks already streaming too (and on new ones),
// while the version check and the stat keep answering as if all were well:
//   stall           nothing more is sent, connection open (new ones: headers, then nothing);
//   headers-only    the same; a new playback answers its headers at once and nothing after;
//   garbage-mid     bytes that are not TS (never a sync byte) at the bit rate, connection open;
//   ts187           187-byte packets (each packet's last byte left out) at the bit rate;
//   drip-body       1 byte of the stream a second, connection open.
// Once cleared, a playback goes on with whole, aligned packets at the bit
// rate from where it was (no burst for the time it was held back). stall=MS
// holds every running playback for MS, whatever the fault.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <getopt.h>
#include <list>
#include <map>
#include <memory>
#include <sstream>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <utility>

#include "acemux/http_server.hpp"
#include "broadcast.hpp"
#include "ts_gen.hpp"

using namespace acemux;

namespace {

struct Options {
    int port = 0;
    double bitrate = 6e6; // bits/s; 0 = as fast as the socket takes it
    bool chunked = false;
    Millis delay = 500;       // prebuffer: /content/ request to first body byte (stat says prebuf meanwhile)
    Millis api_delay = 500;   // the JSON answer
    Millis error_delay = 4000; // an error answer ("failed to load content")
    std::string error_text = "failed to load content"; // what a --reject answer says (any bytes: a hostile engine)
    bool redirect = true;     // playback_url answers 302 to /content/ (--no-redirect: streams itself)
    bool pid_rule = true;     // one reader per pid
    int redirect_hops = 1;    // 302s from playback_url to /content/ (the first ones relative)
    std::string redirect_host; // the host the last 302 names ("": the one the client asked)
    bool redirect_loop = false; // /content/ sends the reader back to the playback_url
    int peers = 8;            // 0: prebuffers forever with no peers, sends nothing
    uint64_t stall_after = 0;
    Millis stall = 0;
    uint64_t close_after = 0;
    int garbage_every = 0; // data packets between garbage runs
    int garbage_bytes = 0;
    std::vector<std::string> reject;
    std::string file;
    int health_status = 200;
    testts::TsGen::Key key = testts::TsGen::Key::off;
    int key_every = 2000;
    uint64_t start_seq = 0;
    uint64_t session_seq_step = 0; // each playback numbers from start_seq + this x the playbacks before it
    bool stamp = false; // data packets carry when they were made (the bench's end-to-end delay)
    bool card = true;   // the test card beside the data PID (--content card|data)
    int playback_status = 200;
    // A broken engine: see the list at the top of this file ("" is a healthy one).
    std::string fault;
};

struct Counters {
    uint64_t api = 0, playbacks = 0, content = 0, direct = 0, stops = 0, health = 0, bytes = 0, stat_polls = 0,
             pid_kicks = 0, errors = 0, by_content_id = 0, by_id = 0, by_infohash = 0;
    uint64_t refusals = 0, json_drips = 0; // getstream answered by the refuse and drip-json faults
};

// What an engine keeps per getstream call.
struct EngineSession {
    std::string id, infohash, pid;
    Millis created = 0, first_byte = -1; // -1: not streaming yet
    uint64_t polls = 0;
};

class Sim;

class Playback final : public IoHandler {
public:
    Playback(Sim& sim, StreamHandoff&& h, std::string id, std::string session, std::string pid);
    ~Playback();
    void on_io(uint32_t ev) override;
    void pump();
    void close() { dead = true; }
    void stall_for(Millis ms); // sends nothing for this long, connection held

    bool dead = false;
    std::string id, session, pid;

private:
    void generate(size_t bytes);
    void emit(const uint8_t* p, size_t n);
    void put(uint8_t* pkt); // one generated packet, as the fault in force sends it

    Sim& sim_;
    Fd fd_;
    ConnSlot slot_;
    std::string out_;
    size_t out_off_ = 0;
    testts::TsGen gen_;
    testts::Broadcast broadcast_;
    Millis start_;
    Millis paused_ = 0, stall_until_ = 0;
    bool stalled_once_ = false;
    bool garbage_ = false, headers_sent_ = false;
    uint64_t body_ = 0;       // body bytes generated (before chunk framing)
    // Body bytes are not sent while held (a stall), and sent a byte a second
    // while dripping: pacing leaves out the time spent so, and the headers
    // at the front of out_ (free_ bytes) are never metered.
    Millis paused_since_ = -1, next_drip_ = 0;
    size_t free_ = 0;
    uint64_t data_since_garbage_ = 0;
    uint64_t junk_state_ = 0x2545F4914F6CDD1Dull;
    size_t file_off_ = 0;
};

// A connection the engine keeps open without finishing its answer (the 302
// of a playback_url, or anything when it is silent), until the peer closes.
class Held final : public IoHandler {
public:
    Held(Reactor& r, StreamHandoff&& h, std::string out) : r_(r), fd_(std::move(h.fd)), slot_(std::move(h.slot)) {
        out = h.queued + out;
        if (!out.empty()) (void)!::send(fd_.get(), out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r_.watch(fd_.get(), this, true, false)) dead = true;
    }
    ~Held() { r_.unwatch(fd_.get()); }
    void on_io(uint32_t) override {
        char buf[512];
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) dead = true;
    }
    bool dead = false;

private:
    Reactor& r_;
    Fd fd_;
    ConnSlot slot_;
};

// An answer written after a delay (the engine thinks before it speaks).
struct Later {
    Fd fd;
    ConnSlot slot;
    std::string out;
    Millis due;
    size_t off = 0; // written so far (a large answer takes several ticks)
    // drip-json: the first `head` bytes at once, then a byte a second.
    bool drip = false;
    size_t head = 0;
    Millis next = 0;
};

// A JSON string of any bytes: quotes, backslashes and controls escaped, the
// rest (bytes that are not UTF-8 included) as they are, as a careless engine would.
std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
        else if (c < 0x20) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", c);
            out += esc;
        } else out += static_cast<char>(c);
    }
    return out + "\"";
}

std::string raw_response(int status, const char* type, const std::string& body) {
    HttpResponse r;
    r.status = status;
    r.content_type = type;
    r.body = body;
    return response_bytes(r);
}

// The engine's infohash differs from the content id; any fixed mapping will do.
std::string infohash_of(const std::string& id) {
    const char* hex = "0123456789abcdef";
    std::string h;
    for (char c : id) {
        const char* p = std::strchr(hex, std::tolower(static_cast<unsigned char>(c)));
        h += p && *p ? hex[(p - hex + 1) % 16] : '0';
    }
    return h;
}

class Sim {
public:
    Sim(Reactor& r, const Config& c, Options o) : r_(r), o_(std::move(o)), srv_(r, c), tick_(r, [this] { tick(); }) {
        if (!o_.file.empty()) {
            std::ifstream f(o_.file, std::ios::binary);
            std::stringstream ss;
            ss << f.rdbuf();
            file_ = ss.str();
            file_.resize(file_.size() / 188 * 188);
        }
        srv_.route("/ace/getstream", [this](const HttpRequest& q) { return getstream(q); });
        srv_.route_prefix("/ace/r/", [this](const HttpRequest& q) { return playback(q); });
        srv_.route_prefix("/content/", [this](const HttpRequest& q) { return content(q); });
        srv_.route_prefix("/hop/", [this](const HttpRequest& q) { return hop(q); });
        srv_.route_prefix("/ace/cmd/", [this](const HttpRequest& q) { return command(q); });
        srv_.route_prefix("/ace/stat/", [this](const HttpRequest& q) { return stat(q); });
        srv_.route("/webui/api/service", [this](const HttpRequest& q) {
            if (o_.fault == "silent") return hold("");
            c_.health++;
            const std::string* m = q.param("method");
            if (!m || *m != "get_version") return HttpResponse::text(400, "unknown method");
            HttpResponse r = json(R"({"result":{"code":3016,"platform":"linux","version":"3.1.74"},"error":null})");
            r.status = o_.health_status;
            return r;
        });
        srv_.route("/server/api", [](const HttpRequest&) { return HttpResponse::text(200, "access denied"); });
        srv_.route("/sim/set", [this](const HttpRequest& q) {
            if (const std::string* h = q.param("health")) o_.health_status = std::atoi(h->c_str());
            if (const std::string* f = q.param("fault")) { // running playbacks see it at their next pump
                o_.fault = *f;
                std::fprintf(stderr, "sim: fault %s\n", f->empty() ? "cleared" : f->c_str());
            }
            if (const std::string* d = q.param("delay")) o_.delay = std::atoll(d->c_str());
            if (const std::string* st = q.param("stall")) // a hang: readers get nothing, connections stay
                for (auto& p : plays_) p.stall_for(std::atoll(st->c_str()));
            // A broadcast that ends: its playbacks are cut off and the id is
            // answered as content that cannot be loaded from now on.
            if (const std::string* gone = q.param("reject")) {
                o_.reject.push_back(*gone);
                for (auto& p : plays_)
                    if (p.id == *gone) p.close();
                std::fprintf(stderr, "sim: %s rejected from now on\n", gone->c_str());
            }
            if (q.param("drop")) { // an engine restart: every reader is cut off
                for (auto& p : plays_) p.close();
                std::fprintf(stderr, "sim: dropped every playback\n");
            }
            return HttpResponse::text(200, "ok");
        });
        srv_.route("/sim/stats", [this](const HttpRequest&) {
            size_t active = 0;
            for (auto& p : plays_) active += p.dead ? 0 : 1;
            char buf[640];
            std::snprintf(buf, sizeof buf,
                          R"({"api":%llu,"playbacks":%llu,"content":%llu,"direct":%llu,"stops":%llu,"health":%llu,)"
                          R"("active":%zu,"bytes":%llu,"stat_polls":%llu,"pid_kicks":%llu,"errors":%llu,)"
                          R"("by_content_id":%llu,"by_id":%llu,"by_infohash":%llu,"refusals":%llu,"json_drips":%llu})",
                          (unsigned long long)c_.api, (unsigned long long)c_.playbacks, (unsigned long long)c_.content,
                          (unsigned long long)c_.direct, (unsigned long long)c_.stops, (unsigned long long)c_.health,
                          active, (unsigned long long)c_.bytes, (unsigned long long)c_.stat_polls,
                          (unsigned long long)c_.pid_kicks, (unsigned long long)c_.errors,
                          (unsigned long long)c_.by_content_id, (unsigned long long)c_.by_id,
                          (unsigned long long)c_.by_infohash, (unsigned long long)c_.refusals,
                          (unsigned long long)c_.json_drips);
            return json(buf);
        });
        // Open playbacks by content id, one "ID N" line each (the cluster bench counts a channel's sessions).
        srv_.route("/sim/sessions", [this](const HttpRequest&) {
            std::map<std::string, size_t> by;
            for (auto& p : plays_)
                if (!p.dead) by[p.id]++;
            std::string out;
            for (auto& [id, n] : by) out += id + " " + std::to_string(n) + "\n";
            return HttpResponse::text(200, out);
        });
        tick_.start(5, 5);
    }

    bool listen(std::string& err) { return srv_.listen(err); }
    Reactor& r() { return r_; }
    const Options& o() const { return o_; }
    uint64_t next_start_seq() { return o_.start_seq + o_.session_seq_step * playbacks_started_++; }
    Counters& c() { return c_; }
    const std::string& file() const { return file_; }
    EngineSession* session(const std::string& s) {
        auto it = streams_.find(s);
        return it == streams_.end() ? nullptr : &it->second;
    }

private:
    static HttpResponse json(std::string body) {
        HttpResponse r;
        r.content_type = "application/json";
        r.body = std::move(body);
        return r;
    }

    // The engine names itself as the client reached it.
    std::string base(const HttpRequest& q) const {
        const std::string* host = q.header("host");
        return "http://" + (host && !host->empty() ? *host : srv_.bound()[0].str());
    }

    HttpResponse later(int status, const char* type, std::string body, Millis delay, bool drip = false) {
        HttpResponse r;
        r.stream = [this, out = raw_response(status, type, body), delay, drip](StreamHandoff&& h) {
            size_t head = h.queued.size() + out.find("\r\n\r\n") + 4;
            later_.push_back(Later{std::move(h.fd), std::move(h.slot), h.queued + out, r_.now() + delay, 0, drip, head});
        };
        return r;
    }

    HttpResponse hold(std::string out) {
        HttpResponse r;
        r.stream = [this, out = std::move(out)](StreamHandoff&& h) { held_.emplace_back(r_, std::move(h), out); };
        return r;
    }

    HttpResponse getstream(const HttpRequest& q) {
        if (o_.fault == "silent") return hold("");
        const std::string* id = q.param("content_id");
        uint64_t* by = &c_.by_content_id;
        if (!id) id = q.param("id"), by = &c_.by_id;
        if (!id) id = q.param("infohash"), by = &c_.by_infohash;
        if (!id) return HttpResponse::text(500, "Internal Server Error");
        ++*by;
        const std::string* fmt = q.param("format");
        bool as_json = fmt && *fmt == "json";
        as_json ? c_.api++ : c_.direct++;
        if (o_.fault == "refuse") { // the engine's own trouble, for every id, on HTTP 200 like a content error
            c_.refusals++;
            return later(200, "application/json",
                         R"({"response": null, "error": "engine is not ready: cannot start a playback session"})",
                         o_.api_delay);
        }
        for (auto& bad : o_.reject)
            if (bad == *id) {
                c_.errors++;
                return later(200, "application/json", R"({"response": null, "error": )" + json_string(o_.error_text) + "}",
                             o_.error_delay);
            }
        const std::string* pid = q.param("pid");
        std::string session = std::to_string(++serial_);
        EngineSession& es = streams_[session];
        es.id = *id;
        es.infohash = infohash_of(*id);
        es.pid = pid ? *pid : "";
        es.created = r_.now();
        std::string b = base(q), path = es.infohash + "/" + session;
        if (!as_json) { // the old direct form: straight to the playback
            if (!o_.redirect) return stream(session);
            c_.playbacks++;
            return redirect(b, path);
        }
        if (o_.fault == "json-10mb")
            return later(200, "application/json", "{\"response\":{\"x\":\"" + std::string(10 << 20, 'a') + "\"}}",
                         o_.api_delay);
        bool drip = o_.fault == "drip-json";
        c_.json_drips += drip;
        return later(200, "application/json",
                     R"({"response": {"playback_url": ")" + b + "/ace/r/" + path + R"(", "stat_url": ")" + b +
                         "/ace/stat/" + path + R"(", "command_url": ")" + b + "/ace/cmd/" + path +
                         R"(", "playback_session_id": ")" + session + R"(", "infohash": ")" + es.infohash +
                         R"(", "is_live": 1, "is_encrypted": 0, "client_session_id": -1}, "error": null})",
                     o_.api_delay, drip);
    }

    // 302 without Content-Length, connection held: reading its body hangs.
    HttpResponse redirect(const std::string& b, const std::string& path, int hop = 0) {
        std::string host = o_.redirect_host.empty() ? b : "http://" + o_.redirect_host + ":" + std::to_string(srv_.bound()[0].port());
        std::string to = hop + 1 < o_.redirect_hops ? "/hop/" + std::to_string(hop + 1) + "/" + path // relative
                                                    : host + "/content/" + path + "/" + std::to_string(++serial_);
        return hold("HTTP/1.1 302 Found\r\nServer: BaseHTTP/0.3 Python/2.7\r\nLocation: " + to + "\r\n\r\n");
    }

    // /hop/<n>/<infohash>/<session>: one more redirect on the way to /content/
    HttpResponse hop(const HttpRequest& q) {
        std::string rest = q.path.substr(5);
        int n = std::atoi(rest.c_str());
        return redirect(base(q), rest.substr(rest.find('/') + 1), n);
    }

    // /ace/r/<infohash>/<session> and /content/<infohash>/<session>[/<token>]
    static std::string session_of(const std::string& rest) {
        size_t a = rest.find('/');
        if (a == std::string::npos) return "";
        std::string s = rest.substr(a + 1);
        return s.substr(0, s.find('/'));
    }

    HttpResponse playback(const HttpRequest& q) {
        if (o_.fault == "silent") return hold("");
        std::string session = session_of(q.path.substr(7)); // after /ace/r/
        if (!this->session(session)) return HttpResponse::text(404, "no such playback");
        c_.playbacks++;
        if (o_.playback_status != 200) return HttpResponse::text(o_.playback_status, "playback refused");
        if (!o_.redirect) return serve(session);
        return redirect(base(q), q.path.substr(7));
    }

    HttpResponse content(const HttpRequest& q) {
        if (o_.fault == "silent") return hold("");
        std::string session = session_of(q.path.substr(9)); // after /content/
        if (!this->session(session)) return HttpResponse::text(404, "no such content");
        if (o_.redirect_loop) {
            std::string rest = q.path.substr(9);
            return hold("HTTP/1.1 302 Found\r\nLocation: " + base(q) + "/ace/r/" + rest.substr(0, rest.rfind('/')) +
                        "\r\n\r\n");
        }
        return serve(session);
    }

    HttpResponse serve(const std::string& session) {
        c_.content++;
        const std::string& f = o_.fault;
        if (f == "chunk-truncated" || f == "chunk-huge" || f == "no-packets" || f == "close-mid-header") return fault();
        return stream(session);
    }

    HttpResponse stream(const std::string& session) {
        HttpResponse r;
        r.stream = [this, session](StreamHandoff&& h) {
            EngineSession& es = *this->session(session);
            // One reader per pid: a new one cuts off whoever held it.
            for (auto& p : plays_)
                if (o_.pid_rule && !p.dead && !es.pid.empty() && p.pid == es.pid) {
                    std::fprintf(stderr, "sim: pid %s read again, cutting off session %s\n", es.pid.c_str(),
                                 p.session.c_str());
                    c_.pid_kicks++;
                    p.close();
                }
            plays_.emplace_back(*this, std::move(h), es.id, session, es.pid);
        };
        return r;
    }

    // Canned broken answers, written raw.
    HttpResponse fault() {
        HttpResponse r;
        std::string f = o_.fault;
        r.stream = [f](StreamHandoff&& h) {
            std::string out = "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n";
            if (f == "chunk-truncated") out += "Transfer-Encoding: chunked\r\n\r\n1f";
            else if (f == "chunk-huge") out += "Transfer-Encoding: chunked\r\n\r\n8000000000000000\r\n" + std::string(4096, 'x');
            else if (f == "no-packets") out += "\r\n" + std::string(1 << 20, '\x01');
            else if (f == "close-mid-header") out = "HTTP/1.1 200 OK\r\nContent-Ty";
            (void)!::send(h.fd.get(), out.data(), out.size(), MSG_NOSIGNAL);
            // h.fd closes here: the engine goes away after its broken answer
        };
        return r;
    }

    HttpResponse stat(const HttpRequest& q) {
        c_.stat_polls++;
        EngineSession* es = session(session_of(q.path.substr(10))); // after /ace/stat/
        if (!es) return json(R"({"response": null, "error": "unknown playback session id"})");
        // stat-dl: downloading, with a second's worth already, from the first poll, whatever /content/ does.
        bool lie = o_.fault == "stat-dl";
        if (es->polls++ == 0 && !lie) return json(R"({"response": {}, "error": null})");
        // A broken engine (headers only, garbage) still claims to download.
        bool dl = lie || es->first_byte >= 0 || o_.fault == "headers-only" || o_.fault == "garbage";
        if (dl && es->first_byte < 0 && !lie) es->first_byte = r_.now();
        long peers = o_.peers;
        Millis since = lie ? r_.now() - es->created + 1000 : dl ? r_.now() - es->first_byte : 0;
        double secs = static_cast<double>(since) / 1000.0;
        long long down = dl ? static_cast<long long>(secs * o_.bitrate / 8) : 0;
        char buf[512];
        std::snprintf(buf, sizeof buf,
                      R"({"response": {"status": "%s", "peers": %ld, "speed_down": %ld, "speed_up": %ld, )"
                      R"("downloaded": %lld, "uploaded": %lld, "total_progress": 0, )"
                      R"("livepos": {"pos": "%lld", "live_first": "%lld", "live_last": "%lld"}}, "error": null})",
                      dl ? "dl" : "prebuf", peers, dl ? static_cast<long>(o_.bitrate / 8 / 1024) : 0,
                      dl ? static_cast<long>(o_.bitrate / 8 / 4096) : 0, down, down / 4, (long long)r_.now() / 1000,
                      (long long)r_.now() / 1000 - 600, (long long)r_.now() / 1000);
        return json(buf);
    }

    HttpResponse command(const HttpRequest& q) {
        const std::string* m = q.param("method");
        if (!m || *m != "stop") return json(R"({"response": null, "error": "unknown method"})");
        std::string session = session_of(q.path.substr(9)); // after /ace/cmd/
        c_.stops++;
        for (auto& p : plays_)
            if (p.session == session) p.close();
        std::fprintf(stderr, "sim: stop %s\n", session.c_str());
        return json(R"({"response": "ok", "error": null})");
    }

    void tick() {
        for (auto& p : plays_)
            if (!p.dead) p.pump();
        plays_.remove_if([](const Playback& p) { return p.dead; });
        held_.remove_if([](const Held& h) { return h.dead; });
        for (auto it = later_.begin(); it != later_.end();) {
            if (it->due > r_.now()) {
                ++it;
                continue;
            }
            size_t n = it->out.size() - it->off;
            if (it->drip && it->off < it->head) n = it->head - it->off;
            else if (it->drip && it->next > r_.now()) n = 0;
            else if (it->drip) n = 1, it->next = r_.now() + 1000;
            ssize_t w = n ? ::send(it->fd.get(), it->out.data() + it->off, n, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
            if (w > 0) it->off += static_cast<size_t>(w);
            bool failed = w < 0 && errno != EAGAIN && errno != EINTR;
            if (failed || it->off == it->out.size()) it = later_.erase(it);
            else ++it;
        }
    }

    Reactor& r_;
    Options o_;
    HttpServer srv_;
    Timer tick_;
    Counters c_;
    std::list<Playback> plays_;
    std::list<Held> held_;
    std::list<Later> later_;
    std::map<std::string, EngineSession> streams_;
    uint64_t serial_ = 0;
    uint64_t playbacks_started_ = 0;
    std::string file_;
};

Playback::Playback(Sim& sim, StreamHandoff&& h, std::string i, std::string s, std::string p)
    : id(std::move(i)), session(std::move(s)), pid(std::move(p)), sim_(sim), fd_(std::move(h.fd)),
      slot_(std::move(h.slot)), out_(std::move(h.queued)),
      broadcast_(gen_, static_cast<double>(sim.o().bitrate), sim.o().card) {
    start_ = sim_.r().now();
    free_ = out_.size();
    garbage_ = sim_.o().fault == "garbage";
    gen_.gop(sim_.o().key, sim_.o().key_every);
    gen_.start_at(sim_.next_start_seq());
    gen_.stamp(sim_.o().stamp);
    if (sim_.r().watch(fd_.get(), this, true, true)) dead = true;
    std::fprintf(stderr, "sim: playback %s/%s started (pid %s)\n", id.c_str(), session.c_str(), pid.c_str());
}

Playback::~Playback() { sim_.r().unwatch(fd_.get()); }

void Playback::stall_for(Millis ms) {
    stall_until_ = sim_.r().now() + ms;
    std::fprintf(stderr, "sim: stalling %s for %lld ms\n", session.c_str(), static_cast<long long>(ms));
}

void Playback::on_io(uint32_t ev) {
    if (ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        dead = true;
        return;
    }
    if (ev & EPOLLIN) {
        char buf[256];
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN)) dead = true;
    }
    if (!dead && (ev & EPOLLOUT)) pump();
}

void Playback::emit(const uint8_t* p, size_t n) {
    const Options& o = sim_.o();
    if (o.close_after && body_ + n > o.close_after) n = static_cast<size_t>(o.close_after - body_);
    if (!n) return;
    if (o.chunked) {
        // Odd-sized chunks, so chunk framing never lines up with packets.
        for (size_t off = 0; off < n; off += 1000) {
            size_t k = std::min<size_t>(1000, n - off);
            char head[16];
            std::snprintf(head, sizeof head, "%zx\r\n", k);
            out_ += head;
            out_.append(reinterpret_cast<const char*>(p + off), k);
            out_ += "\r\n";
        }
    } else {
        out_.append(reinterpret_cast<const char*>(p), n);
    }
    body_ += n;
    sim_.c().bytes += n;
}

void Playback::generate(size_t bytes) {
    const Options& o = sim_.o();
    uint8_t pkt[188];
    for (size_t made = 0; made < bytes; made += 188) {
        if (o.close_after && body_ >= o.close_after) return;
        if (garbage_) { // from the first byte: the generator never runs
            put(pkt);
            continue;
        }
        if (!sim_.file().empty()) {
            std::memcpy(pkt, sim_.file().data() + file_off_, 188);
            put(pkt);
            file_off_ = (file_off_ + 188) % sim_.file().size();
            continue;
        }
        // body_: what was sent so far, junk and short packets included, at
        // whose bit rate (nominal when unpaced) the card's clock runs.
        bool data = broadcast_.next(pkt, body_) == testts::Broadcast::Kind::data;
        put(pkt);
        if (data && o.garbage_every && ++data_since_garbage_ >= static_cast<uint64_t>(o.garbage_every)) {
            data_since_garbage_ = 0;
            std::string junk(static_cast<size_t>(o.garbage_bytes), '\0');
            for (size_t i = 0; i < junk.size(); i++) junk[i] = static_cast<char>((i * 37 + 11) & 0xFF);
            if (!junk.empty()) junk[0] = 0x47; // a stray sync byte exactly where the next packet should be
            emit(reinterpret_cast<const uint8_t*>(junk.data()), junk.size());
        }
    }
}

// Garbage replaces each packet, so the stream moves on underneath at its bit
// rate and comes back aligned, where it would be, when the fault is cleared.
void Playback::put(uint8_t* pkt) {
    const std::string& f = sim_.o().fault;
    if (garbage_ || f == "garbage-mid") { // bytes, but never a sync byte: no three of them a packet apart
        for (int i = 0; i < 188; i++) {
            junk_state_ ^= junk_state_ << 13, junk_state_ ^= junk_state_ >> 7, junk_state_ ^= junk_state_ << 17;
            pkt[i] = static_cast<uint8_t>(junk_state_) == 0x47 ? 0x48 : static_cast<uint8_t>(junk_state_);
        }
    }
    emit(pkt, f == "ts187" ? 187 : 188);
}

void Playback::pump() {
    const Options& o = sim_.o();
    const std::string& f = o.fault;
    Millis now = sim_.r().now();
    if (o.stall_after && !stalled_once_ && body_ >= o.stall_after) {
        stalled_once_ = true;
        stall_until_ = now + o.stall;
        std::fprintf(stderr, "sim: stalling %s for %lld ms\n", session.c_str(), static_cast<long long>(o.stall));
    }
    // Prebuffering: nothing until the delay is over, and never without peers.
    bool prebuffered = now - start_ >= o.delay && o.peers > 0;
    bool headers_only = f == "headers-only";
    bool held = headers_only || f == "stall" || now < stall_until_; // the connection open, nothing sent
    bool drip = f == "drip-body";
    bool first_due = prebuffered && !held && !drip;
    if (first_due && body_ == 0)
        if (EngineSession* es = sim_.session(session); es && es->first_byte < 0) es->first_byte = now;
    // The engine answers once it has prebuffered (a cold channel: seconds later).
    if (!headers_sent_ && (prebuffered || headers_only)) {
        headers_sent_ = true;
        out_ += "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n";
        out_ += o.chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Connection: close\r\n\r\n";
        free_ = out_.size() - out_off_;
    }
    // Time held or dripping is not owed afterwards: the stream goes on at its rate.
    if (prebuffered && !first_due && paused_since_ < 0) paused_since_ = now;
    if (first_due && paused_since_ >= 0) paused_ += now - std::exchange(paused_since_, -1);
    if (first_due && out_.size() - out_off_ < 256 * 1024) {
        if (o.bitrate <= 0) {
            generate(64 * 1024);
        } else {
            double elapsed = static_cast<double>(now - start_ - o.delay - paused_) / 1000.0;
            double owed = elapsed * o.bitrate / 8.0 - static_cast<double>(body_);
            if (owed >= 188) generate(static_cast<size_t>(owed));
        }
    }
    if (drip && prebuffered && !held && out_off_ == out_.size()) generate(188); // the next bytes to drip
    while (out_off_ < out_.size()) {
        size_t n = out_.size() - out_off_;
        if (drip && n > free_) n = free_ ? free_ : now >= next_drip_ ? 1 : 0;
        if (!n) break;
        ssize_t w = ::send(fd_.get(), out_.data() + out_off_, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN) dead = true;
            break;
        }
        out_off_ += static_cast<size_t>(w);
        if (drip && !free_) next_drip_ = now + 1000;
        free_ -= std::min(free_, static_cast<size_t>(w));
    }
    if (out_off_ > 1024 * 1024 || out_off_ == out_.size()) {
        out_.erase(0, out_off_);
        out_off_ = 0;
    }
    if (o.close_after && body_ >= o.close_after && out_.empty()) {
        std::fprintf(stderr, "sim: closing %s after %llu bytes\n", session.c_str(), (unsigned long long)body_);
        dead = true;
    }
    // A drip waits for the tick, not for the socket (always writable).
    bool want_write = (!drip && out_off_ < out_.size()) || (o.bitrate <= 0 && first_due);
    if (sim_.r().set_interest(fd_.get(), true, want_write)) dead = true;
}

void usage() {
    std::fprintf(stderr,
                 "usage: engine_sim [--port N] [--bitrate BPS|0] [--chunked] [--delay MS (prebuffer, 500)]\n"
                 "                  [--api-delay MS (500)] [--error-delay MS (4000)] [--no-redirect] [--no-pid-rule]\n"
                 "                  [--peers N (8; 0: prebuffers forever)] [--redirect-hops N (1)] [--redirect-loop]\n"
                 "                  [--redirect-host H (the 302 names another host)]\n"
                 "                  [--stall-after BYTES --stall MS] [--close-after BYTES]\n"
                 "                  [--garbage-every PACKETS --garbage-bytes N] [--reject ID]... [--error-text TEXT]\n"
                 "                  [--content card|data (card: a picture players show, beside the data PID)]\n"
                 "                  [--file TS] [--health-status CODE] [--playback-status CODE]\n"
                 "                  [--keyframes rai|idr|none [--key-every PACKETS]] [--start-seq N] [--stamp]\n"
                 "                  [--session-seq-step N (playback k numbers from start-seq + k x N)]\n"
                 "                  [--fault silent|headers-only|garbage|chunk-truncated|chunk-huge|no-packets|\n"
                 "                           json-10mb|close-mid-header|refuse|drip-json|stat-dl|\n"
                 "                           stall|garbage-mid|ts187|drip-body]\n"
                 "--file and --keyframes replace the card (data content); the card needs --bitrate 1000000 or more.\n"
                 "At run time: GET /sim/set?fault=F&delay=MS&health=CODE&drop=1&stall=MS&reject=ID, GET /sim/stats,\n"
                 "GET /sim/sessions (open playbacks by content id);\n"
                 "fault= clears the fault.\n"
                 "Faults on new requests: silent (never answers, not even the version check), garbage (a playback\n"
                 "  of bytes that are not TS), chunk-truncated, chunk-huge, no-packets, close-mid-header (a broken\n"
                 "  playback answer, then close), json-10mb, refuse (every getstream answers HTTP 200 with\n"
                 "  \"response\": null and an error, after --api-delay), drip-json (the JSON answer's body at 1 byte/s),\n"
                 "  stat-dl (stat_url says dl with bytes from its first poll while /content/ prebuffers --delay).\n"
                 "Faults on running playbacks too (the version check and stat_url still say all is well): stall and\n"
                 "  headers-only (nothing more, connection open), garbage-mid (not TS at the bit rate), ts187\n"
                 "  (187-byte packets), drip-body (1 byte/s); cleared, a playback goes on with aligned packets.\n");
}

} // namespace

int main(int argc, char** argv) {
    Options o;
    static const option longopts[] = {
        {"port", 1, nullptr, 'p'},          {"bitrate", 1, nullptr, 'b'},      {"chunked", 0, nullptr, 'c'},
        {"delay", 1, nullptr, 'd'},         {"stall-after", 1, nullptr, 's'},  {"stall", 1, nullptr, 'S'},
        {"close-after", 1, nullptr, 'x'},   {"garbage-every", 1, nullptr, 'g'}, {"garbage-bytes", 1, nullptr, 'G'},
        {"reject", 1, nullptr, 'r'},        {"file", 1, nullptr, 'f'},         {"health-status", 1, nullptr, 'h'},
        {"playback-status", 1, nullptr, 'P'}, {"keyframes", 1, nullptr, 'k'},
        {"key-every", 1, nullptr, 'K'},     {"start-seq", 1, nullptr, 'q'},   {"fault", 1, nullptr, 'F'},
        {"api-delay", 1, nullptr, 'A'},     {"error-delay", 1, nullptr, 'E'}, {"no-redirect", 0, nullptr, 'R'},
        {"no-pid-rule", 0, nullptr, 'I'},   {"peers", 1, nullptr, 'N'},       {"redirect-hops", 1, nullptr, 'H'},
        {"redirect-loop", 0, nullptr, 'L'}, {"help", 0, nullptr, 'u'},     {"redirect-host", 1, nullptr, 'Z'},
        {"session-seq-step", 1, nullptr, 'W'}, {"stamp", 0, nullptr, 'T'},         {"content", 1, nullptr, 'C'},     {"error-text", 1, nullptr, 'X'},
        {nullptr, 0, nullptr, 0}};
    std::string content; // "": the card unless --file or --keyframes choose what older tests asked for
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
        switch (opt) {
        case 'p': o.port = std::atoi(optarg); break;
        case 'b': o.bitrate = std::atof(optarg); break;
        case 'c': o.chunked = true; break;
        case 'd': o.delay = std::atoll(optarg); break;
        case 's': o.stall_after = std::strtoull(optarg, nullptr, 10); break;
        case 'S': o.stall = std::atoll(optarg); break;
        case 'x': o.close_after = std::strtoull(optarg, nullptr, 10); break;
        case 'g': o.garbage_every = std::atoi(optarg); break;
        case 'G': o.garbage_bytes = std::atoi(optarg); break;
        case 'r': o.reject.push_back(optarg); break;
        case 'f': o.file = optarg; break;
        case 'h': o.health_status = std::atoi(optarg); break;
        case 'P': o.playback_status = std::atoi(optarg); break;
        case 'k': {
            std::string k = optarg;
            if (k == "rai") o.key = testts::TsGen::Key::rai;
            else if (k == "idr") o.key = testts::TsGen::Key::idr;
            else if (k == "none") o.key = testts::TsGen::Key::none;
            else return usage(), 2;
            break;
        }
        case 'K': o.key_every = std::atoi(optarg); break;
        case 'q': o.start_seq = std::strtoull(optarg, nullptr, 10); break;
        case 'W': o.session_seq_step = std::strtoull(optarg, nullptr, 10); break;
        case 'F': o.fault = optarg; break;
        case 'A': o.api_delay = std::atoll(optarg); break;
        case 'E': o.error_delay = std::atoll(optarg); break;
        case 'R': o.redirect = false; break;
        case 'I': o.pid_rule = false; break;
        case 'N': o.peers = std::atoi(optarg); break;
        case 'H': o.redirect_hops = std::atoi(optarg); break;
        case 'L': o.redirect_loop = true; break;
        case 'u': usage(); return 0;
        case 'Z': o.redirect_host = optarg; break;
        case 'T': o.stamp = true; break;
        case 'X': o.error_text = optarg; break;
        case 'C':
            content = optarg;
            if (content != "card" && content != "data") return usage(), 2;
            break;
        default: usage(); return 2;
        }
    }
    bool replaced = !o.file.empty() || o.key != testts::TsGen::Key::off;
    if (content.empty()) content = replaced ? "data" : "card";
    o.card = content == "card";
    if (o.card && replaced)
        return std::fprintf(stderr, "engine_sim: --content card goes with neither --file nor --keyframes\n"), 2;
    // An IDR picture is 24 KB sent at once; below this it arrives after it is due.
    if (o.card && o.bitrate > 0 && o.bitrate < 1e6)
        return std::fprintf(stderr, "engine_sim: the card needs --bitrate 1000000 or more (or --content data)\n"), 2;
    std::signal(SIGPIPE, SIG_IGN);
    Config c;
    c.listen = {"127.0.0.1:" + std::to_string(o.port)};
    // A real engine plays as many ids as it is asked for, all to one proxy
    // address: no limit per address, and room for a hundred streams.
    c.max_connections_per_ip = 0;
    c.max_connections = 4096;
    std::string err;
    SockAddr a;
    parse_hostport(c.listen[0], a, err);
    c.listen_addrs = {a};
    Reactor r;
    Sim sim(r, c, o);
    if (!sim.listen(err)) {
        std::fprintf(stderr, "engine_sim: %s\n", err.c_str());
        return 1;
    }
    r.on_signal(SIGTERM, [&] { r.stop(); });
    r.on_signal(SIGINT, [&] { r.stop(); });
    r.run();
    return 0;
}
