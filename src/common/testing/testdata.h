// Test data files (`testdata/*.txt` beside the tests): one record a line, fields separated by
// tabs; blank lines and lines starting with '#' are skipped. For tests only.
#pragma once

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace rpcgate::common::testing {

// The records of the file at `path` (each a list of its tab-separated fields), or nullopt when
// the file cannot be opened.
inline std::optional<std::vector<std::vector<std::string>>> read_tab_records(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::vector<std::vector<std::string>> records;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::istringstream split(line);
    for (std::string field; std::getline(split, field, '\t');)
      fields.push_back(field);
    records.push_back(std::move(fields));
  }
  return records;
}

}  // namespace rpcgate::common::testing
