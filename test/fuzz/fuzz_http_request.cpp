// Bytes a client sends -> the daemon's request parser and router, every route
// included. One daemon serves every input: building one per input ran about
// 490 inputs a second, this several thousand. Each input comes on a new
// connection, as a whole and then the client's end of sending; whatever it
// started (streams towards an engine nobody listens on, their players, HLS
// viewers) is closed before the next input, so nothing piles up across
// inputs and an input does the same whenever it runs.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <sys/socket.h>

#include "acemux/daemon.hpp"

using namespace acemux;

namespace {
// An engine nobody listens on: getstream still runs its whole path. Its
// health is checked once (at start, and then every hour), so it stays up
// and streams keep being started for the whole run.
constexpr const char* kConfig = R"([log]
level = "error"
[engines]
health_interval = 3600
health_failures = 100
[[engine]]
host = "127.0.0.1"
port = 1
[[channel]]
name = "x"
id = "0123456789abcdef0123456789abcdef01234567"
)";

struct Fixture {
    Reactor r;
    std::unique_ptr<Daemon> d;
    SockAddr peer;
    Fixture() {
        Config c;
        std::string err;
        if (!parse_config(kConfig, "fuzz.toml", c, err)) __builtin_trap();
        d = std::make_unique<Daemon>(r, std::move(c));
        parse_ip("127.0.0.1", 5555, peer);
    }
};
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Fixture* f = new Fixture; // lives as long as the process
    HttpServer& server = f->d->server();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) return 0;
    Fd client(sv[0]);
    (void)!send(client.get(), data, size, MSG_NOSIGNAL);
    shutdown(client.get(), SHUT_WR);
    // The server reads what is there at once; a stream it starts, or a
    // manifest that waits for one, needs a few passes of the loop.
    server.adopt(Fd(sv[1]), f->peer);
    std::string answer;
    char buf[16384];
    for (int pass = 0; pass < 4; pass++) {
        for (ssize_t n; answer.size() < 65536 && (n = recv(client.get(), buf, sizeof buf, 0)) > 0;)
            answer.append(buf, static_cast<size_t>(n));
        if (server.connections() == 0) break;
        f->r.run_once(0);
    }
    // Whatever the server sends is a response, from its first byte.
    if (!answer.empty() && answer.compare(0, 9, "HTTP/1.1 ") != 0) __builtin_trap();
    client.reset();
    f->d->streams().close_all();
    f->r.run_once(0); // what was closed is freed, the last connections end
    if (server.connections() != 0) __builtin_trap(); // a connection (slot) outlived its input
    return 0;
}
