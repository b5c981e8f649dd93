// Bytes an engine answers -> the HTTP client (status line, headers, chunked
// bodies, redirects), the engine JSON, and the stream path into a ring. The
// input is answered twice: to a JSON request, whose body is read as every
// kind of engine JSON, and to a playback request, whose body goes into a
// ring through the stream's ingest as the upstream's does.
#include <cstdint>
#include <string>
#include <sys/socket.h>

#include "acemux/http_client.hpp"
#include "acemux/ingest.hpp"
#include "acemux/ring.hpp"
#include "acemux/upstream.hpp"

using namespace acemux;

namespace {
// Redirects end the request (the sinks refuse them): following one would
// resolve and connect to whatever host the input names.
struct Redirects : HttpClient::Sink {
    bool on_redirect(int, const Url& to) override {
        // A Location taken apart into something no request line or Host header can carry.
        if (to.host.empty() || to.host.find_first_of(" \t\r\n") != std::string::npos || to.port < 1 ||
            to.port > 65535 || to.target.empty() || to.target[0] != '/' ||
            to.target.find_first_of(" \r\n") != std::string::npos)
            __builtin_trap();
        return false;
    }
};

struct BodySink final : Redirects {
    std::string body;
    bool done = false;
    bool on_body(const uint8_t* at, size_t n) override { return body.append(reinterpret_cast<const char*>(at), n), true; }
    void on_end(const std::string&) override { done = true; }
};

// The body into a ring as the upstream takes it (received in place, aligned).
struct RingSink final : Redirects {
    Ring ring{188 * 16, 8};
    Ingest in{ring};
    bool done = false;
    RingSink() { in.begin(0); }
    std::pair<uint8_t*, size_t> recv_area() override { return in.area(); }
    bool on_body(const uint8_t* at, size_t n) override { return in.add(at, n), true; }
    void on_read() override { in.commit(); }
    void on_end(const std::string&) override { done = true; }
};

// The engine's side of a socketpair sends the input and half-closes: the
// client reads it to the end and must then be done. Each pass of the loop
// reads a byte at least, and sometimes no more: the ring offers one byte a
// read while the aligner hunts through 0x47 bytes at a chunk's end.
void serve(Reactor& r, const uint8_t* data, size_t size, HttpClient& c, const Url& url, const bool& done) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) return;
    Fd engine(sv[0]);
    c.get_on(Fd(sv[1]), url, 1000);
    (void)!send(engine.get(), data, size, MSG_NOSIGNAL);
    shutdown(engine.get(), SHUT_WR);
    for (size_t i = 0; i < size + 50 && !done; i++) r.run_once(0);
    if (!done) __builtin_trap(); // the engine closed, yet the request goes on
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Reactor* r = [] {
        auto* r = new Reactor;
        r->log().set_level(LogLevel::error);
        return r;
    }();

    BodySink json;
    {
        HttpClient c(*r, json);
        serve(*r, data, size, c, Url{"127.0.0.1", 6878, "/ace/getstream?format=json&id=x"}, json.done);
    }
    if (json.body.size() > size) __builtin_trap(); // a body longer than what was sent
    parse_engine_answer(json.body);
    EngineStatus st;
    parse_engine_status(json.body, st);
    Url u;
    EngineConfig e;
    engine_url(e, json.body, u);
    resolve_location(Url{}, json.body, u);

    RingSink sink;
    {
        HttpClient c(*r, sink);
        serve(*r, data, size, c, Url{"127.0.0.1", 6878, "/ace/r/x/1"}, sink.done);
    }
    const Ring& ring = sink.ring;
    if (ring.bytes_in() > size) __builtin_trap();
    for (uint64_t i = ring.first(); i <= ring.head(); i++)
        for (size_t o = 0; o < ring.length(i); o += ts::kPacket)
            if (ring.data(i)[o] != ts::kSync) __builtin_trap(); // something visible that is not a packet
    r->run_once(0); // frees what the clients released
    return 0;
}
