#include "runtime/testing/test_interface.h"

#include <stdexcept>

#include <asio/steady_timer.hpp>

namespace rpcgate::runtime::testing {
namespace {

std::uint32_t read_u32(std::span<const std::uint8_t> s, common::Endian e) {
  if (s.size() < 4) return 0;
  return e == common::Endian::kLittle
             ? (s[0] | s[1] << 8 | s[2] << 16 | static_cast<std::uint32_t>(s[3]) << 24)
             : (static_cast<std::uint32_t>(s[0]) << 24 | s[1] << 16 | s[2] << 8 | s[3]);
}

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace

const rpc::SyntaxId& test_syntax() {
  static const rpc::SyntaxId s{*common::Uuid::parse("6b1d9f8e-3c57-4a8e-9d0a-2f1c4e5b7a01"), 1, 0};
  return s;
}

bool add_test_interface(Server& server) {
  return add_test_interface(server, test_syntax());
}

bool add_test_interface(Server& server, const rpc::SyntaxId& interface) {
  return server.add_interface(interface, [&server](IncomingCall& ctx, Responder r) {
    switch (ctx.opnum) {
      case 0:
        return r.reply(ctx.stub);
      case 1: {
        auto ms = read_u32(ctx.stub, ctx.endian);
        auto timer = std::make_shared<asio::steady_timer>(server.io());
        timer->expires_after(std::chrono::milliseconds(std::min<std::uint32_t>(ms, 60'000)));
        std::vector<std::uint8_t> stub(ctx.stub.begin(), ctx.stub.end());
        timer->async_wait([timer, stub = std::move(stub),
                           r = std::move(r)](const asio::error_code&) mutable { r.reply(stub); });
        return;
      }
      case 2: {
        auto size = std::min<std::uint32_t>(read_u32(ctx.stub, ctx.endian), 4u << 20);
        std::vector<std::uint8_t> blob(size);
        for (std::uint32_t i = 0; i < size; ++i)
          blob[i] = static_cast<std::uint8_t>(i);
        return r.reply(blob);
      }
      case 3:
        throw std::runtime_error("test handler throws");
      case 4: {
        std::vector<std::uint8_t> out;
        put_u32(out, ctx.peer_cred ? ctx.peer_cred->uid : 0xffffffffu);
        put_u32(out, ctx.may_register ? 1 : 0);
        return r.reply(out);
      }
      default:
        return fault_op_range(r);
    }
  });
}

}  // namespace rpcgate::runtime::testing
