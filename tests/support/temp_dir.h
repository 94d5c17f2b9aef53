#pragma once
// A fresh directory per test, removed with everything in it afterwards; and a
// file that exists for a test's lifetime, in a directory of its own.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cascade::testing {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "cascade-test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string path() const { return path_.string(); }
  // A path inside it (nothing is created).
  std::string sub(std::string_view name) const { return (path_ / name).string(); }
  // Writes a file inside it (replacing one of that name); returns its path.
  std::string write(std::string_view name, std::string_view content) const {
    const std::string file = sub(name);
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }

 private:
  std::filesystem::path path_;
};

// A file holding `content`, named `name` (tools that go by the extension
// see it), removed with its directory afterwards.
class TempFile {
 public:
  explicit TempFile(std::string_view content, std::string_view name = "file")
      : dir_("cascade-file"), path_(dir_.write(name, content)) {}

  const std::string& path() const { return path_; }

 private:
  TempDir dir_;
  std::string path_;
};

}  // namespace cascade::testing
