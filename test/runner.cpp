// The suite's runner: the process that starts a worker per test and hears
// how each ended. It owns what outlives a single test: the directory every
// test writes its files in, and the check that nothing a test started is
// still running once the suite is done.
//
// Each process a test starts dies with the test (Proc::spawn), but its own
// children (Chromium's renderers) may not. Every one of them carries the
// run's directory in its environment (kRunVar), so the runner finds them,
// ends them and says so: a leak shows up as a line in the suite's output,
// not as a process found days later.
#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.hpp"

using namespace acemux::test;

namespace {

std::string run_dir;

// Runs that were killed left their directory: its name carries the runner's pid.
void remove_stale_dirs() {
    DIR* d = ::opendir("/tmp");
    for (dirent* e; d && (e = ::readdir(d));) {
        std::string name = e->d_name;
        for (std::string prefix : {"acemux-tests.", "acemux-run."}) {
            if (name.rfind(prefix, 0) != 0) continue;
            long pid = std::atol(name.c_str() + prefix.size());
            struct stat st;
            if (pid > 0 && ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) != 0) remove_run_dir("/tmp/" + name);
        }
    }
    if (d) ::closedir(d);
}

// Processes whose environment names this run, other than the runner itself.
std::vector<std::pair<pid_t, std::string>> left_running() {
    std::vector<std::pair<pid_t, std::string>> out;
    std::string tag = std::string(kRunVar) + "=" + run_dir;
    DIR* d = ::opendir("/proc");
    for (dirent* e; d && (e = ::readdir(d));) {
        pid_t pid = static_cast<pid_t>(std::atol(e->d_name));
        if (pid <= 0 || pid == ::getpid()) continue;
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        std::getline(stat, line);
        size_t paren = line.rfind(')');
        if (paren == std::string::npos || line.compare(paren + 2, 1, "Z") == 0) continue; // gone already
        std::ifstream env("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
        std::stringstream ss;
        ss << env.rdbuf();
        std::string all = ss.str(), var;
        bool ours = false;
        for (std::istringstream vars(all); std::getline(vars, var, '\0');) ours = ours || var == tag;
        if (!ours) continue;
        std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
        std::string name;
        std::getline(comm, name);
        out.emplace_back(pid, name);
    }
    if (d) ::closedir(d);
    return out;
}

} // namespace

ReportHook(PRE_ALL)(struct criterion_test_set*) {
    remove_stale_dirs();
    run_dir = make_run_dir("acemux-tests");
    if (run_dir.empty()) return;
    ::setenv(kRunVar, run_dir.c_str(), 1); // the workers, and all they start, inherit it
    ::setenv("TMPDIR", run_dir.c_str(), 1); // and what they start writes its own files there too (Chromium)
}

ReportHook(POST_ALL)(struct criterion_global_stats*) {
    if (run_dir.empty()) return;
    // A test's processes are killed as it ends, but a killed process takes
    // a moment to go (Chromium's namespace is torn down after it): only
    // what is still there a second later was left behind.
    auto left = left_running();
    for (int i = 0; i < 50 && !left.empty(); i++) {
        ::usleep(20 * 1000);
        left = left_running();
    }
    for (auto& [pid, name] : left) ::kill(pid, SIGKILL);
    if (!left.empty()) {
        std::string names;
        for (auto& [pid, name] : left) names += " " + name + "(" + std::to_string(pid) + ")";
        std::fprintf(stderr, "[LEAK] %zu processes started by tests were still running; killed:%s\n", left.size(),
                     names.c_str());
    }
    remove_run_dir(run_dir);
}
