// The command line and process behaviour of the daemon binary.
#include <criterion/criterion.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.hpp"

using namespace acemux::test;

namespace {
int run(const std::vector<std::string>& args, std::string& out) {
    Proc p;
    std::vector<std::string> argv{bin_dir() + "/acemux"};
    argv.insert(argv.end(), args.begin(), args.end());
    cr_assert(p.spawn(argv));
    int rc = p.stop(0, 5000); // signal 0: just wait for it
    out = p.output();
    return rc;
}
std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}
} // namespace

Test(cli, check_accepts_the_sample_config, .timeout = 30) {
    std::string out;
    std::string path = source_dir() + "/etc/acemux.toml";
    cr_assert_eq(run({"-t", "-c", path}, out), 0, "%s", out.c_str());
    cr_assert_eq(out, path + ": configuration ok\n");
}

Test(cli, check_rejects_unknown_key_with_file_line_and_key, .timeout = 30) {
    std::string path = write_temp("[server]\nlisten = [\"127.0.0.1:0\"]\nbogus = 1\n");
    std::string out;
    cr_assert_eq(run({"-t", "-c", path}, out), 1);
    cr_assert_eq(out, path + ":3:1: unknown key \"bogus\" in [server]\n");
    unlink(path.c_str());
}

Test(cli, daemon_refuses_to_start_on_a_bad_config, .timeout = 30) {
    std::string path = write_temp("[stream]\nring_chunks = 2\n");
    std::string out;
    cr_assert_eq(run({"-f", "-c", path}, out), 1);
    cr_assert(out.find(path + ":2:15: ring_chunks = 2 is out of range") == 0, "%s", out.c_str());
}

// A congestion control the kernel lacks is a bad line: -t says so, and the daemon does not start.
Test(cli, a_congestion_control_the_kernel_lacks_is_a_bad_line, .timeout = 30) {
    std::string path = write_temp("[server]\nlisten = [\"127.0.0.1:0\"]\ntcp_congestion = \"nosuch\"\n");
    for (const char* mode : {"-t", "-f"}) {
        std::string out;
        cr_assert_eq(run({mode, "-c", path}, out), 1, "%s: %s", mode, out.c_str());
        cr_assert(out.find(path + ":3:18: tcp_congestion = \"nosuch\": this kernel has no such congestion control (it has: ") == 0,
                  "%s: %s", mode, out.c_str());
    }
    unlink(path.c_str());
}

// It is set on the listener: a reload that changes it says it waits for a restart.
Test(cli, tcp_congestion_is_logged_and_a_reload_says_it_changes_on_restart, .timeout = 30) {
    DaemonProc d;
    cr_assert(d.start("", "tcp_congestion = \"reno\"\n"));
    cr_assert(d.proc.output().find(":" + std::to_string(d.port) + ", tcp_congestion reno\n") != std::string::npos, "%s",
              d.proc.output().c_str());
    FILE* f = fopen(d.config.c_str(), "w");
    fputs("[server]\nlisten = [\"127.0.0.1:0\"]\n", f); // the system's
    fclose(f);
    kill(d.proc.pid(), SIGHUP);
    cr_assert(d.proc.wait_line("reload: tcp_congestion changes only on restart", 2000) != "", "%s", d.proc.output().c_str());
    cr_assert(d.proc.wait_line("applied", 2000) != "");
    cr_assert_eq(http_get(d.port, "/health").status, 200);
    cr_assert_eq(d.proc.stop(SIGTERM), 0);
}

Test(cli, version_help_and_usage_errors, .timeout = 30) {
    std::string out;
    cr_assert_eq(run({"-V"}, out), 0);
    cr_assert_eq(out.rfind("acemux ", 0), 0u);
    cr_assert_eq(run({"-h"}, out), 0);
    cr_assert(out.find("usage: acemux") == 0);
    cr_assert_eq(run({"-x"}, out), 2);
    cr_assert_eq(run({"extra"}, out), 2);
    cr_assert(out.find("unexpected argument \"extra\"") != std::string::npos);
    // The long forms, as packagers and scripts write them.
    cr_assert_eq(run({"--version"}, out), 0, "%s", out.c_str());
    cr_assert_eq(out.rfind("acemux ", 0), 0u);
    cr_assert_eq(run({"--help"}, out), 0, "%s", out.c_str());
    cr_assert(out.find("usage: acemux") == 0);
    std::string path = source_dir() + "/etc/acemux.toml";
    cr_assert_eq(run({"--test", "--config", path}, out), 0, "%s", out.c_str());
    cr_assert_eq(run({"--log", "kmsg"}, out), 2);
    cr_assert(out.find("-l takes stderr or syslog, not \"kmsg\"") != std::string::npos, "%s", out.c_str());
    cr_assert_eq(run({"--bogus"}, out), 2);
}

// Under systemd, stderr is journald's stream (JOURNAL_STREAM names it):
// each line carries its priority as <N> and no timestamp of its own.
// Elsewhere (a terminal, a pipe) lines keep their time and level word.
Test(cli, a_journald_stream_gets_priorities_and_no_timestamps, .timeout = 30) {
    std::string dir = temp_dir();
    std::string config = write_temp("[server]\nlisten = [\"127.0.0.1:0\"]\n[[engine]]\nhost = \"127.0.0.1\"\nport = 1\n");
    std::string out_path = dir + "/journal-" + std::to_string(::getpid());
    // The stream is a file here: its device and inode are what systemd would give.
    std::string cmd = "exec 2>" + out_path + "; JOURNAL_STREAM=$(stat -c '%d:%i' " + out_path + ") exec " + bin_dir() +
                      "/acemux -f -c " + config;
    Proc p;
    cr_assert(p.spawn({"sh", "-c", cmd}));
    usleep(500000);
    cr_assert_eq(p.stop(SIGTERM), 0);
    std::string log = read_file(out_path);
    cr_assert_neq(log.find("<6>acemux 0.1.0 started (pid"), std::string::npos, "%s", log.c_str());
    cr_assert_neq(log.find("<6>stopped\n"), std::string::npos, "%s", log.c_str());
    cr_assert_eq(log.find(" info "), std::string::npos, "no level word or time: %s", log.c_str());
    // The same stream without JOURNAL_STREAM: the usual lines.
    cr_assert(p.spawn({bin_dir() + "/acemux", "-f", "-c", config}));
    usleep(300000);
    p.stop(SIGTERM);
    cr_assert_neq(p.output().find(" info  acemux 0.1.0 started"), std::string::npos, "%s", p.output().c_str());
    unlink(out_path.c_str());
}

Test(cli, sigterm_exits_zero_and_removes_pidfile, .timeout = 30) {
    DaemonProc d;
    std::string pid = temp_dir() + "/acemux.pid";
    cr_assert(d.start("", "pidfile = \"" + pid + "\"\n"));
    struct stat st;
    cr_assert_eq(stat(pid.c_str(), &st), 0, "pidfile written");
    cr_assert_eq(d.proc.stop(SIGTERM), 0);
    cr_assert_neq(stat(pid.c_str(), &st), 0, "pidfile removed");
    cr_assert(d.proc.output().find("shutting down") != std::string::npos);
}

Test(cli, sighup_reloads_and_keeps_old_config_when_new_is_bad, .timeout = 30) {
    DaemonProc d;
    cr_assert(d.start());
    // A bad file: logged, the daemon keeps serving.
    FILE* f = fopen(d.config.c_str(), "w");
    fputs("[server]\nlisten = [\"127.0.0.1:0\"]\nnonsense = true\n", f);
    fclose(f);
    kill(d.proc.pid(), SIGHUP);
    std::string line = d.proc.wait_line("reload:", 2000);
    // One line says both: where the file is wrong, and that nothing changed.
    cr_assert(line.find(".toml:3:1: unknown key \"nonsense\" in [server]") != std::string::npos, "%s", line.c_str());
    cr_assert(line.find("keeping the running configuration") != std::string::npos, "%s", line.c_str());
    cr_assert_eq(http_get(d.port, "/health").status, 200);
    // A good file: applied.
    f = fopen(d.config.c_str(), "w");
    fputs("[server]\nlisten = [\"127.0.0.1:0\"]\nmax_connections = 7\n[log]\nlevel = \"info\"\n", f);
    fclose(f);
    kill(d.proc.pid(), SIGHUP);
    cr_assert(d.proc.wait_line("applied", 2000) != "");
    cr_assert_eq(http_get(d.port, "/health").status, 200);
    cr_assert_eq(d.proc.stop(SIGTERM), 0);
}

// The container's health check: the binary asks a running daemon's /health.
Test(cli, health_asks_a_running_daemon, .timeout = 30) {
    DaemonProc d;
    cr_assert(d.start());
    std::string out;
    cr_assert_eq(run({"--health", "127.0.0.1:" + std::to_string(d.port)}, out), 0, "%s", out.c_str());
    d.proc.stop();
    cr_assert_eq(run({"--health", "127.0.0.1:" + std::to_string(d.port)}, out), 1);
    cr_assert(out.find("no answer from 127.0.0.1:") != std::string::npos, "%s", out.c_str());
    cr_assert_eq(run({"--health", "nowhere"}, out), 1, "%s", out.c_str()); // 2 is Docker's reserved code
}
