#include "echo/echo.h"

#include <chrono>
#include <memory>
#include <utility>

#include <asio/steady_timer.hpp>

#include "ndr/ndr.h"

namespace rpcgate::echo {

#define ECHO_TRY(var, expr) \
  auto var = (expr);        \
  if (!var) return std::unexpected(var.error())

namespace {

using ndr::Decoder;
using ndr::Encoder;
using ndr::Errc;
using ndr::fail;

// Per-call decode bounds: a data array may be kMaxDataLength long, a string kMaxStringLength.
ndr::DecodeLimits limits() {
  ndr::DecodeLimits l;
  l.max_array_elements = kMaxDataLength;
  l.max_string_length = kMaxStringLength;
  l.max_total_alloc = kMaxDataLength + 64;
  return l;
}

// Runs `body` on a Decoder over the whole stub and requires it to be consumed.
template <typename T, typename Body>
Result<T> decode_whole(std::span<const std::uint8_t> stub, Endian endian, Body body) {
  Decoder d(stub, endian, limits());
  ECHO_TRY(v, body(d));
  if (auto r = d.expect_end(); !r) return std::unexpected(r.error());
  return std::move(*v);
}

template <typename Body>
std::vector<std::uint8_t> encode_with(Endian endian, Body body) {
  Encoder e(endian);
  body(e);
  return e.take();
}

// A conformant uint8 array whose max_count must be `expected` (size_is) when given.
Result<std::span<const std::uint8_t>> read_bytes(Decoder& d,
                                                 std::optional<std::uint32_t> expected) {
  ECHO_TRY(shape, d.conformant_array(1));
  if (expected && shape->max_count != *expected) return fail(Errc::kCountInconsistent);
  return d.bytes(shape->wire_count());
}

void write_bytes(Encoder& e, std::span<const std::uint8_t> data) {
  e.conformance(static_cast<std::uint32_t>(data.size()));
  e.bytes(data);
}

Result<std::uint16_t> read_enum1(Decoder& d) {
  return d.enum16();
}

Result<Enum2> read_enum2(Decoder& d) {
  // Structure alignment 4 (its widest member, the [v1_enum]).
  if (auto r = d.align(4); !r) return std::unexpected(r.error());
  ECHO_TRY(e1, d.enum16());
  ECHO_TRY(e2, d.enum32());
  return Enum2{*e1, *e2};
}

void write_enum2(Encoder& e, const Enum2& v) {
  e.align(4);
  e.enum16(v.e1);
  e.enum32(v.e2);
}

}  // namespace

rpc::SyntaxId rpcecho_syntax() {
  static const auto uuid = common::Uuid::parse("60a15ec5-4de8-11d7-a637-005056a20182");
  return rpc::SyntaxId{*uuid, 1, 0};
}

// ---------------------------------------------------------------- 0 AddOne

Result<AddOneRequest> AddOneRequest::decode(std::span<const std::uint8_t> stub, Endian endian) {
  return decode_whole<AddOneRequest>(stub, endian, [](Decoder& d) -> Result<AddOneRequest> {
    ECHO_TRY(v, d.u32());
    return AddOneRequest{*v};
  });
}
std::vector<std::uint8_t> AddOneRequest::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) { e.u32(in_data); });
}
Result<AddOneResponse> AddOneResponse::decode(std::span<const std::uint8_t> stub, Endian endian) {
  return decode_whole<AddOneResponse>(stub, endian, [](Decoder& d) -> Result<AddOneResponse> {
    ECHO_TRY(v, d.u32());
    return AddOneResponse{*v};
  });
}
std::vector<std::uint8_t> AddOneResponse::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) { e.u32(out_data); });
}

// ---------------------------------------------------------------- 1 EchoData, 2 SinkData

Result<DataRequest> DataRequest::decode(std::span<const std::uint8_t> stub, Endian endian) {
  return decode_whole<DataRequest>(stub, endian, [](Decoder& d) -> Result<DataRequest> {
    ECHO_TRY(len, d.u32());
    if (*len > kMaxDataLength) return fail(Errc::kCountOverLimit);
    ECHO_TRY(data, read_bytes(d, *len));
    return DataRequest{*data};
  });
}
std::vector<std::uint8_t> DataRequest::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) {
    e.u32(static_cast<std::uint32_t>(data.size()));
    write_bytes(e, data);
  });
}
Result<DataResponse> DataResponse::decode(std::span<const std::uint8_t> stub, Endian endian) {
  return decode_whole<DataResponse>(stub, endian, [](Decoder& d) -> Result<DataResponse> {
    ECHO_TRY(data, read_bytes(d, std::nullopt));
    return DataResponse{{data->begin(), data->end()}};
  });
}
std::vector<std::uint8_t> DataResponse::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) { write_bytes(e, data); });
}

// ---------------------------------------------------------------- 3 SourceData

Result<SourceDataRequest> SourceDataRequest::decode(std::span<const std::uint8_t> stub,
                                                    Endian endian) {
  return decode_whole<SourceDataRequest>(stub, endian, [](Decoder& d) -> Result<SourceDataRequest> {
    ECHO_TRY(len, d.u32());
    if (*len > kMaxDataLength) return fail(Errc::kCountOverLimit);
    return SourceDataRequest{*len};
  });
}
std::vector<std::uint8_t> SourceDataRequest::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) { e.u32(len); });
}

// ---------------------------------------------------------------- 4 TestCall

Result<TestCallRequest> TestCallRequest::decode(std::span<const std::uint8_t> stub, Endian endian) {
  // s1 is a top-level [ref] pointer: the conformant-varying string alone.
  return decode_whole<TestCallRequest>(stub, endian, [](Decoder& d) -> Result<TestCallRequest> {
    ECHO_TRY(s, d.wstring());
    return TestCallRequest{std::move(*s)};
  });
}
std::vector<std::uint8_t> TestCallRequest::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) { e.wstring(s1); });
}
Result<TestCallResponse> TestCallResponse::decode(std::span<const std::uint8_t> stub,
                                                  Endian endian) {
  // s2: [ref] -> [unique] -> string.
  return decode_whole<TestCallResponse>(stub, endian, [](Decoder& d) -> Result<TestCallResponse> {
    ECHO_TRY(present, d.unique_pointer());
    if (!*present) return TestCallResponse{};
    ECHO_TRY(s, d.wstring());
    return TestCallResponse{std::move(*s)};
  });
}
std::vector<std::uint8_t> TestCallResponse::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) {
    e.unique_pointer(s2.has_value());
    if (s2) e.wstring(*s2);
  });
}

// ---------------------------------------------------------------- 5 TestCall2

Result<TestCall2Request> TestCall2Request::decode(std::span<const std::uint8_t> stub,
                                                  Endian endian) {
  return decode_whole<TestCall2Request>(stub, endian, [](Decoder& d) -> Result<TestCall2Request> {
    ECHO_TRY(level, d.u16());
    return TestCall2Request{*level};
  });
}
std::vector<std::uint8_t> TestCall2Request::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) { e.u16(level); });
}

Result<TestCall2Response> TestCall2Response::decode(std::span<const std::uint8_t> stub,
                                                    Endian endian, std::uint16_t level) {
  return decode_whole<TestCall2Response>(
      stub, endian, [level](Decoder& d) -> Result<TestCall2Response> {
        ECHO_TRY(tag, d.union_discriminant(ndr::SwitchType::kU16, level));
        TestCall2Response r;
        r.info.level = static_cast<std::uint16_t>(*tag);
        // Each arm at its own alignment (see the header): 1 and 6 align 1, 2 align 2, 3 align 4,
        // 4, 5 and 7 align 8 (they hold a hyper).
        switch (*tag) {
          case 1: {
            ECHO_TRY(v, d.u8());
            r.info.v = *v;
            break;
          }
          case 2: {
            ECHO_TRY(v, d.u16());
            r.info.v = *v;
            break;
          }
          case 3: {
            ECHO_TRY(v, d.u32());
            r.info.v = *v;
            break;
          }
          case 4: {
            ECHO_TRY(v, d.u64());
            r.info.v = *v;
            break;
          }
          case 5:
          case 7: {
            if (auto a = d.align(8); !a) return std::unexpected(a.error());
            ECHO_TRY(v1, d.u8());
            ECHO_TRY(v, d.u64());
            r.info.v1 = *v1;
            r.info.v = *v;
            break;
          }
          case 6: {
            ECHO_TRY(v1, d.u8());
            ECHO_TRY(v, d.u8());
            r.info.v1 = *v1;
            r.info.v = *v;
            break;
          }
          default:
            return fail(Errc::kBadUnionDiscriminant);
        }
        ECHO_TRY(status, d.u32());
        r.result = *status;
        return r;
      });
}
std::vector<std::uint8_t> TestCall2Response::encode(Endian endian) const {
  if (info.level < 1 || info.level > 7) return {};
  return encode_with(endian, [&](Encoder& e) {
    e.union_discriminant(ndr::SwitchType::kU16, info.level);
    switch (info.level) {
      case 1:
        e.u8(static_cast<std::uint8_t>(info.v));
        break;
      case 2:
        e.u16(static_cast<std::uint16_t>(info.v));
        break;
      case 3:
        e.u32(static_cast<std::uint32_t>(info.v));
        break;
      case 4:
        e.u64(info.v);
        break;
      case 5:
      case 7:
        e.align(8);
        e.u8(info.v1);
        e.u64(info.v);
        break;
      default:  // 6
        e.u8(info.v1);
        e.u8(static_cast<std::uint8_t>(info.v));
        break;
    }
    e.u32(result);
  });
}

// ---------------------------------------------------------------- 6 TestSleep

Result<TestSleepRequest> TestSleepRequest::decode(std::span<const std::uint8_t> stub,
                                                  Endian endian) {
  return decode_whole<TestSleepRequest>(stub, endian, [](Decoder& d) -> Result<TestSleepRequest> {
    ECHO_TRY(s, d.u32());
    if (*s > kMaxSleepSeconds) return fail(Errc::kCountOverLimit);
    return TestSleepRequest{*s};
  });
}
std::vector<std::uint8_t> TestSleepRequest::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) { e.u32(seconds); });
}
Result<U32Response> U32Response::decode(std::span<const std::uint8_t> stub, Endian endian) {
  return decode_whole<U32Response>(stub, endian, [](Decoder& d) -> Result<U32Response> {
    ECHO_TRY(v, d.u32());
    return U32Response{*v};
  });
}
std::vector<std::uint8_t> U32Response::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) { e.u32(result); });
}

// ---------------------------------------------------------------- 7 TestEnum

Result<TestEnumArgs> TestEnumArgs::decode(std::span<const std::uint8_t> stub, Endian endian) {
  return decode_whole<TestEnumArgs>(stub, endian, [](Decoder& d) -> Result<TestEnumArgs> {
    TestEnumArgs a;
    ECHO_TRY(foo1, read_enum1(d));
    a.foo1 = *foo1;
    ECHO_TRY(foo2, read_enum2(d));
    a.foo2 = *foo2;
    ECHO_TRY(tag, d.union_discriminant(ndr::SwitchType::kU16, a.foo1));
    if (*tag == kEchoEnum1) {
      ECHO_TRY(e1, read_enum1(d));
      a.foo3_e1 = *e1;
    } else if (*tag == kEchoEnum2) {
      ECHO_TRY(e2, read_enum2(d));
      a.foo3_e2 = *e2;
    } else {
      return fail(Errc::kBadUnionDiscriminant);
    }
    return a;
  });
}
std::vector<std::uint8_t> TestEnumArgs::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) {
    e.enum16(foo1);
    write_enum2(e, foo2);
    e.union_discriminant(ndr::SwitchType::kU16, foo1);
    if (foo1 == kEchoEnum2)
      write_enum2(e, foo3_e2);
    else
      e.enum16(foo3_e1);
  });
}

// ---------------------------------------------------------------- 8 TestSurrounding

Result<Surrounding> Surrounding::decode(std::span<const std::uint8_t> stub, Endian endian) {
  return decode_whole<Surrounding>(stub, endian, [](Decoder& d) -> Result<Surrounding> {
    // Conformant structure (C706 14.3.7.1): the array's max_count precedes the structure.
    ECHO_TRY(max_count, d.u32());
    ECHO_TRY(x, d.u32());
    if (*max_count != *x) return fail(Errc::kCountInconsistent);
    if (*x > kMaxSurrounding) return fail(Errc::kCountOverLimit);
    if (std::uint64_t{*x} * 2 > d.remaining()) return fail(Errc::kTruncated);
    if (auto c = d.charge(std::size_t{*x} * 2); !c) return std::unexpected(c.error());
    Surrounding s;
    s.surrounding.reserve(*x);
    for (std::uint32_t i = 0; i < *x; ++i) {
      ECHO_TRY(v, d.u16());
      s.surrounding.push_back(*v);
    }
    return s;
  });
}
std::vector<std::uint8_t> Surrounding::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) {
    const auto x = static_cast<std::uint32_t>(surrounding.size());
    e.conformance(x);
    e.u32(x);
    for (auto v : surrounding)
      e.u16(v);
  });
}

// ---------------------------------------------------------------- 9 TestDoublePointer

Result<TestDoublePointerRequest> TestDoublePointerRequest::decode(
    std::span<const std::uint8_t> stub, Endian endian) {
  return decode_whole<TestDoublePointerRequest>(stub, endian,
                                                [](Decoder& d) -> Result<TestDoublePointerRequest> {
                                                  TestDoublePointerRequest r;
                                                  ECHO_TRY(outer, d.unique_pointer());  // *data
                                                  if (!*outer) return r;
                                                  ECHO_TRY(inner, d.unique_pointer());  // **data
                                                  if (!*inner) {
                                                    r.data.emplace();
                                                    return r;
                                                  }
                                                  ECHO_TRY(v, d.u16());
                                                  r.data.emplace(*v);
                                                  return r;
                                                });
}
std::vector<std::uint8_t> TestDoublePointerRequest::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) {
    e.unique_pointer(data.has_value());
    if (!data) return;
    e.unique_pointer(data->has_value());
    if (*data) e.u16(**data);
  });
}
Result<U16Response> U16Response::decode(std::span<const std::uint8_t> stub, Endian endian) {
  return decode_whole<U16Response>(stub, endian, [](Decoder& d) -> Result<U16Response> {
    ECHO_TRY(v, d.u16());
    return U16Response{*v};
  });
}
std::vector<std::uint8_t> U16Response::encode(Endian endian) const {
  return encode_with(endian, [&](Encoder& e) { e.u16(result); });
}

// ---------------------------------------------------------------- server logic

namespace {

EchoInfo samba_info(std::uint16_t level) {
  // rpc_echo.c's dcesrv_echo_TestCall2 values.
  switch (level) {
    case 1:
      return {1, 0, 10};
    case 2:
      return {2, 0, 20};
    case 3:
      return {3, 0, 30};
    case 4:
      return {4, 0, 40};
    case 5:
      return {5, 50, 60};
    case 6:
      return {6, 70, 80};
    default:
      return {7, 80, 90};
  }
}

}  // namespace

Result<std::vector<std::uint8_t>> answer(Opnum op, std::span<const std::uint8_t> stub,
                                         Endian endian) {
  switch (op) {
    case Opnum::kAddOne: {
      ECHO_TRY(r, AddOneRequest::decode(stub, endian));
      return AddOneResponse{r->in_data + 1}.encode(endian);
    }
    case Opnum::kEchoData: {
      ECHO_TRY(r, DataRequest::decode(stub, endian));
      return encode_with(endian, [&](Encoder& e) { write_bytes(e, r->data); });
    }
    case Opnum::kSinkData: {
      ECHO_TRY(r, DataRequest::decode(stub, endian));
      return std::vector<std::uint8_t>{};
    }
    case Opnum::kSourceData: {
      ECHO_TRY(r, SourceDataRequest::decode(stub, endian));
      DataResponse out;
      out.data.resize(r->len);
      for (std::uint32_t i = 0; i < r->len; ++i)
        out.data[i] = static_cast<std::uint8_t>(i);
      return out.encode(endian);
    }
    case Opnum::kTestCall: {
      ECHO_TRY(r, TestCallRequest::decode(stub, endian));
      return TestCallResponse{std::move(r->s1)}.encode(endian);
    }
    case Opnum::kTestCall2: {
      ECHO_TRY(r, TestCall2Request::decode(stub, endian));
      if (r->level < 1 || r->level > 7) return fail(Errc::kBadUnionDiscriminant);
      return TestCall2Response{samba_info(r->level), 0}.encode(endian);
    }
    case Opnum::kTestSleep: {
      ECHO_TRY(r, TestSleepRequest::decode(stub, endian));
      return U32Response{r->seconds}.encode(endian);
    }
    case Opnum::kTestEnum: {
      ECHO_TRY(r, TestEnumArgs::decode(stub, endian));
      r->foo2.e1 = kEchoEnum2;
      return r->encode(endian);
    }
    case Opnum::kTestSurrounding: {
      ECHO_TRY(r, Surrounding::decode(stub, endian));
      Surrounding out;
      out.surrounding.assign(r->surrounding.size() * 2, 0);
      return out.encode(endian);
    }
    case Opnum::kTestDoublePointer: {
      ECHO_TRY(r, TestDoublePointerRequest::decode(stub, endian));
      const std::uint16_t v = r->data && *r->data ? **r->data : 0;
      return U16Response{v}.encode(endian);
    }
  }
  return fail(Errc::kBadUnionDiscriminant);  // unreachable: callers check the opnum
}

runtime::Handler make_echo_handler(asio::io_context& io) {
  return [&io](runtime::IncomingCall& ctx, runtime::Responder responder) {
    if (ctx.opnum >= kOpnumCount) return runtime::fault_op_range(responder);
    const auto op = static_cast<Opnum>(ctx.opnum);
    auto out = answer(op, ctx.stub, ctx.endian);
    if (!out) return responder.fault(runtime::kFaultBadStubData);
    if (op != Opnum::kTestSleep) return responder.reply(*out);
    // Samba answers TestSleep asynchronously from a timer event; so do we, so a sleeping call
    // holds only its call slot.
    const auto seconds = TestSleepRequest::decode(ctx.stub, ctx.endian)->seconds;
    auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::seconds(seconds));
    timer->async_wait([timer, r = std::move(responder),
                       stub = std::move(*out)](const asio::error_code&) mutable { r.reply(stub); });
  };
}

}  // namespace rpcgate::echo
