#include "acemux/resolver.hpp"

#include <algorithm>
#include <ares.h>
#include <arpa/inet.h>
#include <cstring>
#include <strings.h>
#include <sys/epoll.h>

namespace acemux {

// One c-ares socket, watched by the reactor for as long as c-ares wants it.
class Resolver::Watch final : public IoHandler {
public:
    Watch(Resolver& r, int fd) : r_(r), fd_(fd) {}
    void on_io(uint32_t ev) override {
        bool in = ev & (EPOLLIN | EPOLLERR | EPOLLHUP), out = ev & EPOLLOUT;
        r_.process(in ? fd_ : ARES_SOCKET_BAD, out ? fd_ : ARES_SOCKET_BAD);
    }

private:
    Resolver& r_;
    int fd_;
};

struct Resolver::Query {
    Resolver* r;
    std::string host;
    int port;
    std::weak_ptr<Lookup::Pending> to;
};

bool Resolver::numeric(const std::string& host) {
    in6_addr a;
    return inet_pton(AF_INET, host.c_str(), &a) == 1 || inet_pton(AF_INET6, host.c_str(), &a) == 1;
}

Resolver::Resolver(Reactor& r) : r_(r), timer_(r, [this] { process(ARES_SOCKET_BAD, ARES_SOCKET_BAD); }), ready_timer_(r, [this] { answer_ready(); }) {
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    ares_options o{};
    o.sock_state_cb = on_socket;
    o.sock_state_cb_data = this;
    o.timeout = 1500; // ms per try; a home network's DNS answers in a few
    o.tries = 2;
    char lookups[] = "fb"; // /etc/hosts, then DNS
    o.lookups = lookups;
    if (rc == ARES_SUCCESS)
        rc = ares_init_options(&channel_, &o,
                               ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS);
    if (rc != ARES_SUCCESS) {
        channel_ = nullptr;
        init_error_ = std::string("resolver: ") + ares_strerror(rc);
    }
}

Resolver::~Resolver() {
    if (channel_) ares_destroy(channel_); // answers pending queries with ARES_EDESTRUCTION
    watches_.clear();
    ares_library_cleanup();
}

void Resolver::on_socket(void* data, int fd, int readable, int writable) {
    auto& self = *static_cast<Resolver*>(data);
    auto it = self.watches_.find(fd);
    if (!readable && !writable) {
        if (it != self.watches_.end()) {
            self.r_.unwatch(fd);
            self.watches_.erase(it);
        }
        return;
    }
    // A failure leaves the query to c-ares's own timeout, which answers it.
    int e = 0;
    if (it == self.watches_.end()) {
        auto w = std::make_unique<Watch>(self, fd);
        if (!(e = self.r_.watch(fd, w.get(), readable, writable))) self.watches_.emplace(fd, std::move(w));
    } else {
        e = self.r_.set_interest(fd, readable, writable);
    }
    if (e) self.r_.log().error("resolver: cannot watch its socket: %s", std::strerror(e));
}

void Resolver::process(int rfd, int wfd) {
    ares_process_fd(channel_, rfd, wfd);
    arm_timer();
}

// c-ares keeps its own retry clock; it is driven from one of our timers.
void Resolver::arm_timer() {
    timeval tv;
    if (!channel_ || !ares_timeout(channel_, nullptr, &tv)) return timer_.stop();
    Millis ms = static_cast<Millis>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
    timer_.start(std::max<Millis>(ms, 1));
}

// Answers wait for the next pass of the loop: a caller never hears back
// inside its own resolve() call, nor from inside c-ares.
void Resolver::deliver(std::weak_ptr<Lookup::Pending> to, Addrs addrs, std::string err) {
    ready_.push_back({std::move(to), std::move(addrs), std::move(err)});
    if (!ready_timer_.armed()) ready_timer_.start(0);
}

void Resolver::answer_ready() {
    auto batch = std::move(ready_);
    ready_.clear();
    for (auto& a : batch) {
        auto p = a.to.lock();
        if (!p) continue; // the lookup was cancelled or its owner is gone
        p->answered = true;
        Done cb = std::move(p->done); // the callback may start another lookup on the same handle
        cb(a.addrs, a.err);
    }
}

static Resolver::Addrs with_port(Resolver::Addrs a, int port) {
    for (auto& x : a) {
        if (x.family() == AF_INET) reinterpret_cast<sockaddr_in*>(&x.ss)->sin_port = htons(static_cast<uint16_t>(port));
        else reinterpret_cast<sockaddr_in6*>(&x.ss)->sin6_port = htons(static_cast<uint16_t>(port));
    }
    return a;
}

void Resolver::resolve(const std::string& host, int port, Lookup& l, Done done) {
    l.p_ = std::make_shared<Lookup::Pending>();
    l.p_->done = std::move(done);
    SockAddr a;
    if (numeric(host)) {
        parse_ip(host, port, a);
        return deliver(l.p_, {a}, "");
    }
    if (auto it = cache_.find(host); it != cache_.end() && it->second.expires > r_.now())
        return deliver(l.p_, with_port(it->second.addrs, port), "");
    if (!channel_) return deliver(l.p_, {}, init_error_);
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    auto* q = new Query{this, host, port, l.p_}; // c-ares holds it until on_answer, which frees it
    ares_getaddrinfo(channel_, host.c_str(), nullptr, &hints, on_answer, q);
    arm_timer();
}

void Resolver::on_answer(void* arg, int status, int, ares_addrinfo* res) {
    std::unique_ptr<Query> q(static_cast<Query*>(arg));
    Resolver& self = *q->r;
    if (status == ARES_EDESTRUCTION) return; // the resolver is going away
    Addrs addrs;
    int ttl = 300;
    if (status == ARES_SUCCESS && res) {
        for (auto* n = res->nodes; n; n = n->ai_next) {
            if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) || n->ai_addrlen > sizeof(sockaddr_storage))
                continue;
            SockAddr a;
            std::memcpy(&a.ss, n->ai_addr, n->ai_addrlen);
            a.len = n->ai_addrlen;
            addrs.push_back(a);
            ttl = std::min(ttl, n->ai_ttl > 0 ? n->ai_ttl : 300);
        }
        // IPv4 first: a Docker network or a home LAN has it, IPv6 often not.
        std::stable_partition(addrs.begin(), addrs.end(), [](const SockAddr& a) { return a.family() == AF_INET; });
    }
    if (res) ares_freeaddrinfo(res);
    if (addrs.empty()) {
        std::string why = status == ARES_SUCCESS ? "no address" : ares_strerror(status);
        self.r_.log().warn("resolver: cannot resolve %s: %s", q->host.c_str(), why.c_str());
        return self.deliver(q->to, {}, "cannot resolve " + q->host + ": " + why);
    }
    std::string list;
    for (auto& a : addrs) list += (list.empty() ? "" : ", ") + a.host();
    if (self.last_logged_[q->host] != list) {
        self.last_logged_[q->host] = list;
        self.r_.log().info("resolver: %s is %s", q->host.c_str(), list.c_str());
    }
    self.cache_[q->host] = Cached{addrs, self.r_.now() + std::max(ttl, 5) * 1000};
    self.deliver(q->to, with_port(std::move(addrs), q->port), "");
}

void Resolver::forget(const std::string& host) { cache_.erase(host); }

bool Resolver::known_as(const std::string& host, const std::string& ip) const {
    if (strcasecmp(host.c_str(), ip.c_str()) == 0) return true;
    auto it = cache_.find(host);
    if (it == cache_.end()) return false;
    for (auto& a : it->second.addrs)
        if (a.host() == ip) return true;
    return false;
}

} // namespace acemux
