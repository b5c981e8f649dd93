// Host names resolved on the reactor with c-ares: its sockets are watched by
// our epoll and its timeouts are our timers, so a slow DNS server never holds
// up a player. Numeric addresses skip DNS. Answers are cached for their TTL
// (between 5 s and 5 min) and forgotten when a connection to them fails, so a
// container that came back with a new address is found again.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "acemux/net.hpp"
#include "acemux/reactor.hpp"

struct ares_channeldata;
struct ares_addrinfo;

namespace acemux {

class Resolver {
public:
    using Addrs = std::vector<SockAddr>;
    // Addresses (IPv4 first) with `port` set, or an error saying why there are none.
    using Done = std::function<void(const Addrs& addrs, const std::string& err)>;

    // One lookup in flight. Its owner keeps it as a member: destroying or
    // cancelling it means the answer is no longer wanted and is not delivered.
    class Lookup {
    public:
        void cancel() { p_.reset(); }
        bool pending() const { return p_ && !p_->answered; }

    private:
        friend class Resolver;
        struct Pending {
            Done done;
            bool answered = false;
        };
        std::shared_ptr<Pending> p_;
    };

    explicit Resolver(Reactor& r);
    ~Resolver();
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    // The answer always comes from the loop, never inside this call.
    void resolve(const std::string& host, int port, Lookup& l, Done done);
    // A connection to what `host` resolved to failed: ask DNS again next time.
    void forget(const std::string& host);
    // Whether `ip` is one of the addresses `host` resolved to (or is `host`).
    bool known_as(const std::string& host, const std::string& ip) const;

    static bool numeric(const std::string& host); // an IPv4 or IPv6 literal

private:
    struct Query;
    class Watch;
    static void on_answer(void* arg, int status, int timeouts, ares_addrinfo* res);
    static void on_socket(void* data, int fd, int readable, int writable);
    void deliver(std::weak_ptr<Lookup::Pending> to, Addrs addrs, std::string err);
    void answer_ready();
    void process(int rfd, int wfd);
    void arm_timer();

    Reactor& r_;
    ares_channeldata* channel_ = nullptr;
    std::string init_error_;
    std::map<int, std::unique_ptr<Watch>> watches_;
    struct Cached {
        Addrs addrs; // port 0
        Millis expires = 0;
    };
    std::map<std::string, Cached> cache_;
    std::map<std::string, std::string> last_logged_; // name -> what it resolved to, as logged
    Timer timer_;
    struct Ready {
        std::weak_ptr<Lookup::Pending> to;
        Addrs addrs;
        std::string err;
    };
    std::vector<Ready> ready_;
    Timer ready_timer_;
};

} // namespace acemux
