// A whole file read at once (read_file): the configuration, a local
// playlist, the watch page's script.
#include <criterion/criterion.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acemux/file.hpp"
#include "harness.hpp"

using namespace acemux;
using test::temp_dir;
using test::write_temp;

Test(file, reads_every_byte_of_a_regular_file) {
    std::string text(300000, '\0');
    for (size_t i = 0; i < text.size(); i++) text[i] = static_cast<char>(i * 7 + i / 251);
    std::string path = write_temp(text, ".bin"), out = "old";
    cr_assert_eq(read_file(path, 1 << 20, out), "");
    cr_assert(out == text);
    cr_assert_eq(read_file(write_temp("", ".bin"), 1 << 20, out), "");
    cr_assert_eq(out, "", "an empty file is read as empty, not as what the string held");
    ::unlink(path.c_str());
}

Test(file, says_why_a_file_cannot_be_read) {
    std::string out;
    cr_assert_eq(read_file("/nonexistent/acemux.toml", 1 << 20, out), "cannot open: No such file or directory");
    cr_assert_eq(read_file(temp_dir(), 1 << 20, out), "not a regular file");
    std::string big = write_temp(std::string((2 << 20) + 1, 'x'), ".bin");
    cr_assert_eq(read_file(big, 2 << 20, out), "larger than 2 MiB");
    ::unlink(big.c_str());
}

// A FIFO would hold the loop until a writer came: it is refused at once.
Test(file, a_fifo_is_refused_without_waiting_for_a_writer, .timeout = 10) {
    std::string path = temp_dir() + "/fifo";
    cr_assert_eq(::mkfifo(path.c_str(), 0600), 0);
    std::string out;
    cr_assert_eq(read_file(path, 1 << 20, out), "not a regular file");
    ::unlink(path.c_str());
}
