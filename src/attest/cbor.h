// A small, strict CBOR (RFC 8949) codec for attestation documents and NSM
// messages. It understands exactly what those use: unsigned and negative
// integers, byte and text strings, arrays, maps, tags, false/true/null/undefined.
// Floats, indefinite lengths and non-shortest integer encodings are rejected,
// so every accepted document has one encoding and re-encodes byte for byte.
//
// Thread-safety: values are plain data; the functions are reentrant.
// Failure modes: Decode returns kInvalidArgument with reason "cbor-malformed"
// (and a message naming the byte offset) for any input it does not accept.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/error.h"

namespace modelseal::attest::cbor {

enum class Type : uint8_t {
  kUint,
  kNegInt,
  kBytes,
  kText,
  kArray,
  kMap,
  kTag,
  kBool,
  kNull,
  kUndefined
};

std::string_view TypeName(Type t);

struct MapEntry;

struct Value {
  Type type = Type::kNull;
  uint64_t uint = 0;  // kUint: the value; kNegInt: the value is -1 - uint; kTag: the tag number
  bool boolean = false;
  Bytes bytes;
  std::string text;
  std::vector<Value> items;   // kArray; kTag holds its one item here
  std::vector<MapEntry> map;  // kMap, in encoded order

  static Value Uint(uint64_t v);
  static Value NegInt(uint64_t minus_one_minus);  // -1 - v
  static Value Int(int64_t v);
  static Value Bstr(Bytes v);
  static Value Tstr(std::string v);
  static Value Array(std::vector<Value> v);
  static Value Map(std::vector<MapEntry> v);
  static Value Null();
  static Value Bool(bool v);

  bool is_uint() const { return type == Type::kUint; }
  bool is_bytes() const { return type == Type::kBytes; }
  bool is_text() const { return type == Type::kText; }
  bool is_array() const { return type == Type::kArray; }
  bool is_map() const { return type == Type::kMap; }
  bool is_null() const { return type == Type::kNull; }

  // Map lookup by text key or integer key; nullptr when absent or not a map.
  const Value* Find(std::string_view key) const;
  const Value* FindInt(int64_t key) const;
};

// A map entry (a named struct rather than std::pair, which would need Value complete).
struct MapEntry {
  Value first;   // key
  Value second;  // value
};

struct DecodeLimits {
  size_t max_depth = 16;
};

// Decodes exactly one item that must span all of `data`.
Result<Value> Decode(std::span<const uint8_t> data, DecodeLimits limits = {});
// Decodes one item at the start of `data`; `*consumed` receives its length.
Result<Value> DecodePrefix(std::span<const uint8_t> data, size_t* consumed,
                           DecodeLimits limits = {});

// Shortest-form definite-length encoding, map entries in the order given.
Bytes Encode(const Value& v);

}  // namespace modelseal::attest::cbor
