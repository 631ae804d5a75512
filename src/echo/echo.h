// rpcecho: the DCE/RPC test interface of Samba (librpc/idl/echo.idl), uuid
// 60a15ec5-4de8-11d7-a637-005056a20182 v1.0 - sans-I/O stub codecs for its ten operations and the
// server logic as a runtime::Handler (rpcgate-echo serves it).
//
// Codecs. For every operation X there is an XRequest and an XResponse struct with
//   static Result<X...> decode(std::span<const std::uint8_t> stub, Endian endian);
//   std::vector<std::uint8_t> encode(Endian endian) const;
// decode() reads one whole NDR20 stub in `endian` (the PDU's drep) and fails on anything else:
// ndr::Errc::kTruncated (a proper prefix of a valid stub; kCountOverLimit when the cut falls in
// an array body, whose count then exceeds what remains), kTrailingBytes (bytes after the
// last parameter), kCountInconsistent (a size_is(len) array whose conformance is not len, or an
// echo_Surrounding whose max_count is not x), kCountOverLimit (a count above the limits below,
// checked before anything is allocated), kBadUnionDiscriminant (a union switch value with no arm,
// or one that disagrees with its [switch_is]), kEnumOutOfRange, kNullRefPointer and the string
// errors of ndr::Decoder::wstring(). Views (std::span members) point into `stub`.
// encode() writes zero pad and Windows-style referent ids (0x00020000, +4), as Samba and Windows
// do; a struct that breaks its documented invariant (e.g. x != surrounding.size()) is encoded as
// given - keeping it consistent is the caller's job.
//
// The wire layout is the one Samba's pidl stubs produce (the reference client and server of the
// interface):
//   * top-level pointer parameters are [ref] (no referent id), the pointers below them are
//     [unique] (pointer_default(unique)): TestCall's s2, TestDoublePointer's ** and *;
//   * echo_Info and echo_Enum3 are non-encapsulated unions with a uint16 switch: the switch value,
//     then the arm at the arm's own alignment (pidl aligns union arms to the union's largest arm
//     only in NDR64 or for [ms_union], which echo.idl does not use);
//   * echo_Surrounding is a conformant structure: max_count, x, then x uint16s.
//
// Limits (a test interface must not let one call take the host's memory or a connection's call
// slots forever):
//   kMaxDataLength    EchoData / SinkData / SourceData len (16 MiB; the runtime further bounds a
//                     request stub by rpc::ReassemblyLimits::max_stub_size, 4 MiB);
//   kMaxStringLength  TestCall s1, UTF-16 code units including the NUL;
//   kMaxSurrounding   TestSurrounding x (the answer carries 2x uint16s);
//   kMaxSleepSeconds  TestSleep seconds (one hour).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "common/bytes.h"
#include "ndr/errc.h"
#include "rpc/pdu.h"
#include "runtime/server.h"

namespace rpcgate::echo {

using common::Endian;
using ndr::Result;

// 60a15ec5-4de8-11d7-a637-005056a20182 v1.0.
rpc::SyntaxId rpcecho_syntax();

enum class Opnum : std::uint16_t {
  kAddOne = 0,
  kEchoData = 1,
  kSinkData = 2,
  kSourceData = 3,
  kTestCall = 4,
  kTestCall2 = 5,
  kTestSleep = 6,
  kTestEnum = 7,
  kTestSurrounding = 8,
  kTestDoublePointer = 9,
};
inline constexpr std::uint16_t kOpnumCount = 10;

inline constexpr std::uint32_t kMaxDataLength = 16u << 20;
inline constexpr std::uint32_t kMaxStringLength = 65536;
inline constexpr std::uint32_t kMaxSurrounding = 1u << 20;
inline constexpr std::uint32_t kMaxSleepSeconds = 3600;

// echo_Enum1 values (enum16) and echo_Enum1_32 values ([v1_enum], 32 bits).
inline constexpr std::uint16_t kEchoEnum1 = 1;
inline constexpr std::uint16_t kEchoEnum2 = 2;

// --- 0 echo_AddOne([in] uint32 in_data, [out] uint32 *out_data) ---
struct AddOneRequest {
  std::uint32_t in_data = 0;
  static Result<AddOneRequest> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};
struct AddOneResponse {
  std::uint32_t out_data = 0;
  static Result<AddOneResponse> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};

// --- 1 echo_EchoData(len, [size_is(len)] uint8 in_data[], [out, size_is(len)] out_data[]) ---
// 2 echo_SinkData(len, [size_is(len)] uint8 data[]) has the same request layout.
struct DataRequest {
  std::span<const std::uint8_t> data;  // len = data.size(); a view into the stub
  static Result<DataRequest> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};
using EchoDataRequest = DataRequest;
using SinkDataRequest = DataRequest;
// EchoData's and SourceData's response: one conformant uint8 array (max_count, bytes).
struct DataResponse {
  std::vector<std::uint8_t> data;
  static Result<DataResponse> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};
using EchoDataResponse = DataResponse;
using SourceDataResponse = DataResponse;
// SinkData's response is the empty stub.

// --- 3 echo_SourceData([in] uint32 len, [out, size_is(len)] uint8 data[]) ---
struct SourceDataRequest {
  std::uint32_t len = 0;  // <= kMaxDataLength
  static Result<SourceDataRequest> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};

// --- 4 echo_TestCall([in, string, charset(UTF16)] uint16 *s1, [out, ...] uint16 **s2) ---
struct TestCallRequest {
  std::u16string s1;  // without the NUL
  static Result<TestCallRequest> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};
struct TestCallResponse {
  std::optional<std::u16string> s2;  // nullopt: a NULL *s2
  static Result<TestCallResponse> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};

// --- 5 NTSTATUS echo_TestCall2([in] uint16 level, [out, switch_is(level)] echo_Info *info) ---
struct TestCall2Request {
  std::uint16_t level = 0;
  static Result<TestCall2Request> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};
// echo_Info, flattened. Fields used per level (others are ignored by encode and 0 after decode):
//   1 info1.v = v (uint8)   2 info2.v = v (uint16)   3 info3.v = v (uint32)   4 info4.v = v (hyper)
//   5 info5 {v1, v2 = v (hyper)}   6 info6 {v1, info1.v = v (uint8)}   7 info7 {v1, info4.v = v}
struct EchoInfo {
  std::uint16_t level = 1;  // 1..7
  std::uint8_t v1 = 0;
  std::uint64_t v = 0;
  friend bool operator==(const EchoInfo&, const EchoInfo&) = default;
};
struct TestCall2Response {
  EchoInfo info;
  std::uint32_t result = 0;  // NTSTATUS
  // `level` is the request's (the [switch_is]); the wire discriminant must equal it.
  static Result<TestCall2Response> decode(std::span<const std::uint8_t> stub, Endian endian,
                                          std::uint16_t level);
  // info.level outside 1..7 cannot be encoded: returns an empty vector.
  std::vector<std::uint8_t> encode(Endian endian) const;
};

// --- 6 uint32 echo_TestSleep([in] uint32 seconds) ---
struct TestSleepRequest {
  std::uint32_t seconds = 0;  // <= kMaxSleepSeconds
  static Result<TestSleepRequest> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};
// TestSleep's (uint32) and TestDoublePointer's (uint16) responses are the return value alone.
struct U32Response {
  std::uint32_t result = 0;
  static Result<U32Response> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};
using TestSleepResponse = U32Response;

// --- 7 echo_TestEnum([in,out,ref] echo_Enum1 *foo1, [in,out,ref] echo_Enum2 *foo2,
//                     [in,out,ref,switch_is(*foo1)] echo_Enum3 *foo3) ---
// The request and the response have the same layout.
struct Enum2 {
  std::uint16_t e1 = 0;  // echo_Enum1 (enum16, <= 0x7fff)
  std::uint32_t e2 = 0;  // echo_Enum1_32 ([v1_enum])
  friend bool operator==(const Enum2&, const Enum2&) = default;
};
struct TestEnumArgs {
  std::uint16_t foo1 = kEchoEnum1;  // also selects foo3's arm: kEchoEnum1 -> foo3_e1, 2 -> foo3_e2
  Enum2 foo2;
  std::uint16_t foo3_e1 = 0;
  Enum2 foo3_e2;
  friend bool operator==(const TestEnumArgs&, const TestEnumArgs&) = default;
  // kBadUnionDiscriminant: foo1 is neither 1 nor 2, or foo3's switch differs from foo1.
  static Result<TestEnumArgs> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};

// --- 8 echo_TestSurrounding([in,out,ref] echo_Surrounding *data) ---
// Request and response: echo_Surrounding { uint32 x; [size_is(x)] uint16 surrounding[*]; }.
struct Surrounding {
  std::vector<std::uint16_t> surrounding;  // x = surrounding.size() <= kMaxSurrounding
  static Result<Surrounding> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};

// --- 9 uint16 echo_TestDoublePointer([in] uint16 ***data) ---
struct TestDoublePointerRequest {
  // nullopt: *data is NULL; a nullopt inside: **data is NULL; else ***data.
  std::optional<std::optional<std::uint16_t>> data;
  static Result<TestDoublePointerRequest> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};
struct U16Response {
  std::uint16_t result = 0;
  static Result<U16Response> decode(std::span<const std::uint8_t> stub, Endian endian);
  std::vector<std::uint8_t> encode(Endian endian) const;
};
using TestDoublePointerResponse = U16Response;

// --- server logic (Samba source4/rpc_server/echo/rpc_echo.c semantics) ---
// The response stub for a call whose answer is immediate, or an error:
//   AddOne in_data + 1 (mod 2^32); EchoData the data; SinkData nothing; SourceData len bytes
//   i & 0xff; TestCall s2 = s1; TestCall2 per level 1: v 10, 2: 20, 3: 30, 4: 40, 5: v1 50 v2 60,
//   6: v1 70 info1.v 80, 7: v1 80 info4.v 90, result 0; TestEnum the arguments with
//   foo2.e1 = ECHO_ENUM2; TestSurrounding x doubled and 2x zeros; TestDoublePointer ***data, or
//   0 when *data or **data is NULL.
// Errors: the decode errors above; ndr::Errc::kBadUnionDiscriminant for TestCall2 levels outside
// 1..7 (Samba answers NT_STATUS_INVALID_LEVEL but cannot marshal the union and faults with
// DCERPC_FAULT_NDR, 0x6f7, which is what the handler sends). For TestSleep the answer is its
// return value, `seconds`, with no delay: the delay is the Handler's business.
Result<std::vector<std::uint8_t>> answer(Opnum op, std::span<const std::uint8_t> stub,
                                         Endian endian);

// The Handler rpcgate-echo registers for rpcecho_syntax(). Each call is decoded before the
// handler returns; undecodable stubs get fault rpc_x_bad_stub_data (0x6f7), unknown opnums
// nca_s_op_rng_error. TestSleep(n) answers n (its return value) after n seconds through an
// asio::steady_timer on `io`: nothing blocks, so other calls - on the same connection (up to the
// runtime's ServerOptions::max_outstanding_calls) or others - proceed meanwhile. `io` must be the
// io_context the Server runs on and must outlive the handler's pending timers.
runtime::Handler make_echo_handler(asio::io_context& io);

}  // namespace rpcgate::echo
