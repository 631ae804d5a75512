#include "ndr/binding.h"

#include <gtest/gtest.h>

#include "ndr/testing/test_util.h"

namespace rpcgate::ndr {
namespace {

using testing::err;

TEST(Binding, ParsesTheUsualForms) {
  auto b = parse_binding("ncacn_ip_tcp:127.0.0.1[49664]").value();
  EXPECT_FALSE(b.object);
  EXPECT_EQ(b.protseq, Protseq::kNcacnIpTcp);
  EXPECT_EQ(b.network_addr, "127.0.0.1");
  EXPECT_EQ(b.endpoint, "49664");

  b = parse_binding("e1af8308-5d1f-11c9-91a4-08002b14a0fa@ncacn_ip_tcp:host[135]").value();
  EXPECT_EQ(b.object, common::Uuid::parse("e1af8308-5d1f-11c9-91a4-08002b14a0fa"));
  EXPECT_EQ(b.network_addr, "host");

  b = parse_binding(R"(ncacn_np:\\HOST[\pipe\epmapper])").value();
  EXPECT_EQ(b.protseq, Protseq::kNcacnNp);
  EXPECT_EQ(b.network_addr, R"(\\HOST)");
  EXPECT_EQ(b.endpoint, R"(\pipe\epmapper)");
  // Backslash runs before a reserved character are halved: `a\\]` ends in one backslash.
  EXPECT_EQ(parse_binding(R"(ncalrpc:[a\\])").value().endpoint, "a\\");
  EXPECT_EQ(parse_binding(R"(ncalrpc:[a\]])").value().endpoint, "a]");

  b = parse_binding("ncalrpc:[epmapper]").value();
  EXPECT_EQ(b.protseq, Protseq::kNcalrpc);
  EXPECT_EQ(b.network_addr, "");
  EXPECT_EQ(b.endpoint, "epmapper");

  b = parse_binding("ncacn_ip_tcp:fe80::1[135]").value();
  EXPECT_EQ(b.network_addr, "fe80::1");
  EXPECT_EQ(b.endpoint, "135");

  b = parse_binding("ncacn_http:10.0.0.1[593,RpcProxy=proxy.example:443]").value();
  ASSERT_EQ(b.options.size(), 1u);
  EXPECT_EQ(b.options[0].first, "RpcProxy");
  EXPECT_EQ(b.options[0].second, "proxy.example:443");

  b = parse_binding("ncacn_ip_tcp:10.0.0.1").value();
  EXPECT_EQ(b.endpoint, "");
  b = parse_binding("ncacn_ip_tcp:10.0.0.1[endpoint=135]").value();
  EXPECT_EQ(b.endpoint, "135");
  b = parse_binding("ncacn_ip_tcp:[,opt=v]").value();
  EXPECT_EQ(b.endpoint, "");
  EXPECT_EQ(b.options.size(), 1u);
}

TEST(Binding, InvalidTable) {
  struct Case {
    std::string_view text;
    Errc expected;
  };
  const Case cases[] = {
      {"", Errc::kBindingSyntax},
      {"ncacn_ip_tcp", Errc::kBindingSyntax},
      {"ncacn_ip_tcp:host[135", Errc::kBindingSyntax},
      {"ncacn_ip_tcp:host[135]x", Errc::kBindingSyntax},
      {"ncacn_ip_tcp:host[1[35]", Errc::kBindingSyntax},
      {"not-a-uuid@ncacn_ip_tcp:host[135]", Errc::kBindingBadObjectUuid},
      {"ncacn_foo:host[1]", Errc::kBindingUnknownProtseq},
      {"NCACN_IP_TCP:host[1]", Errc::kBindingUnknownProtseq},
      {"ncacn_ip_tcp:host[65536]", Errc::kBindingBadEndpoint},
      {"ncacn_ip_tcp:host[-1]", Errc::kBindingBadEndpoint},
      {"ncacn_ip_tcp:host[+1]", Errc::kBindingBadEndpoint},
      {"ncacn_ip_tcp:host[80x]", Errc::kBindingBadEndpoint},
      {"ncadg_ip_udp:host[epmapper]", Errc::kBindingBadEndpoint},
      {"ncacn_np:host[epmapper]", Errc::kBindingBadEndpoint},
      {"ncacn_ip_tcp:fe80:::zz[135]", Errc::kBindingBadNetworkAddr},
      {"ncacn_ip_tcp:ho]st[135]", Errc::kBindingBadNetworkAddr},
      {"ncacn_ip_tcp:ho\nst[135]", Errc::kBindingBadNetworkAddr},
      {"ncacn_ip_tcp:host[135,novalue]", Errc::kBindingBadOption},
      {"ncacn_ip_tcp:host[135,=v]", Errc::kBindingBadOption},
  };
  for (const auto& c : cases) {
    auto r = parse_binding(c.text);
    ASSERT_FALSE(r) << c.text;
    EXPECT_EQ(r.error(), err(c.expected)) << c.text << ": " << r.error().message();
  }
}

TEST(Binding, FormatMatchesImpacketAndRoundTrips) {
  for (std::string_view text : {
           "ncacn_ip_tcp:127.0.0.1[49664]",
           "e1af8308-5d1f-11c9-91a4-08002b14a0fa@ncacn_ip_tcp:host[135]",
           R"(ncacn_np:\\HOST[\pipe\epmapper])",
           "ncacn_np:HOST[\\PIPE\\lsass]",
           "ncalrpc:[epmapper]",
           "ncacn_ip_tcp:fe80::1[135]",
           "ncacn_http:10.0.0.1[593,RpcProxy=proxy.example:443]",
           "ncacn_ip_tcp:10.0.0.1",
           "ncalrpc:[a\\,b\\]c\\[d]",
           R"(ncalrpc:[a\\\\])",
           "ncacn_ip_tcp:[,a=b,c=d\\,e]",
       }) {
    auto b = parse_binding(text);
    ASSERT_TRUE(b) << text << ": " << b.error().message();
    EXPECT_EQ(format_binding(*b), text);
    EXPECT_EQ(parse_binding(format_binding(*b)).value(), *b);
  }
}

TEST(Binding, EscapingRoundTripsAwkwardValues) {
  StringBinding b;
  b.protseq = Protseq::kNcalrpc;
  for (std::string value :
       {"a]b", "a[b", "a,b", "trail\\", "\\[", "\\\\", "x\\", "endpoint=x", "@:", "\\@"}) {
    b.endpoint = value;
    b.options = {{"k", value}};
    const auto text = format_binding(b);
    auto back = parse_binding(text);
    ASSERT_TRUE(back) << text;
    EXPECT_EQ(*back, b) << text;
  }
}

TEST(Binding, ProtseqNames) {
  EXPECT_EQ(to_string(Protseq::kNcadgIpUdp), "ncadg_ip_udp");
  EXPECT_EQ(parse_protseq("ncacn_unix_stream"), Protseq::kNcacnUnixStream);
  EXPECT_FALSE(parse_protseq("ncacn_spx"));
  EXPECT_TRUE(is_ip_protseq(Protseq::kNcacnHttp));
  EXPECT_FALSE(is_ip_protseq(Protseq::kNcacnNp));
}

}  // namespace
}  // namespace rpcgate::ndr
