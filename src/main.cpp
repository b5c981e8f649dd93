// acemux: command line, daemonizing, pidfile and signals around Daemon.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <getopt.h>
#include <unistd.h>

#include "acemux/daemon.hpp"
#include "acemux/fd.hpp"
#include "acemux/net.hpp"
#include "acemux/version.hpp"

using namespace acemux;

namespace {

const char* const kDefaultConfig = "/etc/acemux/acemux.toml";

void usage(FILE* f) {
    std::fprintf(f,
                 "usage: acemux [-c FILE] [-t] [-f | -d] [-p PIDFILE] [-l stderr|syslog] [-V] [-h]\n"
                 "  -c, --config FILE       configuration file (default %s)\n"
                 "  -t, --test              check the configuration and exit (0: valid, 1: not)\n"
                 "  -f, --foreground        stay in the foreground (default)\n"
                 "  -d, --daemon            detach and run as a daemon\n"
                 "  -p, --pidfile PIDFILE   write the process id here (overrides server.pidfile)\n"
                 "  -l, --log stderr|syslog where the log goes (overrides [log] target, reloads too)\n"
                 "  --health ADDR:PORT      ask a running daemon's /health and exit 0 when it answers 200\n"
                 "  -V, --version           print the version and exit\n"
                 "  -h, --help              this help\n",
                 kDefaultConfig);
}

// acemux --health [ADDRESS:PORT]: GET /health of a running daemon, for a
// container's health check (a scratch image has no curl). Blocking is fine:
// this is its own short-lived process, not the loop.
// Exit 0 healthy, 1 anything else (Docker reserves 2); the three steps
// take 4.5 s at most, within a health check's usual 5 s.
int health_check(const std::string& where) {
    SockAddr a;
    std::string err;
    if (!parse_hostport(where, a, err)) {
        std::fprintf(stderr, "acemux --health: %s\n", err.c_str());
        return 1;
    }
    Fd fd(::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    timeval tv{1, 500000};
    if (fd) ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const char req[] = "GET /health HTTP/1.0\r\n\r\n";
    char buf[64] = {};
    errno = 0;
    if (!fd || ::connect(fd.get(), a.sa(), a.len) < 0 || ::send(fd.get(), req, sizeof req - 1, MSG_NOSIGNAL) < 0 ||
        ::recv(fd.get(), buf, sizeof buf - 1, MSG_WAITALL) < 12) {
        std::fprintf(stderr, "acemux --health: no answer from %s: %s\n", a.str().c_str(),
                     errno ? std::strerror(errno) : "too short");
        return 1;
    }
    bool ok = std::strncmp(buf + 8, " 200", 4) == 0;
    if (!ok) std::fprintf(stderr, "acemux --health: %s answered %.12s\n", a.str().c_str(), buf);
    return ok ? 0 : 1;
}

bool daemonize(std::string& err) {
    pid_t pid = ::fork();
    if (pid < 0) return err = std::string("fork: ") + std::strerror(errno), false;
    if (pid > 0) ::_exit(0);
    ::setsid();
    pid = ::fork();
    if (pid < 0) return err = std::string("fork: ") + std::strerror(errno), false;
    if (pid > 0) ::_exit(0);
    if (::chdir("/") < 0) return err = std::string("chdir /: ") + std::strerror(errno), false;
    ::umask(022);
    Fd null(::open("/dev/null", O_RDWR));
    for (int fd = 0; fd <= 2 && null; fd++) ::dup2(null.get(), fd);
    return true;
}

// Removes the pidfile when main returns, whatever the path out.
struct PidFile {
    std::string path;
    bool write(std::string& err) {
        FILE* f = std::fopen(path.c_str(), "w");
        if (!f) return err = path + ": " + std::strerror(errno), false;
        std::fprintf(f, "%d\n", static_cast<int>(::getpid()));
        std::fclose(f);
        return true;
    }
    ~PidFile() {
        if (!path.empty()) ::unlink(path.c_str());
    }
};

#ifdef ACEMUX_ROUTER
// A static binary cannot load glibc's NSS modules (a router has none to give
// it), so router builds read the account files directly, as busybox does.
const passwd* find_user(const char* name) {
    FILE* f = std::fopen("/etc/passwd", "re");
    const passwd* pw = nullptr;
    while (f && (pw = ::fgetpwent(f)) && std::strcmp(pw->pw_name, name) != 0) {}
    if (f) std::fclose(f);
    return pw;
}
const group* find_group(const char* name) {
    FILE* f = std::fopen("/etc/group", "re");
    const group* gr = nullptr;
    while (f && (gr = ::fgetgrent(f)) && std::strcmp(gr->gr_name, name) != 0) {}
    if (f) std::fclose(f);
    return gr;
}
#else
const passwd* find_user(const char* name) { return ::getpwnam(name); }
const group* find_group(const char* name) { return ::getgrnam(name); }
#endif

// After binding, a daemon started as root runs on as server.user/group. The
// pidfile is handed over so the daemon can still remove it.
bool drop_privileges(const Config& c, const std::string& pidfile, std::string& err) {
    if (c.user.empty() && c.group.empty()) return true;
    if (::geteuid() != 0) return true; // nothing to drop; the service manager chose the account
    const passwd* pw = c.user.empty() ? nullptr : find_user(c.user.c_str());
    if (!c.user.empty() && !pw) return err = "user \"" + c.user + "\" does not exist", false;
    gid_t gid = pw ? pw->pw_gid : 0;
    if (!c.group.empty()) {
        const group* gr = find_group(c.group.c_str());
        if (!gr) return err = "group \"" + c.group + "\" does not exist", false;
        gid = gr->gr_gid;
    }
    uid_t uid = pw ? pw->pw_uid : 0;
    if (!pidfile.empty() && ::chown(pidfile.c_str(), uid, gid) < 0) { /* best effort */ }
    if (::setgroups(1, &gid) < 0 || ::setgid(gid) < 0 || (pw && ::setuid(uid) < 0))
        return err = std::string("cannot switch account: ") + std::strerror(errno), false;
    if (pw && ::setuid(0) == 0) return err = "still able to regain root after dropping it", false;
    return true;
}

} // namespace

int main(int argc, char** argv) {
    std::string config_path = kDefaultConfig, pidfile;
    bool check = false, detach = false;
    int opt;
    std::string log_target;
    static const option longs[] = {{"config", 1, nullptr, 'c'},  {"test", 0, nullptr, 't'},    {"foreground", 0, nullptr, 'f'},
                                   {"daemon", 0, nullptr, 'd'},  {"pidfile", 1, nullptr, 'p'}, {"log", 1, nullptr, 'l'},
                                   {"version", 0, nullptr, 'V'}, {"help", 0, nullptr, 'h'},    {"health", 1, nullptr, 'H'},
                                   {nullptr, 0, nullptr, 0}};
    while ((opt = ::getopt_long(argc, argv, "c:tfdp:l:Vh", longs, nullptr)) != -1) {
        switch (opt) {
        case 'H': return health_check(optarg);
        case 'c': config_path = optarg; break;
        case 'l':
            log_target = optarg;
            if (log_target != "stderr" && log_target != "syslog") {
                std::fprintf(stderr, "acemux: -l takes stderr or syslog, not \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 't': check = true; break;
        case 'f': detach = false; break;
        case 'd': detach = true; break;
        case 'p': pidfile = optarg; break;
        case 'V': std::printf("acemux %s\n", ACEMUX_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        std::fprintf(stderr, "acemux: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    Config cfg;
    std::string err;
    if (!load_config(config_path, cfg, err)) {
        std::fprintf(stderr, "%s\n", err.c_str());
        return 1;
    }
    if (check) {
        std::printf("%s: configuration ok\n", config_path.c_str());
        return 0;
    }
    if (!pidfile.empty()) cfg.pidfile = pidfile;

    std::signal(SIGPIPE, SIG_IGN);
    // Every player is an fd: take what the hard limit allows.
    if (rlimit rl; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    Reactor reactor;
    Daemon daemon(reactor, std::move(cfg));
    if (!log_target.empty()) daemon.override_log_target(log_target);
    if (!daemon.start(err)) {
        reactor.log().error("cannot start: %s", err.c_str());
        reactor.log().flush();
        return 1;
    }
    if (detach && !daemonize(err)) {
        reactor.log().error("%s", err.c_str());
        return 1;
    }
    PidFile pid{daemon.config().pidfile};
    if (!pid.path.empty() && !pid.write(err)) {
        pid.path.clear();
        reactor.log().error("pidfile: %s", err.c_str());
        reactor.log().flush();
        return 1;
    }
    reactor.log().flush(); // opens the log's fd while we may still (root's stderr)
    if (!drop_privileges(daemon.config(), pid.path, err)) {
        reactor.log().error("%s", err.c_str());
        reactor.log().flush();
        return 1;
    }
    reactor.on_signal(SIGHUP, [&] { daemon.reload(); });
    reactor.on_signal(SIGTERM, [&] { daemon.shutdown(); });
    reactor.on_signal(SIGINT, [&] { daemon.shutdown(); });
    reactor.log().info("acemux %s started (pid %d, config %s)", ACEMUX_VERSION, static_cast<int>(::getpid()),
                       config_path.c_str());
    reactor.run();
    reactor.log().info("stopped");
    reactor.log().flush();
    return 0;
}
