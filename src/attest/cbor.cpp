#include "attest/cbor.h"

namespace modelseal::attest::cbor {

std::string_view TypeName(Type t) {
  switch (t) {
    case Type::kUint:
      return "unsigned integer";
    case Type::kNegInt:
      return "negative integer";
    case Type::kBytes:
      return "byte string";
    case Type::kText:
      return "text string";
    case Type::kArray:
      return "array";
    case Type::kMap:
      return "map";
    case Type::kTag:
      return "tag";
    case Type::kBool:
      return "boolean";
    case Type::kNull:
      return "null";
    case Type::kUndefined:
      return "undefined";
  }
  return "unknown";
}

Value Value::Uint(uint64_t v) {
  Value r;
  r.type = Type::kUint;
  r.uint = v;
  return r;
}
Value Value::NegInt(uint64_t minus_one_minus) {
  Value r;
  r.type = Type::kNegInt;
  r.uint = minus_one_minus;
  return r;
}
Value Value::Int(int64_t v) {
  if (v >= 0) return Uint(static_cast<uint64_t>(v));
  return NegInt(static_cast<uint64_t>(-(v + 1)));
}
Value Value::Bstr(Bytes v) {
  Value r;
  r.type = Type::kBytes;
  r.bytes = std::move(v);
  return r;
}
Value Value::Tstr(std::string v) {
  Value r;
  r.type = Type::kText;
  r.text = std::move(v);
  return r;
}
Value Value::Array(std::vector<Value> v) {
  Value r;
  r.type = Type::kArray;
  r.items = std::move(v);
  return r;
}
Value Value::Map(std::vector<MapEntry> v) {
  Value r;
  r.type = Type::kMap;
  r.map = std::move(v);
  return r;
}
Value Value::Null() {
  return Value{};
}
Value Value::Bool(bool v) {
  Value r;
  r.type = Type::kBool;
  r.boolean = v;
  return r;
}

const Value* Value::Find(std::string_view key) const {
  if (type != Type::kMap) return nullptr;
  for (const auto& [k, v] : map) {
    if (k.type == Type::kText && k.text == key) return &v;
  }
  return nullptr;
}

const Value* Value::FindInt(int64_t key) const {
  if (type != Type::kMap) return nullptr;
  for (const auto& [k, v] : map) {
    if (key >= 0 && k.type == Type::kUint && k.uint == static_cast<uint64_t>(key)) return &v;
    if (key < 0 && k.type == Type::kNegInt && k.uint == static_cast<uint64_t>(-(key + 1))) {
      return &v;
    }
  }
  return nullptr;
}

namespace {

class Decoder {
 public:
  Decoder(std::span<const uint8_t> data, DecodeLimits limits) : data_(data), limits_(limits) {}

  Result<Value> Item(size_t depth) {
    if (depth > limits_.max_depth) return Fail("nesting deeper than the limit");
    if (pos_ >= data_.size()) return Fail("unexpected end of input");
    const size_t start = pos_;
    const uint8_t ib = data_[pos_++];
    const uint8_t major = ib >> 5;
    const uint8_t info = ib & 0x1f;
    if (major == 7) return Simple(info, start);
    uint64_t arg = 0;
    MS_RETURN_IF_ERROR(Argument(info, start, &arg));
    Value v;
    switch (major) {
      case 0:
        return Value::Uint(arg);
      case 1:
        return Value::NegInt(arg);
      case 2:
      case 3: {
        if (arg > data_.size() - pos_) return Fail("string longer than the input", start);
        const auto* p = data_.data() + pos_;
        pos_ += arg;
        if (major == 2) return Value::Bstr(Bytes(p, p + arg));
        std::string s(reinterpret_cast<const char*>(p), arg);
        if (!IsValidUtf8(s)) return Fail("text string is not valid UTF-8", start);
        return Value::Tstr(std::move(s));
      }
      case 4: {
        // Each item takes at least one byte: a count beyond the rest is malformed,
        // which also bounds the allocation below.
        if (arg > data_.size() - pos_) return Fail("array longer than the input", start);
        v.type = Type::kArray;
        v.items.reserve(arg);
        for (uint64_t i = 0; i < arg; ++i) {
          MS_ASSIGN_OR_RETURN(Value item, Item(depth + 1));
          v.items.push_back(std::move(item));
        }
        return v;
      }
      case 5: {
        if (arg > (data_.size() - pos_) / 2) return Fail("map longer than the input", start);
        v.type = Type::kMap;
        v.map.reserve(arg);
        for (uint64_t i = 0; i < arg; ++i) {
          MS_ASSIGN_OR_RETURN(Value key, Item(depth + 1));
          MS_ASSIGN_OR_RETURN(Value val, Item(depth + 1));
          v.map.push_back(MapEntry{std::move(key), std::move(val)});
        }
        return v;
      }
      case 6: {
        v.type = Type::kTag;
        v.uint = arg;
        MS_ASSIGN_OR_RETURN(Value item, Item(depth + 1));
        v.items.push_back(std::move(item));
        return v;
      }
    }
    return Fail("unknown major type", start);
  }

  size_t pos() const { return pos_; }

 private:
  Error Fail(const std::string& what, size_t at = SIZE_MAX) const {
    if (at == SIZE_MAX) at = pos_;
    return MakeError(ErrorCode::kInvalidArgument, "attest", "cbor-malformed",
                     "CBOR: " + what + " at byte " + std::to_string(at));
  }

  Status Argument(uint8_t info, size_t start, uint64_t* out) {
    if (info < 24) {
      *out = info;
      return Ok{};
    }
    size_t n = 0;
    if (info == 24)
      n = 1;
    else if (info == 25)
      n = 2;
    else if (info == 26)
      n = 4;
    else if (info == 27)
      n = 8;
    else if (info == 31)
      return Fail("indefinite length is not accepted", start);
    else
      return Fail("reserved additional information value", start);
    if (data_.size() - pos_ < n) return Fail("unexpected end of input in a length", start);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | data_[pos_ + i];
    pos_ += n;
    // Shortest form only: one encoding per value.
    const bool shortest = (n == 1 && v >= 24) || (n == 2 && v > 0xff) || (n == 4 && v > 0xffff) ||
                          (n == 8 && v > 0xffffffffULL);
    if (!shortest) return Fail("integer or length not in shortest form", start);
    *out = v;
    return Ok{};
  }

  Result<Value> Simple(uint8_t info, size_t start) {
    Value v;
    switch (info) {
      case 20:
        return Value::Bool(false);
      case 21:
        return Value::Bool(true);
      case 22:
        return Value::Null();
      case 23:
        v.type = Type::kUndefined;
        return v;
      case 25:
      case 26:
      case 27:
        return Fail("floating-point values are not accepted", start);
      case 31:
        return Fail("unexpected break", start);
      default:
        return Fail("unsupported simple value", start);
    }
  }

  std::span<const uint8_t> data_;
  DecodeLimits limits_;
  size_t pos_ = 0;
};

void PutHead(Bytes& out, uint8_t major, uint64_t arg) {
  const uint8_t m = static_cast<uint8_t>(major << 5);
  if (arg < 24) {
    out.push_back(m | static_cast<uint8_t>(arg));
  } else if (arg <= 0xff) {
    out.push_back(m | 24);
    out.push_back(static_cast<uint8_t>(arg));
  } else if (arg <= 0xffff) {
    out.push_back(m | 25);
    PutU16(out, static_cast<uint16_t>(arg));
  } else if (arg <= 0xffffffffULL) {
    out.push_back(m | 26);
    PutU32(out, static_cast<uint32_t>(arg));
  } else {
    out.push_back(m | 27);
    PutU64(out, arg);
  }
}

void EncodeInto(Bytes& out, const Value& v) {
  switch (v.type) {
    case Type::kUint:
      PutHead(out, 0, v.uint);
      break;
    case Type::kNegInt:
      PutHead(out, 1, v.uint);
      break;
    case Type::kBytes:
      PutHead(out, 2, v.bytes.size());
      out.insert(out.end(), v.bytes.begin(), v.bytes.end());
      break;
    case Type::kText:
      PutHead(out, 3, v.text.size());
      out.insert(out.end(), v.text.begin(), v.text.end());
      break;
    case Type::kArray:
      PutHead(out, 4, v.items.size());
      for (const auto& i : v.items) EncodeInto(out, i);
      break;
    case Type::kMap:
      PutHead(out, 5, v.map.size());
      for (const auto& [k, val] : v.map) {
        EncodeInto(out, k);
        EncodeInto(out, val);
      }
      break;
    case Type::kTag:
      PutHead(out, 6, v.uint);
      if (!v.items.empty())
        EncodeInto(out, v.items[0]);
      else
        out.push_back(0xf6);
      break;
    case Type::kBool:
      out.push_back(v.boolean ? 0xf5 : 0xf4);
      break;
    case Type::kNull:
      out.push_back(0xf6);
      break;
    case Type::kUndefined:
      out.push_back(0xf7);
      break;
  }
}

}  // namespace

Result<Value> DecodePrefix(std::span<const uint8_t> data, size_t* consumed, DecodeLimits limits) {
  Decoder d(data, limits);
  MS_ASSIGN_OR_RETURN(Value v, d.Item(0));
  *consumed = d.pos();
  return v;
}

Result<Value> Decode(std::span<const uint8_t> data, DecodeLimits limits) {
  size_t used = 0;
  MS_ASSIGN_OR_RETURN(Value v, DecodePrefix(data, &used, limits));
  if (used != data.size()) {
    return MakeError(
        ErrorCode::kInvalidArgument, "attest", "cbor-malformed",
        "CBOR: " + std::to_string(data.size() - used) + " trailing bytes after the item");
  }
  return v;
}

Bytes Encode(const Value& v) {
  Bytes out;
  EncodeInto(out, v);
  return out;
}

}  // namespace modelseal::attest::cbor
