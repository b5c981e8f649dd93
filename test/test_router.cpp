// Router builds: cross-compiled static binaries for aarch64, armhf and
// mipsel (and aarch64 dynamic), each run under qemu: -V, -t, and a stream
// from engine_sim to a player, with its size and idle RSS said. Each build
// takes minutes, so `make test` skips this and `make test-router` runs it
// (it installs Debian's cross toolchains and qemu-user-static).
#include <criterion/criterion.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <elf.h>
#include <fstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acemux/version.hpp"
#include "rig.hpp"

using namespace acemux::test;

namespace {

struct Target {
    const char* cross; // the toolchain's prefix
    const char* qemu;
    uint16_t machine;
    const char* sysroot; // for a dynamic build's libraries
};
const Target kAarch64{"aarch64-linux-gnu-", "qemu-aarch64-static", EM_AARCH64, "/usr/aarch64-linux-gnu"};
const Target kArmhf{"arm-linux-gnueabihf-", "qemu-arm-static", EM_ARM, "/usr/arm-linux-gnueabihf"};
const Target kMipsel{"mipsel-linux-gnu-", "qemu-mipsel-static", EM_MIPS, "/usr/mipsel-linux-gnu"};

struct Output {
    int status = -1;
    std::string text; // stdout and stderr
};

Output sh(const std::string& cmd) {
    Output o;
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return o;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) o.text.append(buf, n);
    int st = ::pclose(p);
    o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return o;
}

bool have(const std::string& tool) { return sh("command -v " + tool).status == 0; }

void skip_unless_asked(const Target& t) {
    if (!std::getenv("ACEMUX_ROUTER_TESTS")) cr_skip_test("router builds take minutes: `make test-router` runs them");
    for (std::string tool : {std::string(t.cross) + "g++", std::string(t.qemu)})
        if (!have(tool)) cr_skip_test("%s is not installed: `make test-router` installs it", tool.c_str());
}

// The build runs from inside a make: it must not join that make's jobserver.
std::string build(const Target& t, const std::string& vars, const std::string& binary) {
    Output o = sh("cd " + source_dir() + " && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s CROSS=" + t.cross + " " + vars +
                  " all");
    cr_assert_eq(o.status, 0, "router build failed:\n%s", o.text.c_str());
    std::string triplet(t.cross);
    return source_dir() + "/build/" + triplet.substr(0, triplet.size() - 1) + "/" + binary;
}

struct Elf {
    uint16_t machine = 0;
    bool interpreter = false; // PT_INTERP: needs a dynamic loader
};

// 32- or 64-bit, little-endian (every target here is).
Elf read_elf(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    unsigned char ident[EI_NIDENT] = {};
    f.read(reinterpret_cast<char*>(ident), sizeof ident);
    cr_assert(f && std::memcmp(ident, ELFMAG, SELFMAG) == 0 && ident[EI_DATA] == ELFDATA2LSB, "%s is not an ELF file",
              path.c_str());
    f.seekg(0);
    Elf e;
    auto scan = [&](auto eh, auto ph) {
        f.read(reinterpret_cast<char*>(&eh), sizeof eh);
        e.machine = eh.e_machine;
        for (int i = 0; i < eh.e_phnum; i++) {
            f.seekg(static_cast<std::streamoff>(eh.e_phoff + static_cast<uint64_t>(i) * eh.e_phentsize));
            f.read(reinterpret_cast<char*>(&ph), sizeof ph);
            if (ph.p_type == PT_INTERP) e.interpreter = true;
        }
    };
    if (ident[EI_CLASS] == ELFCLASS64) scan(Elf64_Ehdr{}, Elf64_Phdr{});
    else scan(Elf32_Ehdr{}, Elf32_Phdr{});
    return e;
}

// -V, -t on the sample config, -t on a broken one: what a package's smoke test runs.
void runs_under_qemu(const std::string& qemu) {
    Output v = sh(qemu + " -V");
    cr_assert_eq(v.status, 0, "%s", v.text.c_str());
    cr_assert_eq(v.text, std::string("acemux ") + ACEMUX_VERSION + "\n");

    std::string sample = source_dir() + "/etc/acemux.toml";
    Output ok = sh(qemu + " -t -c " + sample);
    cr_assert_eq(ok.status, 0, "%s", ok.text.c_str());
    cr_assert_eq(ok.text, sample + ": configuration ok\n");

    std::string bad = write_temp("[stream]\nring_chunks = 1\n");
    Output no = sh(qemu + " -t -c " + bad);
    ::unlink(bad.c_str());
    cr_assert_eq(no.status, 1, "%s", no.text.c_str());
    cr_assert_eq(no.text, bad + ":2:15: ring_chunks = 1 is out of range (4 to 4096)\n");
}

// The daemon itself under qemu: a player gets the stream, every packet in
// order; its size and the emulated process's idle RSS (qemu's own memory
// included) are said.
void streams_under_qemu(const Target& t, const std::string& binary) {
    EngineSim e;
    cr_assert(e.start());
    DaemonProc d;
    d.wrap = {t.qemu};
    d.binary = binary;
    cr_assert(d.start("[[engine]]\nhost = \"127.0.0.1\"\nport = " + std::to_string(e.port) + "\n"), "%s",
              d.proc.output().c_str());
    usleep(500000);
    double idle = rss_kib(d.proc.pid());
    TestPlayer p;
    cr_assert(p.open(d.port, kId) && wait_data(p, 20000), "%s", d.proc.output().c_str());
    read_player(p, 3000);
    cr_assert(p.check.clean() && p.check.data > 1000, "%s", p.check.summary().c_str());
    struct stat st {};
    ::stat(binary.c_str(), &st);
    cr_log_info("%s static: %lld KiB stripped; idle RSS under %s %.0f KiB (the emulator's included); a player got %llu "
                "packets, clean",
                t.cross, static_cast<long long>(st.st_size / 1024), t.qemu, idle,
                static_cast<unsigned long long>(p.check.data));
}

void static_build_runs(const Target& t) {
    skip_unless_asked(t);
    std::string fixed = build(t, "STATIC=1", "acemux-static");
    Elf e = read_elf(fixed);
    cr_assert_eq(e.machine, t.machine);
    cr_assert(!e.interpreter, "STATIC=1 must not need a dynamic loader");
    // No -L: there is no target library anywhere qemu would look.
    runs_under_qemu(std::string(t.qemu) + " " + fixed);
    streams_under_qemu(t, fixed);
}

} // namespace

// Dynamic and static: both builds of one target share their objects, so
// they are one test. `make test-router` runs the targets one after another
// (--jobs=1): they share the Debian sources unpacked under build/debsrc.
Test(router, aarch64_dynamic_and_static_run_under_qemu, .timeout = 1200) {
    skip_unless_asked(kAarch64);
    std::string dynamic = build(kAarch64, "", "acemux");
    Elf e = read_elf(dynamic);
    cr_assert_eq(e.machine, EM_AARCH64);
    cr_assert(e.interpreter, "a plain cross build links the target's shared libc");
    runs_under_qemu(std::string(kAarch64.qemu) + " -L " + kAarch64.sysroot + " " + dynamic);
    static_build_runs(kAarch64);
}

Test(router, armhf_static_runs_under_qemu, .timeout = 1200) { static_build_runs(kArmhf); }

Test(router, mipsel_static_runs_under_qemu, .timeout = 1200) { static_build_runs(kMipsel); }
