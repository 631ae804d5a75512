// parse_reg, the golden regedit exports, and their TOML twins.
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/policy.h"

namespace rpcgate::policy {
namespace {

const std::string kDataDir = std::string(RPCGATE_SOURCE_DIR) + "/tests/data/policy/";

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// UTF-8 text as regedit writes it: UTF-16LE with a BOM, LF turned into CRLF.
std::vector<std::uint8_t> utf16_file(std::string_view text) {
  std::vector<std::uint8_t> out = {0xFF, 0xFE};
  for (char c : text) {
    if (c == '\n') out.insert(out.end(), {'\r', 0});
    out.push_back(static_cast<std::uint8_t>(c));  // ASCII only in these tests
    out.push_back(0);
  }
  return out;
}

std::vector<std::uint8_t> bytes_of(std::string_view text) {
  return {text.begin(), text.end()};
}

constexpr std::string_view kHeader = "Windows Registry Editor Version 5.00\n\n";
constexpr std::string_view kKey = "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Rpc\\Internet]\n";
// "5000-5099" as hex(7) UTF-16LE plus the double NUL.
constexpr std::string_view kPorts5000 =
    "\"Ports\"=hex(7):35,00,30,00,30,00,30,00,2d,00,35,00,30,00,39,00,39,00,00,00,00,00\n";
constexpr std::string_view kYesYes =
    "\"PortsInternetAvailable\"=\"Y\"\n\"UseInternetPorts\"=\"Y\"\n";

std::expected<PolicyInput, LoadError> parse_v5(std::string_view body) {
  return parse_reg(utf16_file(std::string(kHeader) + std::string(body)), "t.reg");
}

// ---- Golden files -------------------------------------------------------------------------

struct Golden {
  const char* name;
  bool valid;
  bool restricted;
  const char* internet;
  const char* intranet;
  PortClass default_class;
  const char* error_value;  // "" when valid
  std::optional<std::size_t> error_entry;
};

const Golden kGolden[] = {
    {"kb_example", true, true, "5000-6000", "49152-65535", PortClass::kInternet, "", {}},
    {"regedit4_ansi",
     true,
     true,
     "5000-5100,5984,6000-6099",
     "49152-65535",
     PortClass::kIntranet,
     "",
     {}},
    {"no_no",
     true,
     true,
     "49152-49999,50100-50199,50201-65535",
     "50000-50099,50200",
     PortClass::kIntranet,
     "",
     {}},
    {"invalid_70000", false, true, "", "", PortClass::kInternet, "Ports", 3},
    {"ports_reg_sz", false, true, "", "", PortClass::kInternet, "Ports", {}},
    {"other_keys", true, true, "5000-5199,5984", "49152-65535", PortClass::kInternet, "", {}},
    {"key_deleted", true, false, "49152-65535", "49152-65535", PortClass::kInternet, "", {}},
    {"lowercase_key",
     true,
     true,
     "5000-5099,5200-5299",
     "49152-65535",
     PortClass::kIntranet,
     "",
     {}},
    {"missing_value", false, true, "", "", PortClass::kInternet, "UseInternetPorts", {}},
    {"utf8_v5", true, true, "49152-49251", "49252-65535", PortClass::kInternet, "", {}},
};

void expect_golden(const Golden& g, const Policy& p) {
  EXPECT_EQ(p.valid, g.valid);
  EXPECT_EQ(p.restricted, g.restricted);
  EXPECT_EQ(p.internet.to_string(), g.internet);
  EXPECT_EQ(p.intranet.to_string(), g.intranet);
  EXPECT_EQ(p.default_class, g.default_class);
  if (g.valid) {
    EXPECT_FALSE(p.error.has_value());
  } else {
    ASSERT_TRUE(p.error.has_value());
    EXPECT_EQ(p.error->value, g.error_value);
    EXPECT_EQ(p.error->entry, g.error_entry);
  }
}

TEST(GoldenFiles, RegAndTomlResolveAlike) {
  for (const auto& g : kGolden) {
    SCOPED_TRACE(g.name);
    const std::string reg_path = kDataDir + g.name + ".reg";
    const std::string toml_path = kDataDir + g.name + ".toml";
    const auto reg_bytes = read_bytes(reg_path);
    const auto reg = parse_reg(reg_bytes, reg_path);
    ASSERT_TRUE(reg.has_value()) << reg.error().to_string();
    const auto toml_bytes = read_bytes(toml_path);
    const auto toml = parse_toml(
        std::string_view(reinterpret_cast<const char*>(toml_bytes.data()), toml_bytes.size()),
        toml_path);
    ASSERT_TRUE(toml.has_value()) << toml.error().to_string();

    const Policy from_reg = resolve(*reg);
    const Policy from_toml = resolve(*toml);
    expect_golden(g, from_reg);
    expect_golden(g, from_toml);
    EXPECT_EQ(from_reg.source, reg_path);
    EXPECT_EQ(from_toml.source, toml_path);
    EXPECT_EQ(from_reg.internet, from_toml.internet);
    EXPECT_EQ(from_reg.intranet, from_toml.intranet);

    // load_file sniffs the format from the content and gets the same answer.
    const auto loaded_reg = load_file(reg_path);
    ASSERT_TRUE(loaded_reg.has_value()) << loaded_reg.error().to_string();
    expect_golden(g, resolve(*loaded_reg));
    const auto loaded_toml = load_file(toml_path);
    ASSERT_TRUE(loaded_toml.has_value()) << loaded_toml.error().to_string();
    expect_golden(g, resolve(*loaded_toml));
  }
}

TEST(GoldenFiles, KbExampleValuesAsRegeditWroteThem) {
  const auto bytes = read_bytes(kDataDir + "kb_example.reg");
  ASSERT_GE(bytes.size(), 2u);
  EXPECT_EQ(bytes[0], 0xFF);  // what make_reg_files.py promises: UTF-16LE with a BOM
  EXPECT_EQ(bytes[1], 0xFE);
  const auto in = parse_reg(bytes, "kb.reg");
  ASSERT_TRUE(in.has_value());
  ASSERT_TRUE(in->ports.has_value());
  EXPECT_EQ(in->ports->type, RawValue::Type::kMultiString);
  EXPECT_EQ(in->ports->type_name, "REG_MULTI_SZ");
  EXPECT_EQ(in->ports->strings, std::vector<std::string>{"5000-6000"});
  EXPECT_EQ(in->ports->line, 4u);  // continued onto line 5
  EXPECT_EQ(in->ports_internet_available->line, 6u);
  EXPECT_EQ(in->use_internet_ports->line, 7u);
  EXPECT_EQ(in->use_internet_ports->strings, std::vector<std::string>{"Y"});
}

TEST(GoldenFiles, InvalidEntryMessage) {
  const auto in = parse_reg(read_bytes(kDataDir + "invalid_70000.reg"), "x.reg");
  ASSERT_TRUE(in.has_value());
  const Policy p = resolve(*in);
  ASSERT_TRUE(p.error.has_value());
  EXPECT_EQ(p.error->message, "Ports entry 3 \"70000\": port outside 0-65535");
  const auto sz = parse_reg(read_bytes(kDataDir + "ports_reg_sz.reg"), "x.reg");
  ASSERT_TRUE(sz.has_value());
  EXPECT_EQ(resolve(*sz).error->message, "Ports is REG_SZ; it must be REG_MULTI_SZ");
}

// Every prefix of every golden file is either a LoadError or a PolicyInput: no crash, no throw.
TEST(GoldenFiles, EveryPrefixParsesOrFailsCleanly) {
  for (const auto& g : kGolden) {
    SCOPED_TRACE(g.name);
    const auto reg = read_bytes(kDataDir + g.name + ".reg");
    const auto toml = read_bytes(kDataDir + g.name + ".toml");
    std::size_t reg_ok = 0;
    for (std::size_t n = 0; n <= reg.size(); ++n) {
      std::expected<PolicyInput, LoadError> r = std::unexpected(LoadError{});
      EXPECT_NO_THROW(r = parse_reg(std::span(reg.data(), n), "p.reg"));
      if (r) {
        ++reg_ok;
        (void)resolve(*r);
      } else {
        EXPECT_FALSE(r.error().message.empty());
      }
    }
    EXPECT_GT(reg_ok, 0u);
    std::size_t toml_ok = 0;
    for (std::size_t n = 0; n <= toml.size(); ++n) {
      std::expected<PolicyInput, LoadError> r = std::unexpected(LoadError{});
      EXPECT_NO_THROW(
          r = parse_toml(std::string_view(reinterpret_cast<const char*>(toml.data()), n), "p"));
      if (r) ++toml_ok;
    }
    EXPECT_GT(toml_ok, 0u);
    EXPECT_TRUE(parse_reg(reg, "full.reg").has_value());
  }
}

TEST(GoldenFiles, TruncatedInsideHexDataIsALoadErrorOrShorter) {
  // Cut kb_example.reg in the middle of "35,00": a lone hex digit "3" is still a byte, but a
  // cut after the first byte of a UTF-16 pair leaves an odd file.
  const auto full = read_bytes(kDataDir + "kb_example.reg");
  const auto odd = parse_reg(std::span(full.data(), full.size() - 1), "odd.reg");
  ASSERT_FALSE(odd.has_value());
  EXPECT_NE(odd.error().message.find("odd number of bytes"), std::string::npos);
  EXPECT_EQ(odd.error().line, 8u);
}

// ---- Syntax ---------------------------------------------------------------------------------

TEST(ParseReg, HeaderMustComeFirst) {
  auto r = parse_reg(utf16_file("; comment\nWindows Registry Editor Version 5.00\n"), "h.reg");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().line, 1u);
  EXPECT_NE(r.error().message.find("missing header"), std::string::npos);

  r = parse_reg(utf16_file("\n  \nWindows Registry Editor Version 5.00  \n"), "h.reg");
  EXPECT_TRUE(r.has_value());

  r = parse_reg(bytes_of(""), "empty.reg");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().to_string().substr(0, 10), "empty.reg:");

  r = parse_reg(bytes_of("windows registry editor version 5.00\n"), "h.reg");
  EXPECT_FALSE(r.has_value());
  r = parse_reg(bytes_of("[HKLM\\SOFTWARE]\n"), "h.reg");
  EXPECT_FALSE(r.has_value());
  // UTF-8 without BOM, LF line ends.
  r = parse_reg(bytes_of(std::string(kHeader) + std::string(kKey) + std::string(kPorts5000) +
                         std::string(kYesYes)),
                "u.reg");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(resolve(*r).internet.to_string(), "5000-5099");
}

TEST(ParseReg, SyntaxErrorsNameTheLine) {
  struct Case {
    const char* body;
    std::size_t line;
    const char* message_part;
  };
  // Line 1 is the header, line 2 blank, the body starts on line 3.
  const Case cases[] = {
      {"[HKLM\\SOFTWARE\n", 3, "']'"},
      {"[HKLM\\SOFTWARE]x\n", 3, "']'"},
      {"[]\n", 3, "empty key"},
      {"[HKLM\\X]\n\"Name\"=\"unterminated\n", 4, "unterminated quoted string"},
      {"[HKLM\\X]\n\"Name=\"x\"\n", 4, "'='"},
      {"[HKLM\\X]\n\"Name\n", 4, "unterminated quoted value name"},
      {"[HKLM\\X]\n\"Name\"=hex:zz\n", 4, "bad hex byte \"zz\""},
      {"[HKLM\\X]\n\"Name\"=hex:123\n", 4, "bad hex byte"},
      {"[HKLM\\X]\n\"Name\"=hex:01,,02\n", 4, "bad hex byte"},
      {"[HKLM\\X]\n\"Name\"=hex(7):41,00,\\\n  4g\n", 4, "bad hex byte \"4g\""},
      {"[HKLM\\X]\n\"Name\"=hex(7):41,00,42\n", 4, "odd number of bytes"},
      {"[HKLM\\X]\n\"Name\"=hex(zz):00\n", 4, "hex(N)"},
      {"[HKLM\\X]\n\"Name\"=hex(7)00\n", 4, "':'"},
      {"[HKLM\\X]\n\"Name\"=dword:123456789\n", 4, "dword"},
      {"[HKLM\\X]\n\"Name\"=dword:\n", 4, "dword"},
      {"[HKLM\\X]\n\"Name\"=5000\n", 4, "value data"},
      {"[HKLM\\X]\n\"Name\"=\"a\" trailing\n", 4, "after the closing quote"},
      {"[HKLM\\X]\n\nPorts=5000\n", 5, "expected a [key]"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    const auto r = parse_v5(c.body);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().line, c.line);
    EXPECT_NE(r.error().message.find(c.message_part), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().source, "t.reg");
  }
}

TEST(ParseReg, OddUtf16FileIsALoadError) {
  auto bytes = utf16_file(std::string(kHeader) + std::string(kKey));
  bytes.push_back(0x41);
  const auto r = parse_reg(bytes, "odd.reg");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("odd number of bytes"), std::string::npos);
}

TEST(ParseReg, ValueTypes) {
  const auto r = parse_v5(std::string(kKey) +
                          "\"Ports\"=dword:00001388\n"
                          "\"PortsInternetAvailable\"=hex(2):59,00,00,00\n"
                          "\"UseInternetPorts\"=hex:59\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ports->type, RawValue::Type::kOther);
  EXPECT_EQ(r->ports->type_name, "REG_DWORD");
  EXPECT_EQ(r->ports_internet_available->type_name, "REG_EXPAND_SZ");
  EXPECT_EQ(r->use_internet_ports->type_name, "REG_BINARY");
  EXPECT_EQ(resolve(*r).error->message, "Ports is REG_DWORD; it must be REG_MULTI_SZ");

  const auto q =
      parse_v5(std::string(kKey) + "\"Ports\"=hex(b):01,00,00,00,00,00,00,00\n" +
               "\"UseInternetPorts\"=hex(1f):00\n" + "\"PortsInternetAvailable\"=hex(0):\n");
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->ports->type_name, "REG_QWORD");
  EXPECT_EQ(q->use_internet_ports->type_name, "hex(1f)");
  EXPECT_EQ(q->ports_internet_available->type_name, "REG_NONE");
}

TEST(ParseReg, Hex1IsAString) {
  // REG_SZ written as bytes ("Y\0") is still REG_SZ.
  const auto r = parse_v5(std::string(kKey) + std::string(kPorts5000) +
                          "\"PortsInternetAvailable\"=hex(1):59,00,00,00\n"
                          "\"UseInternetPorts\"=hex(1):4e,00\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ports_internet_available->type, RawValue::Type::kString);
  EXPECT_EQ(r->ports_internet_available->strings, std::vector<std::string>{"Y"});
  EXPECT_EQ(r->use_internet_ports->strings, std::vector<std::string>{"N"});
  EXPECT_EQ(resolve(*r).default_class, PortClass::kIntranet);
}

TEST(ParseReg, MultiStringSplitting) {
  struct Case {
    const char* hex;
    std::vector<std::string> strings;
  };
  const Case cases[] = {
      {"41,00,00,00,42,00,00,00,00,00", {"A", "B"}},
      {"41,00,00,00,00,00,42,00,00,00", {"A"}},  // stops at the double NUL
      {"41,00,00,00", {"A"}},                    // no final empty string: fine
      {"41,00", {"A"}},                          // no NUL at all: the string still counts
      {"00,00,00,00", {}},
      {"00,00", {}},
      {"", {}},
      {"3d,d8,00,de,00,00", {"\xF0\x9F\x98\x80"}},  // surrogate pair U+1F600
      {"00,d8,41,00,00,00",
       {"\xEF\xBF\xBD"
        "A"}},  // lone surrogate -> U+FFFD
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.hex);
    const auto r = parse_v5(std::string(kKey) + "\"Ports\"=hex(7):" + c.hex + "\n");
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_EQ(r->ports->type, RawValue::Type::kMultiString);
    EXPECT_EQ(r->ports->strings, c.strings);
  }
}

TEST(ParseReg, GarbageStringsAreForResolveToJudge) {
  const auto r =
      parse_v5(std::string(kKey) + "\"Ports\"=hex(7):00,d8,00,00,00,00\n" + std::string(kYesYes));
  ASSERT_TRUE(r.has_value());
  const Policy p = resolve(*r);
  EXPECT_FALSE(p.valid);
  EXPECT_EQ(p.error->entry, 1u);
  EXPECT_EQ(p.error->message, "Ports entry 1 \"\xEF\xBF\xBD\": not a port or a range");
}

TEST(ParseReg, Continuation) {
  // Regedit's wrapping: ",\" then two spaces; blanks around are tolerated.
  const auto r = parse_v5(std::string(kKey) +
                          "\"Ports\"=hex(7):35,00,30,00,30,00,30,00,\\\n"
                          "  2d,00,35,00,30,00,39,00,39,00,00,00,\\  \n"
                          "\t00,00\n" +
                          std::string(kYesYes));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->ports->strings, std::vector<std::string>{"5000-5099"});
  EXPECT_EQ(r->ports->line, 4u);
  EXPECT_EQ(r->ports_internet_available->line, 7u);
  // A trailing backslash inside a REG_SZ is data, not a continuation.
  const auto s = parse_v5(std::string(kKey) + "\"UseInternetPorts\"=\"C:\\\\\"\n" +
                          "\"PortsInternetAvailable\"=\"Y\"\n");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->use_internet_ports->strings, std::vector<std::string>{"C:\\"});
  EXPECT_EQ(s->ports_internet_available->strings, std::vector<std::string>{"Y"});
  // A continuation on the last line continues into nothing.
  const auto t = parse_v5(std::string(kKey) + "\"Ports\"=hex(7):41,00,\\");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->ports->strings, std::vector<std::string>{"A"});
}

TEST(ParseReg, StringEscapes) {
  const auto r = parse_v5(std::string(kKey) +
                          "\"UseInternetPorts\"=\"a\\\"b\\\\c\\nd\"\n"
                          "\"Ports\\\"x\"=\"ignored\"\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->use_internet_ports->strings, std::vector<std::string>{"a\"b\\c\\nd"});
  EXPECT_FALSE(r->ports.has_value());
}

TEST(ParseReg, KeysAndDeletions) {
  struct Case {
    const char* name;
    std::string body;
    bool ports;
    bool pia;
    bool uip;
  };
  const std::string key(kKey);
  const std::string ports(kPorts5000);
  const std::string yy(kYesYes);
  const Case cases[] = {
      {"plain", key + ports + yy, true, true, true},
      {"hklm_alias", "[HKLM\\Software\\Microsoft\\Rpc\\Internet]\n" + ports + yy, true, true, true},
      {"lowercase", "[hkey_local_machine\\software\\microsoft\\rpc\\internet]\n" + ports + yy, true,
       true, true},
      {"trailing_backslash", "[HKLM\\SOFTWARE\\Microsoft\\Rpc\\Internet\\]\n" + ports + yy, true,
       true, true},
      {"subkey_ignored", "[HKLM\\SOFTWARE\\Microsoft\\Rpc\\Internet\\Sub]\n" + ports + yy, false,
       false, false},
      {"parent_ignored", "[HKLM\\SOFTWARE\\Microsoft\\Rpc]\n" + ports + yy, false, false, false},
      {"hkcu_ignored", "[HKEY_CURRENT_USER\\SOFTWARE\\Microsoft\\Rpc\\Internet]\n" + ports + yy,
       false, false, false},
      {"before_any_key", ports + yy, false, false, false},
      {"merge", key + ports + "[HKLM\\X]\n" + yy + key + yy, true, true, true},
      {"delete_value", key + ports + yy + "\"ports\"=-\n", false, true, true},
      {"delete_value_other_key", key + ports + yy + "[HKLM\\X]\n\"Ports\"=-\n", true, true, true},
      {"delete_key", key + ports + yy + "[-HKLM\\SOFTWARE\\Microsoft\\Rpc\\Internet]\n", false,
       false, false},
      {"delete_key_then_values_go_nowhere",
       key + ports + "[-HKLM\\SOFTWARE\\Microsoft\\Rpc\\Internet]\n" + yy, false, false, false},
      {"delete_key_recreate", key + ports + "[-" + key.substr(1) + key + yy, false, true, true},
      {"delete_parent", key + ports + yy + "[-HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft]\n", false,
       false, false},
      {"delete_sibling", key + ports + yy + "[-HKLM\\SOFTWARE\\Microsoft\\Rpc\\Other]\n", true,
       true, true},
      {"delete_subkey", key + ports + yy + "[-HKLM\\SOFTWARE\\Microsoft\\Rpc\\Internet\\Sub]\n",
       true, true, true},
      {"default_value_ignored", key + "@=\"Y\"\n@=hex(7):00,00\n", false, false, false},
      {"comments", key + "; \"Ports\"=\"x\"\n  ;indented\n" + yy, false, true, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto r = parse_v5(c.body);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    EXPECT_EQ(r->ports.has_value(), c.ports);
    EXPECT_EQ(r->ports_internet_available.has_value(), c.pia);
    EXPECT_EQ(r->use_internet_ports.has_value(), c.uip);
  }
}

TEST(ParseReg, LaterValueWinsAndNamesAreCaseInsensitive) {
  const auto r = parse_v5(std::string(kKey) + std::string(kPorts5000) + std::string(kYesYes) +
                          "\"USEINTERNETPORTS\"=\"N\"\n" + "\"ports\"=hex(7):36,00,00,00\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->use_internet_ports->strings, std::vector<std::string>{"N"});
  EXPECT_EQ(r->use_internet_ports->line, 7u);
  const Policy p = resolve(*r);
  EXPECT_EQ(p.internet.to_string(), "6");
  EXPECT_EQ(p.default_class, PortClass::kIntranet);
}

TEST(ParseReg, Regedit4IsAnsi) {
  // hex(7) in single bytes; a Latin-1 byte in a string decodes as U+00E9.
  const std::string text = std::string("REGEDIT4\r\n\r\n") + std::string(kKey) +
                           "\"Ports\"=hex(7):35,30,30,30,00,e9,00,00\r\n"
                           "\"PortsInternetAvailable\"=\"\xE9\"\r\n\"UseInternetPorts\"=\"Y\"\r\n";
  const auto r = parse_reg(bytes_of(text), "a.reg");
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->ports->strings, (std::vector<std::string>{"5000", "\xC3\xA9"}));
  EXPECT_EQ(r->ports_internet_available->strings, std::vector<std::string>{"\xC3\xA9"});
  // Odd byte counts are fine for ANSI data.
  const auto q = parse_reg(
      bytes_of("REGEDIT4\n" + std::string(kKey) + "\"Ports\"=hex(7):35,30,30,30,00\n"), "a.reg");
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->ports->strings, std::vector<std::string>{"5000"});
}

TEST(ParseReg, Limits) {
  // > 1 MiB: rejected before parsing.
  std::string big = std::string(kHeader);
  big.resize(kMaxInputBytes + 1, ';');
  auto r = parse_reg(bytes_of(big), "big.reg");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("larger than"), std::string::npos);
  // Exactly 1 MiB of comments is fine.
  big.resize(kMaxInputBytes);
  std::string ok = std::string(kHeader);
  while (ok.size() + 101 <= kMaxInputBytes)
    ok += ";" + std::string(99, 'x') + "\n";
  EXPECT_TRUE(parse_reg(bytes_of(ok), "ok.reg").has_value());

  // A physical line over 4096 characters.
  r = parse_reg(bytes_of(std::string(kHeader) + ";" + std::string(kMaxLineChars, 'x') + "\n"),
                "long.reg");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().line, 3u);
  EXPECT_NE(r.error().message.find("4096"), std::string::npos);
  // A 4096-character line is fine.
  EXPECT_TRUE(
      parse_reg(bytes_of(std::string(kHeader) + ";" + std::string(kMaxLineChars - 1, 'x') + "\n"),
                "ok.reg")
          .has_value());

  // Continuation lines that are each short but join to more than 4096 characters.
  std::string body = std::string(kKey) + "\"Ports\"=hex(7):";
  for (int i = 0; i < 200; ++i)
    body += "41,00,41,00,41,00,41,00,41,00,41,00,\\\n  ";
  body += "00,00\n";
  r = parse_reg(bytes_of(std::string(kHeader) + body), "join.reg");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().line, 4u);
  EXPECT_NE(r.error().message.find("4096"), std::string::npos);
}

}  // namespace
}  // namespace rpcgate::policy
