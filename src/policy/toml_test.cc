// parse_toml and load_file.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "policy/policy.h"

namespace rpcgate::policy {
namespace {

TEST(ParseToml, NoPolicyTableIsUnrestricted) {
  for (const char* text : {"", "# nothing\n", "[daemon]\nport = 135\n", "[policy]\n"}) {
    SCOPED_TRACE(text);
    const auto r = parse_toml(text, "c.toml");
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_FALSE(r->ports || r->ports_internet_available || r->use_internet_ports);
    EXPECT_EQ(r->dynamic_range, kDefaultDynamicRange);
    EXPECT_EQ(r->source, "c.toml");
    EXPECT_FALSE(resolve(*r).restricted);
  }
}

TEST(ParseToml, ValuesAndLines) {
  const auto r = parse_toml(
      "[policy]\n"
      "ports = [\"5000-5100\", \"5984\"]\n"
      "ports_internet_available = \"N\"\n"
      "use_internet_ports = \"y\"\n"
      "dynamic_range = \" 5000 - 6000 \"\n",
      "c.toml");
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->ports->type, RawValue::Type::kMultiString);
  EXPECT_EQ(r->ports->strings, (std::vector<std::string>{"5000-5100", "5984"}));
  EXPECT_EQ(r->ports->line, 2u);
  EXPECT_EQ(r->ports_internet_available->type, RawValue::Type::kString);
  EXPECT_EQ(r->ports_internet_available->line, 3u);
  EXPECT_EQ(r->use_internet_ports->line, 4u);
  EXPECT_EQ(r->dynamic_range, (PortRange{5000, 6000}));
  const Policy p = resolve(*r);
  ASSERT_TRUE(p.valid);
  EXPECT_EQ(p.intranet.to_string(), "5000-5100,5984");
  EXPECT_EQ(p.internet.to_string(), "5101-5983,5985-6000");
  EXPECT_EQ(p.default_class, PortClass::kInternet);
}

TEST(ParseToml, TypesMapOntoRegistryTypes) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"ports = 5000\nports_internet_available = \"Y\"\nuse_internet_ports = \"Y\"\n",
       "Ports is a TOML integer; it must be REG_MULTI_SZ"},
      {"ports = \"5000\"\nports_internet_available = \"Y\"\nuse_internet_ports = \"Y\"\n",
       "Ports is a TOML string; it must be REG_MULTI_SZ"},
      {"ports = [5000]\nports_internet_available = \"Y\"\nuse_internet_ports = \"Y\"\n",
       "Ports is a TOML array with non-string elements; it must be REG_MULTI_SZ"},
      {"ports = [\"5000\", 1]\nports_internet_available = \"Y\"\nuse_internet_ports = \"Y\"\n",
       "Ports is a TOML array with non-string elements; it must be REG_MULTI_SZ"},
      {"ports = {a = 1}\nports_internet_available = \"Y\"\nuse_internet_ports = \"Y\"\n",
       "Ports is a TOML table; it must be REG_MULTI_SZ"},
      {"ports = []\nports_internet_available = \"Y\"\nuse_internet_ports = \"Y\"\n",
       "Ports has no entries"},
      {"ports = [\"5000\"]\nports_internet_available = true\nuse_internet_ports = \"Y\"\n",
       "PortsInternetAvailable is a TOML boolean; it must be REG_SZ \"Y\" or \"N\" (write \"Y\" "
       "or \"N\" as a string, not true/false)"},
      {"ports = [\"5000\"]\nports_internet_available = \"Y\"\nuse_internet_ports = 1.5\n",
       "UseInternetPorts is a TOML float; it must be REG_SZ \"Y\" or \"N\""},
      {"ports = [\"5000\"]\nports_internet_available = [\"Y\"]\nuse_internet_ports = \"Y\"\n",
       "PortsInternetAvailable is a TOML array of strings; it must be REG_SZ \"Y\" or \"N\""},
      {"ports = [\"5000\"]\nuse_internet_ports = \"Y\"\n",
       "PortsInternetAvailable is missing: when any of Ports, PortsInternetAvailable, "
       "UseInternetPorts is set, all three must be"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const auto r = parse_toml(std::string("[policy]\n") + c.text, "c.toml");
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    const Policy p = resolve(*r);
    EXPECT_FALSE(p.valid);
    ASSERT_TRUE(p.error.has_value());
    EXPECT_EQ(p.error->message, c.message);
  }
}

TEST(ParseToml, LoadErrors) {
  struct Case {
    const char* text;
    std::size_t line;
    const char* message_part;
  };
  const Case cases[] = {
      {"[policy]\nport = [\"5000\"]\n", 2,
       "unknown key \"port\" in [policy]; valid keys: ports, ports_internet_available, "
       "use_internet_ports, dynamic_range"},
      {"[policy]\nports = [\"5000\"\n", 2, "TOML: "},
      {"[policy]\nports = \"unterminated\n", 2, "TOML: "},
      {"policy = 5\n", 1, "\"policy\" must be a table"},
      {"[policy]\n\ndynamic_range = \"6000-5000\"\n", 3, "dynamic_range"},
      {"[policy]\ndynamic_range = 49152\n", 2, "dynamic_range"},
      {"[policy]\ndynamic_range = \"49152-70000\"\n", 2, "dynamic_range"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const auto r = parse_toml(c.text, "c.toml");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().source, "c.toml");
    EXPECT_EQ(r.error().line, c.line);
    EXPECT_NE(r.error().message.find(c.message_part), std::string::npos) << r.error().message;
  }
}

TEST(ParseToml, Limits) {
  std::string text = "[policy]\nports = [";
  for (std::size_t i = 0; i < kMaxPortsEntries; ++i)
    text += "\"1\",";
  const std::string at_limit = text + "]\n";
  const auto ok = parse_toml(at_limit, "c.toml");
  ASSERT_TRUE(ok.has_value()) << ok.error().to_string();
  EXPECT_EQ(ok->ports->strings.size(), kMaxPortsEntries);

  const auto over = parse_toml(text + "\"1\"]\n", "c.toml");
  ASSERT_FALSE(over.has_value());
  EXPECT_NE(over.error().message.find("65536"), std::string::npos);
  EXPECT_EQ(over.error().line, 2u);

  std::string big = "# " + std::string(kMaxInputBytes, 'x') + "\n";
  const auto too_big = parse_toml(big, "c.toml");
  ASSERT_FALSE(too_big.has_value());
  EXPECT_NE(too_big.error().message.find("larger than"), std::string::npos);
}

class LoadFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("rpcgate_policy_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path write(const char* name, const std::string& bytes) {
    const auto path = dir_ / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(LoadFile, MissingFileNamesTheError) {
  const auto r = load_file(dir_ / "absent.toml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "No such file or directory");
  EXPECT_EQ(r.error().line, 0u);
  const auto d = load_file(dir_);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().message, "Is a directory");
}

TEST_F(LoadFile, SniffsTheFormat) {
  // A regedit header after blank lines and a UTF-8 BOM: .reg, whatever the name.
  auto r = load_file(write("policy.conf",
                           "\xEF\xBB\xBF\r\nREGEDIT4\r\n\r\n"
                           "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Rpc\\Internet]\r\n"
                           "\"UseInternetPorts\"=\"Y\"\r\n"));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->use_internet_ports->type_name, "REG_SZ");
  // A UTF-8 BOM before TOML is skipped.
  r = load_file(write("bom.toml", "\xEF\xBB\xBF[policy]\nuse_internet_ports = \"Y\"\n"));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->use_internet_ports->type_name, "string");
  // Neither: TOML's error, with its line.
  r = load_file(write("bad.reg", "Windows Registry Editor Version 4.00\n"));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("TOML"), std::string::npos);
  EXPECT_EQ(r.error().line, 1u);
}

TEST_F(LoadFile, SizeLimit) {
  const auto at = load_file(write("at.toml", std::string(kMaxInputBytes, '\n')));
  EXPECT_TRUE(at.has_value());
  const auto over = load_file(write("over.toml", std::string(kMaxInputBytes + 1, '\n')));
  ASSERT_FALSE(over.has_value());
  EXPECT_NE(over.error().message.find("larger than 1048576 bytes"), std::string::npos);
}

}  // namespace
}  // namespace rpcgate::policy
