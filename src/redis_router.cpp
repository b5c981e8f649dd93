#include "acemux/redis_router.hpp"

#include <cstring>
#include <hiredis/hiredis.h>
#include <strings.h>

#include "acemux/http.hpp"

namespace acemux {

namespace {
// A master that went away is looked for this often (a replica takes over
// after cluster-node-timeout), and MOVED answers ask no more often.
constexpr Millis kRefreshEvery = 1000;
constexpr int kMaxRedirects = 5;
constexpr int kMaxRetries = 20; // TRYAGAIN, kRetryAfter apart: a slot's keys move in about a second
constexpr Millis kRetryAfter = 50;

// CRC16-CCITT (XModem), as Redis's crc16.c.
uint16_t crc16(const char* p, size_t n) {
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc = static_cast<uint16_t>(crc ^ (static_cast<uint8_t>(p[i]) << 8));
        for (int b = 0; b < 8; b++) crc = static_cast<uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

bool starts(const redisReply* r, const char* word) {
    size_t n = std::strlen(word);
    return r->len >= n && std::memcmp(r->str, word, n) == 0;
}

std::string host_port(const std::string& host, long long port) {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// MOVED and ASK name a node "ip:port", an IPv6 address unbracketed.
std::string named(const std::string& to) {
    size_t colon = to.rfind(':');
    if (colon == std::string::npos || to[0] == '[') return to;
    return host_port(to.substr(0, colon), std::atoll(to.c_str() + colon + 1));
}
} // namespace

int RedisRouter::slot(const std::string& key) {
    size_t a = key.find('{');
    if (a != std::string::npos) {
        size_t b = key.find('}', a + 1);
        if (b != std::string::npos && b > a + 1) return crc16(key.data() + a + 1, b - a - 1) & (kSlots - 1);
    }
    return crc16(key.data(), key.size()) & (kSlots - 1);
}

struct RedisRouter::Request {
    std::vector<std::string> args;
    RedisLink::Reply cb;
    int redirects = 0, retries = 0;
};

RedisRouter::Node::Node(Reactor& r, std::string a, std::string ln, std::string sn)
    : addr(std::move(a)), link_name(std::move(ln)), sub_name(std::move(sn)), link(r, link_name.c_str()) {}

RedisRouter::RedisRouter(Reactor& r) : r_(r), refresh_timer_(r, [this] { refresh(); }) {}

RedisRouter::~RedisRouter() { clear(); }

// Every connection closes now; what was asked of them is answered nullptr.
void RedisRouter::clear() {
    auto nodes = std::move(nodes_);
    nodes_.clear();
    auto seed = std::move(seed_);
    subscribed_at_.clear();
    slots_.clear();
    known_ = refreshing_ = false;
    refresh_timer_.stop();
}

void RedisRouter::set(const std::string& url, RedisSentinel* sentinel, bool cluster) {
    if (url == url_ && sentinel == sentinel_ && cluster == cluster_) return;
    url_ = url, sentinel_ = sentinel, cluster_ = cluster;
    start();
}

void RedisRouter::set_pubsub(bool on) {
    if (on == pubsub_) return;
    pubsub_ = on;
    start(); // the nodes are made again, with (or without) their subscribers
}

void RedisRouter::start() {
    clear();
    if (!enabled()) return;
    RedisTarget t;
    std::string err; // the config was checked when it was read
    if (!url_.empty()) parse_redis_url(url_, t, err);
    credentials_ = t.credentials();
    if (!cluster_) {
        add("");
    } else {
        // The url's node says where the slots are; it is asked again when they move.
        seed_ = std::make_unique<RedisLink>(r_, "redis cluster");
        seed_->on_ready = [this] { refresh(); };
        seed_->set_url(url_);
    }
    for (auto& ch : channels_) place(ch);
}

// A node: "" is the one of the url (or the sentinels' master), else a
// Cluster master by address, with the url's user and password.
RedisRouter::Node& RedisRouter::add(const std::string& addr) {
    std::unique_ptr<Node>& n = nodes_[addr];
    if (n) return *n;
    n = std::make_unique<Node>(r_, addr, addr.empty() ? "redis" : "redis " + addr,
                               addr.empty() ? "redis pub/sub" : "redis pub/sub " + addr);
    Node& node = *n;
    std::string url = addr.empty() ? url_ : credentials_ + addr;
    RedisSentinel* s = addr.empty() ? sentinel_ : nullptr;
    node.link.on_lost = [this] {
        if (cluster_) refresh(); // a master gone: its replica may have taken over
    };
    node.link.on_ready = [this] {
        if (on_reconnect) on_reconnect();
    };
    node.link.set(url, s);
    if (pubsub_) {
        node.sub = std::make_unique<RedisSubscriber>(r_, node.sub_name.c_str());
        node.sub->on_message = [this](const std::string& ch, const std::string& m) {
            if (on_message) on_message(ch, m);
        };
        node.sub->on_ready = [this] {
            if (on_reconnect) on_reconnect();
        };
        // The channel's slot is served elsewhere: it goes there.
        node.sub->on_refused = [this](const std::string& ch, const std::string& err) {
            char to[256];
            int s = -1;
            if (!cluster_ || std::sscanf(err.c_str(), "MOVED %d %255s", &s, to) != 2 || s < 0 || s >= kSlots) return;
            moved_++;
            set_slot_node(s, &add(named(to)));
            place(ch);
            refresh();
        };
        node.sub->set(url, s);
    }
    return node;
}

bool RedisRouter::connected() const {
    if (!cluster_) return !nodes_.empty() && nodes_.begin()->second->link.connected();
    if (!known_) return false;
    for (auto& [a, n] : nodes_)
        if (n->link.connected()) return true;
    return false;
}

bool RedisRouter::connected(const std::string& key) const {
    if (!cluster_) return connected();
    Node* n = slot_node(slot(key));
    return n && n->link.connected();
}

// The node of the command's first key (EVAL and EVALSHA: the first of
// KEYS; the others we send: the argument after the name). Without a key,
// any.
RedisRouter::Node* RedisRouter::node_for(const std::vector<std::string>& args) const {
    if (!cluster_) return nodes_.empty() ? nullptr : nodes_.begin()->second.get();
    bool script = !args.empty() && (strcasecmp(args[0].c_str(), "EVAL") == 0 || strcasecmp(args[0].c_str(), "EVALSHA") == 0);
    const std::string* key = nullptr;
    if (script && args.size() > 3 && args[2] != "0") key = &args[3];
    else if (!script && args.size() > 1) key = &args[1];
    if (key) return slot_node(slot(*key));
    for (auto& [a, n] : nodes_)
        if (n->link.connected()) return n.get();
    return nodes_.empty() ? nullptr : nodes_.begin()->second.get();
}

void RedisRouter::command(std::vector<std::string> args, RedisLink::Reply cb) {
    send(std::make_shared<Request>(Request{std::move(args), std::move(cb), 0, 0}), nullptr);
}

// `asking`: the node an ASK named, told ASKING first on the same connection.
void RedisRouter::send(std::shared_ptr<Request> req, Node* asking) {
    Node* n = asking ? asking : node_for(req->args);
    if (!n) { // the slots are not known yet
        if (cluster_) refresh();
        return r_.post([req] { req->cb(nullptr); });
    }
    if (asking) n->link.command({"ASKING"}, [](redisReply*) {});
    n->link.command(req->args, [this, req, alive = std::weak_ptr<char>(alive_)](redisReply* r) {
        if (r && alive.lock() && redirected(req, r)) return;
        req->cb(r);
    });
}

// MOVED <slot> <host:port>: the slot lives there now (and others may have
// moved with it); ASK <slot> <host:port>: this key is on its way there,
// asked once. Either way the command goes there, a few times at most.
// TRYAGAIN: a script's keys are split between two nodes while their slot
// migrates; asked again a little later, until the move is done.
bool RedisRouter::redirected(const std::shared_ptr<Request>& req, redisReply* r) {
    if (!cluster_ || r->type != REDIS_REPLY_ERROR) return false;
    if (starts(r, "TRYAGAIN") && req->retries < kMaxRetries) {
        req->retries++;
        retried_++;
        r_.add_timer(kRetryAfter, [this, req, alive = std::weak_ptr<char>(alive_)] {
            if (alive.lock()) send(req, nullptr);
            else req->cb(nullptr);
        });
        return true;
    }
    if (req->redirects >= kMaxRedirects) return false;
    bool moved = starts(r, "MOVED "), ask = starts(r, "ASK ");
    if (!moved && !ask) return false;
    char to[256]; // hiredis ends a reply's string with a NUL
    int s = -1;
    if (std::sscanf(r->str, "%*s %d %255s", &s, to) != 2 || s < 0 || s >= kSlots || to[0] == ':') return false;
    req->redirects++;
    Node& n = add(named(to));
    if (ask) {
        asked_++;
        send(req, &n);
        return true;
    }
    moved_++;
    set_slot_node(s, &n);
    refresh();
    send(req, nullptr);
    return true;
}

// CLUSTER SLOTS, asked of a master that answers (else the url's node), at
// most once a second; again every second until every master answers.
void RedisRouter::refresh() {
    if (!cluster_ || refreshing_) return;
    Millis wait = refreshed_at_ + kRefreshEvery - r_.now();
    if (wait > 0) {
        if (!refresh_timer_.armed()) refresh_timer_.start(wait);
        return;
    }
    RedisLink* via = nullptr;
    for (auto& [a, n] : nodes_)
        if (!via && n->link.connected()) via = &n->link;
    if (!via && seed_ && seed_->connected()) via = seed_.get();
    if (!via) return refresh_timer_.start(kRefreshEvery); // the links are reconnecting meanwhile
    refreshing_ = true;
    refreshed_at_ = r_.now();
    refreshes_++;
    via->command({"CLUSTER", "SLOTS"}, [this, asked = via->node(), alive = std::weak_ptr<char>(alive_)](redisReply* r) {
        if (!alive.lock()) return;
        refreshing_ = false;
        if (r && r->type == REDIS_REPLY_ARRAY) learn(r, asked);
        else if (r && r->type == REDIS_REPLY_ERROR) last_error_ = "CLUSTER SLOTS: " + printable(r->str, 200);
        bool all = known_;
        for (auto& [a, n] : nodes_) all = all && n->link.connected();
        if (!all && !refresh_timer_.armed()) refresh_timer_.start(kRefreshEvery);
    });
}

// [[first, last, [ip, port, id, ...], replicas...], ...]: each slot's master.
// A master whose address is unknown to itself ("" or "?") is the node asked.
void RedisRouter::learn(redisReply* r, const std::string& asked) {
    std::vector<Node*> slots(kSlots);
    std::set<std::string> masters;
    size_t known = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply* e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2 || e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long first = e->element[0]->integer, last = e->element[1]->integer;
        if (first < 0 || last >= kSlots || first > last) continue;
        std::string ip(e->element[2]->element[0]->str, e->element[2]->element[0]->len);
        long long port = e->element[2]->element[1]->integer;
        std::string addr = ip.empty() || ip == "?" ? asked.substr(0, asked.rfind(':') + 1) + std::to_string(port)
                                                   : host_port(ip, port);
        masters.insert(addr);
        Node* n = &add(addr);
        for (long long s = first; s <= last; s++) slots[static_cast<size_t>(s)] = n;
        known += static_cast<size_t>(last - first + 1);
    }
    if (!known) return;
    slots_ = std::move(slots);
    if (!known_ || known != kSlots)
        r_.log().info("redis cluster: %zu masters serve %zu of %d slots", masters.size(), known, kSlots);
    known_ = true;
    last_error_.clear();
    // A node no longer a master goes once this pass is done: this answer may be on its link.
    for (auto it = nodes_.begin(); it != nodes_.end();) {
        if (masters.count(it->first)) {
            ++it;
            continue;
        }
        for (auto& [ch, at] : subscribed_at_)
            if (at == it->second.get()) at = nullptr;
        r_.release(std::move(it->second));
        it = nodes_.erase(it);
    }
    for (auto& ch : channels_) place(ch);
}

void RedisRouter::subscribe(const std::string& channel) {
    channels_.insert(channel);
    place(channel);
}

void RedisRouter::unsubscribe(const std::string& channel) {
    channels_.erase(channel);
    auto it = subscribed_at_.find(channel);
    if (it == subscribed_at_.end()) return;
    if (it->second && it->second->sub) it->second->sub->unsubscribe(channel);
    subscribed_at_.erase(it);
}

// A channel is subscribed on the node serving its slot, and moves with it.
void RedisRouter::place(const std::string& channel) {
    Node* to = cluster_ ? slot_node(slot(channel)) : node_for({});
    if (!to || !to->sub) return;
    Node*& at = subscribed_at_[channel];
    if (at == to) return;
    if (at && at->sub) at->sub->unsubscribe(channel);
    at = to;
    to->sub->subscribe(channel);
}

void RedisRouter::each(const std::function<void(const Node&)>& f) const {
    for (auto& [a, n] : nodes_) f(*n);
}

const std::string& RedisRouter::last_error() const {
    if (!last_error_.empty()) return last_error_;
    if (seed_ && !seed_->connected() && !seed_->last_error().empty() && !known_) return seed_->last_error();
    for (auto& [a, n] : nodes_)
        if (!n->link.last_error().empty()) return n->link.last_error();
    return last_error_;
}

} // namespace acemux
