// Router builds: the cross-compiled binary, dynamic and static, runs its -V
// and -t under qemu. Needs Debian's cross toolchain and qemu-user-static;
// without them the tests are skipped and say how to get them.
#include <criterion/criterion.h>

#include <cstdio>
#include <cstring>
#include <elf.h>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

#include "acemux/version.hpp"
#include "harness.hpp"

using namespace acemux::test;

namespace {

const char* const kCross = "aarch64-linux-gnu-";

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

void skip_without_cross_tools() {
    for (std::string tool : {std::string(kCross) + "g++", std::string("qemu-aarch64-static")})
        if (!have(tool))
            cr_skip_test("%s is not installed: `make CROSS=%s` installs the cross tools, then this test runs",
                         tool.c_str(), kCross);
}

// The build runs from inside `make test`: it must not join that make's jobserver.
std::string build(const std::string& vars, const std::string& binary) {
    Output o = sh("cd " + source_dir() + " && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s CROSS=" + kCross + " " +
                  vars + " all");
    cr_assert_eq(o.status, 0, "router build failed:\n%s", o.text.c_str());
    return source_dir() + "/build/aarch64-linux-gnu/" + binary;
}

struct Elf {
    uint16_t machine = 0;
    bool interpreter = false; // PT_INTERP: needs a dynamic loader
};

Elf read_elf(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    Elf64_Ehdr eh{};
    f.read(reinterpret_cast<char*>(&eh), sizeof eh);
    cr_assert(f && std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64,
              "%s is not a 64-bit ELF file", path.c_str());
    Elf e{eh.e_machine, false};
    for (int i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph{};
        f.seekg(static_cast<std::streamoff>(eh.e_phoff + static_cast<uint64_t>(i) * eh.e_phentsize));
        f.read(reinterpret_cast<char*>(&ph), sizeof ph);
        if (ph.p_type == PT_INTERP) e.interpreter = true;
    }
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

} // namespace

// One test, not two: both builds share their objects, so they cannot run at once.
Test(router, cross_builds_dynamic_and_static_run_under_qemu, .timeout = 600) {
    skip_without_cross_tools();
    std::string dynamic = build("", "acemux");
    Elf e = read_elf(dynamic);
    cr_assert_eq(e.machine, EM_AARCH64);
    cr_assert(e.interpreter, "a plain cross build links the target's shared libc");
    runs_under_qemu("qemu-aarch64-static -L /usr/aarch64-linux-gnu " + dynamic);

    std::string fixed = build("STATIC=1", "acemux-static");
    e = read_elf(fixed);
    cr_assert_eq(e.machine, EM_AARCH64);
    cr_assert(!e.interpreter, "STATIC=1 must not need a dynamic loader");
    // No -L: there is no aarch64 library anywhere qemu would look.
    runs_under_qemu("qemu-aarch64-static " + fixed);
}
